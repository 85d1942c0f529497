"""`--class-weight balanced` on imbalanced data: minority-class recall with and without it.

The data: a seeded 95/5 subset of SST-2's training file (9,500 negative, 500 positive
sentences), evaluated on SST-2's dev set (balanced, so recall per class is what it measures).
Every row is `textclf train` run as a user runs it; the table goes to stdout, JSON to
bench/out/imbalance.json and a section of docs/BENCHMARKS.md.

    .venv/bin/python bench/imbalance.py            # auto (the default) and ngram-mlp, seeds 1 2 3
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from benchlib import ROOT, SHARED, write_section

TEXTCLF = Path(sys.executable).parent / "textclf"
SST2 = SHARED / "data" / "sst2"


def write_subset(out: Path, negatives: int = 9500, positives: int = 500, seed: int = 0) -> Path:
    """The 95/5 training file (headered TSV, as SST-2's)."""
    with gzip.open(SST2 / "train.tsv.gz", "rt", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    rng = random.Random(seed)
    neg, pos = [r for r in rows if r[1] == "0"], [r for r in rows if r[1] == "1"]
    rng.shuffle(neg)
    rng.shuffle(pos)
    subset = neg[:negatives] + pos[:positives]
    rng.shuffle(subset)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("sentence\tlabel\n" + "".join(f"{text}\t{label}\n" for text, label in subset), encoding="utf-8")
    return out


def run(model: str, weight: str, seed: int, train: Path, tmp: Path) -> dict:
    root = tmp / f"{model}-{weight}-{seed}"
    cmd = [str(TEXTCLF), "train", "--data", f"tsv:{train}", "--eval-data", f"tsv:{SST2 / 'dev.tsv'}",
           "--class-weight", weight, "--seed", str(seed), "--runs-root", str(root)]
    cmd += [] if model == "auto" else ["--model", model]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    from textclf.runs import Run

    metrics = Run(root / "latest").metrics
    recall = {c["label"]: c["recall"] for c in metrics["per_class"]}
    return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"], "minority_recall": recall["1"],
            "majority_recall": recall["0"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="auto,ngram-mlp")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--json", default=str(ROOT / "bench" / "out" / "imbalance.json"))
    parser.add_argument("--docs", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    args = parser.parse_args()
    if not (SST2 / "train.tsv.gz").exists():
        raise SystemExit(f"needs {SST2 / 'train.tsv.gz'} (GLUE SST-2 in ../shared); it is not there")
    train = write_subset(ROOT / "bench" / "out" / "sst2-95-5" / "train.tsv")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="textclf-imbalance-") as tmp:
        for model in args.models.split(","):
            for weight in ("none", "balanced"):
                results = [run(model, weight, seed, train, Path(tmp)) for seed in seeds]
                row = {"model": model, "class_weight": weight, "seeds": seeds, "runs": results}
                for key in ("accuracy", "macro_f1", "minority_recall", "majority_recall"):
                    values = [r[key] for r in results]
                    row[key] = {"mean": statistics.mean(values),
                                "sd": statistics.stdev(values) if len(values) > 1 else 0.0}
                rows.append(row)
                print(f"{model:10s} {weight:9s} " + "  ".join(
                    f"{k} {100 * row[k]['mean']:.2f} ± {100 * row[k]['sd']:.2f}"
                    for k in ("minority_recall", "majority_recall", "accuracy", "macro_f1")), flush=True)
    command = "python bench/imbalance.py " + " ".join(sys.argv[1:])
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"command": command.strip(), "date": time.strftime("%Y-%m-%d %H:%M"),
                                           "rows": rows}, indent=2) + "\n")
    lines = ["## Class weights on imbalanced data (`bench/imbalance.py`)", "",
             f"Produced by `{command.strip()}` ({time.strftime('%Y-%m-%d %H:%M')}, seeds "
             f"{', '.join(map(str, seeds))}; mean ± sd): a seeded 95/5 subset of SST-2's training file "
             "(9,500 negative, 500 positive sentences), evaluated on SST-2's balanced dev set.", "",
             "| model | --class-weight | minority (positive) recall | majority recall | accuracy | macro-F1 |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['model']} | {row['class_weight']} | " + " | ".join(
            f"{100 * row[k]['mean']:.2f}% ± {100 * row[k]['sd']:.2f}"
            for k in ("minority_recall", "majority_recall", "accuracy", "macro_f1")) + " |")
    write_section(args.docs, "imbalance", "\n".join(lines))


if __name__ == "__main__":
    main()
