"""The offline ag7600 benchmark split of the real AG News test file (see benchlib.write_split):
`python bench/ag7600.py [OUT_DIR]` writes train.csv, eval.csv and classes.txt."""

import sys
from pathlib import Path

from benchlib import ROOT, write_split

if __name__ == "__main__":
    for p in write_split(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "bench" / "out" / "ag7600")):
        print(p)
