"""What every bench/ script shares: the ag7600 split, the child process a measurement runs in, and
publishing a result (JSON, the printed table, its section of docs/BENCHMARKS.md).

Scripts import it as `benchlib` (Python puts a script's folder first on sys.path) and textclf as
installed (`pip install -e .`; to measure another checkout, set PYTHONPATH to it). No script edits
sys.path.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
AG_TEST = SHARED / "data" / "ag_news" / "test.csv.gz"


def write_split(out_dir: Path, source: Path = AG_TEST) -> tuple[Path, Path]:
    """The ag7600 split of the real AG News test file: within each class, the k-th row (0-based, file
    order) goes to eval when k % 19 < 4, else to train: 6,000 train / 1,600 eval rows, written unchanged
    (AG News CSV layout) with the dataset's classes.txt beside them, into out_dir; their paths."""
    if not source.exists():
        raise SystemExit(f"ag7600 needs {source} (the shared AG News test split); it is not there")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = list(csv.reader(io.StringIO(gzip.decompress(source.read_bytes()).decode("utf-8"))))
    seen: dict[str, int] = {}
    train, evaluation = [], []
    for row in rows:
        k = seen.get(row[0], 0)
        seen[row[0]] = k + 1
        (evaluation if k % 19 < 4 else train).append(row)
    paths = out_dir / "train.csv", out_dir / "eval.csv"
    assert (len(train), len(evaluation)) == (6000, 1600), (len(train), len(evaluation))
    # Each file replaced whole (written beside it, then renamed): a bench or test reading the split while
    # another script writes it again sees the old file or the new one, never a truncated one.
    for path, part in zip(paths, (train, evaluation)):
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(part)
        os.replace(tmp, path)
    tmp = out_dir / f".classes.txt.{os.getpid()}"
    shutil.copy(source.parent / "classes.txt", tmp)
    os.replace(tmp, out_dir / "classes.txt")
    return paths


def train_eval_specs(name: str) -> tuple[str, str]:
    """The training and eval data specs of ag7600 (written by write_split) or SST-2 (../shared's GLUE files:
    train.tsv.gz and the 872-row dev.tsv)."""
    if name == "ag7600":
        train, evaluation = write_split(ROOT / "bench" / "out" / "ag7600")
        return f"csv:{train}", f"csv:{evaluation}"
    sst2 = ROOT.parent / "shared" / "data" / "sst2"
    if name != "sst2":
        raise SystemExit(f"unknown data set {name!r}: ag7600 or sst2")
    if not (sst2 / "train.tsv.gz").exists():
        raise SystemExit(f"sst2 needs {sst2 / 'train.tsv.gz'} (GLUE SST-2 in ../shared); it is not there")
    return f"tsv:{sst2 / 'train.tsv.gz'}", f"tsv:{sst2 / 'dev.tsv'}"


def study_parser(doc: str, out_json: Path, datasets: str = "ag7600,sst2", seeds: int = 3):
    """The arguments every multi-seed study shares: --datasets, --seeds, --json, --markdown (its section of
    docs/BENCHMARKS.md); the script adds its own."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--datasets", default=datasets)
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--json", default=str(out_json))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    return parser


def save_result(path: str | Path, benchmark: str, rows: list[dict], **extra) -> None:
    """Write the rows, the command and the machine as JSON."""
    import platform

    from textclf._tf import tf

    result = {"benchmark": benchmark, "command": " ".join(sys.argv), "rows": rows, **extra,
              "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                          "platform": platform.platform(), "tensorflow": tf.__version__}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")


def write_section(path: str | Path, name: str, text: str) -> None:
    """Put `text` between `<!-- begin NAME -->` and `<!-- end NAME -->` in a Markdown file, keeping the rest.

    Each benchmark script owns one section of docs/BENCHMARKS.md, so re-running one keeps the others.
    """
    path = Path(path)
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin in old and end in old:
        rest = old[old.index(end) + len(end):].lstrip("\n")
        new = old[: old.index(begin)] + block + ("\n" + rest if rest else "")  # one blank line before what follows
    else:
        new = (old.rstrip() + "\n\n" if old.strip() else "") + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new, encoding="utf-8")


def publish(result: dict, json_path: str | Path, markdown_path: str | Path | None, section: str, text: str) -> None:
    """A benchmark's result as JSON, its Markdown printed and (with `markdown_path`) written as `section`."""

    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(result, indent=2) + "\n")
    print(text)
    if markdown_path:
        write_section(markdown_path, section, text)
    print(f"wrote {json_path}" + (f" and {markdown_path}" if markdown_path else ""))


def run_child(cmd: list[str], quiet: bool = True, result: Path | None = None, show_errors: bool = False) -> dict:
    """Run one measurement in a child process (a fresh interpreter: no state shared with the parent or
    the other sides): {"wall_seconds", "peak_rss_mb" (from wait4), "code", "result" (the JSON the child
    wrote to `result`, if given and it exited 0)}. `quiet`: its output discarded (`show_errors`: but
    not its stderr)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL if quiet else None,
                            stderr=subprocess.DEVNULL if quiet and not show_errors else None)
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    out = {"wall_seconds": time.perf_counter() - started, "peak_rss_mb": usage.ru_maxrss / 1024, "code": code}
    if result is not None and code == 0:
        out["result"] = json.loads(Path(result).read_text())
    return out
