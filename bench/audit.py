"""Label-error audit: planted label flips in ag7600's training split, found by `textclf data audit` (issue 33).

For each planting seed: 5% of the 6,000 training rows get a label drawn uniformly from the other
classes; `textclf data audit` (its defaults: 5 folds of ngram-linear, cleanlab's confident learning,
the head of highest expected F1) flags likely label errors; precision = flagged rows that were
planted / flagged, recall = planted rows flagged / planted (the original labels' own errors count
against precision: AG News has some). Time: the audit against `textclf train --folds 5` of the
default on the same file, each timed once per planting, alternating which goes first. Writes JSON
and the `audit` section of docs/BENCHMARKS.md.

    .venv/bin/python bench/audit.py              # ≈ 3 min on 2 cores
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import ROOT, publish, write_split

OUT = ROOT / "bench" / "out" / "audit"
TEXTCLF = [sys.executable, "-m", "textclf"]
SHARE = 0.05


def plant(train: Path, seed: int, out: Path) -> set[int]:
    """A copy of `train` with SHARE of its rows relabelled at random (another class); their row numbers."""
    import numpy as np

    rows = list(csv.reader(train.open(newline="", encoding="utf-8")))
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(rows), int(round(SHARE * len(rows))), replace=False)
    classes = sorted({r[0] for r in rows})
    for i in flipped:
        rows[i][0] = str(rng.choice([c for c in classes if c != rows[i][0]]))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    shutil.copy(train.parent / "classes.txt", out.parent / "classes.txt")
    return {int(i) + 1 for i in flipped}


def timed(args: list) -> float:
    started = time.perf_counter()
    subprocess.run([*TEXTCLF, *map(str, args)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def one_planting(train: Path, seed: int) -> dict:
    noisy = OUT / f"plant-{seed}" / "train.csv"
    planted = plant(train, seed, noisy)
    found = OUT / f"plant-{seed}" / "audit.json"
    audit = ["data", "audit", f"csv:{noisy}", "--out", found]
    cv = ["train", "--data", f"csv:{noisy}", "--folds", "5", "--runs-root", OUT / f"plant-{seed}" / "runs"]
    order = [("audit", audit), ("cv", cv)] if seed % 2 else [("cv", cv), ("audit", audit)]
    seconds = {name: timed(args) for name, args in order}
    shutil.rmtree(OUT / f"plant-{seed}" / "runs", ignore_errors=True)
    rows = json.loads(found.read_text())["rows"]  # most suspect first
    ranked = [r["row"] for r in rows if r["kind"] == "label_issue"]
    flagged = set(ranked)
    hits = len(flagged & planted)
    return {"seed": seed, "planted": len(planted), "flagged": len(flagged), "found": hits,
            "precision": hits / max(len(flagged), 1), "recall": hits / len(planted),
            "precision_at_recall_60": precision_at_recall(ranked, planted, 0.6),
            "audit_seconds": seconds["audit"], "cv_seconds": seconds["cv"]}


def precision_at_recall(ranked: list[int], planted: set[int], recall: float) -> float | None:
    """The precision of the shortest head of the ranked list that reaches `recall` (None: it never does)."""
    hits = 0
    for k, row in enumerate(ranked, 1):
        hits += row in planted
        if hits >= recall * len(planted):
            return hits / k
    return None


def table(rows: list[dict], command: str) -> str:
    mean = lambda k: statistics.mean(r[k] for r in rows)  # noqa: E731
    lines = ["## Label-error audit: planted flips in ag7600", "",
             f"`{command}` — 2 cores, {time.strftime('%Y-%m-%d %H:%M')}. 5% of ag7600's 6,000 training rows "
             "relabelled at random per planting seed; `textclf data audit csv:train.csv` with its defaults (5 folds "
             "of ngram-linear, cleanlab's confident learning); time against `textclf train --folds 5` on the same "
             "file.",
             "The flagged set is the head of the self-confidence ranking with the highest expected F1 (each text's "
             "chance of a wrong label from its self-confidence and cleanlab's estimated noise rate); the ranked list "
             "(most suspect first) is also read at the shortest head reaching 60% recall.",
             "", "| planting seed | planted | flagged | precision | recall | precision at 60% recall (ranked) "
             "| audit s | 5-fold CV s | ratio |", "|---|---|---|---|---|---|---|---|---|"]
    at = lambda r: "–" if r["precision_at_recall_60"] is None else f"{100 * r['precision_at_recall_60']:.1f}%"  # noqa: E731
    lines += [f"| {r['seed']} | {r['planted']} | {r['flagged']} | {100 * r['precision']:.1f}% | "
              f"{100 * r['recall']:.1f}% | {at(r)} | {r['audit_seconds']:.1f} | {r['cv_seconds']:.1f} | "
              f"{r['audit_seconds'] / r['cv_seconds']:.2f} |" for r in rows]
    reached = [r["precision_at_recall_60"] for r in rows if r["precision_at_recall_60"] is not None]
    lines.append(f"| mean | | | {100 * mean('precision'):.1f}% | {100 * mean('recall'):.1f}% | "
                 f"{100 * statistics.mean(reached):.1f}% | {mean('audit_seconds'):.1f} | {mean('cv_seconds'):.1f} | "
                 f"{mean('audit_seconds') / mean('cv_seconds'):.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--json", default=str(OUT / "audit.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    args = parser.parse_args()
    train, _ = write_split(ROOT / "bench" / "out" / "ag7600")
    rows = []
    for seed in map(int, args.seeds.split(",")):
        rows.append(one_planting(train, seed))
        print(json.dumps(rows[-1]), flush=True)
    command = "python bench/audit.py " + " ".join(sys.argv[1:])
    publish({"benchmark": "audit", "command": command, "rows": rows}, args.json, args.markdown, "audit",
            table(rows, command))


if __name__ == "__main__":
    main()
