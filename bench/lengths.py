"""The transformer with max_length 128 (the old default) vs taken from the data, on short and long texts.

Short: ag7600 as it is (headline + description, median 37 words). Long: a synthetic long-text
version of ag7600 — every text is its own article followed by nine other articles of the same
class and split (seeded), about 380 words, so the label is the same but only the first ~128
tokens fit the old budget. Both settings run in one invocation, alternating, each a child
`textclf train --model transformer` process; writes JSON and the `lengths` section of
docs/BENCHMARKS.md.

    .venv/bin/python bench/lengths.py            # ~20 min on 2 cores
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import tempfile
from pathlib import Path

from benchlib import ROOT, run_child, write_section, write_split
from baselines import TEXTCLF

HERE = Path(__file__).resolve().parent

def long_split(source: Path, out: Path, per_text: int = 10, seed: int = 0) -> Path:
    """Each row's description extended with per_text - 1 other same-class descriptions of the file."""
    rows = list(csv.reader(source.open(encoding="utf-8")))
    by_class: dict[str, list[list[str]]] = {}
    for row in rows:
        by_class.setdefault(row[0], []).append(row)
    rng = random.Random(seed)
    longer = []
    for row in rows:
        others = rng.sample(by_class[row[0]], per_text - 1)
        longer.append([row[0], row[1], " ".join([row[2]] + [o[1] + ". " + o[2] for o in others])])
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(longer)
    (out.parent / "classes.txt").write_text((source.parent / "classes.txt").read_text())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--json", default=str(ROOT / "bench" / "out" / "lengths.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    args = parser.parse_args()
    train_csv, eval_csv = write_split(ROOT / "bench" / "out" / "ag7600")
    long_dir = ROOT / "bench" / "out" / "ag7600-long"
    sets = {"short (ag7600)": (train_csv, eval_csv),
            "long (ag7600 × 10 articles)": (long_split(train_csv, long_dir / "train.csv", seed=1),
                                            long_split(eval_csv, long_dir / "eval.csv", seed=2))}
    settings = {"max_length 128": ["--max-length", "128"], "from the data": []}
    rows = []
    with tempfile.TemporaryDirectory(prefix="textclf-lengths-") as tmp:
        for name, (train, evaluation) in sets.items():
            runs: dict[str, list[dict]] = {s: [] for s in settings}
            for seed in args.seeds:
                for setting, flags in settings.items():
                    root = Path(tmp) / f"{len(rows)}-{setting}-{seed}".replace(" ", "_")
                    child = run_child([str(TEXTCLF), "train", "--model", "transformer", "--data", f"csv:{train}",
                                       "--eval-data", f"csv:{evaluation}", "--seed", str(seed),
                                       "--runs-root", str(root), *flags], quiet=True)
                    wall, rss, code = child["wall_seconds"], child["peak_rss_mb"], child["code"]
                    if code:
                        raise SystemExit(f"{name} / {setting}: textclf exited {code}")
                    from textclf.runs import Run

                    metrics, config = Run(root / "latest").metrics, Run(root / "latest").config
                    runs[setting].append({"accuracy": metrics["accuracy"], "wall_seconds": wall,
                                          "train_examples_per_second": metrics["train_examples_per_second"],
                                          "max_length": config["model_params"]["max_length"], "peak_rss_mb": rss})
                    print(name, setting, seed, json.dumps(runs[setting][-1]), flush=True)
            for setting, got in runs.items():
                rows.append(
                    {
                        "texts": name,
                        "setting": setting,
                        "max_length": got[0]["max_length"],
                        "accuracy": statistics.mean(r["accuracy"] for r in got),
                        "accuracies": [r["accuracy"] for r in got],
                        "train_examples_per_second": statistics.median(r["train_examples_per_second"] for r in got),
                        "wall_seconds": statistics.median(r["wall_seconds"] for r in got),
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in got),
                    }
                )
    lines = ["## Sequence length: max_length 128 vs from the data (transformer)", "",
             f"    python bench/lengths.py {' '.join(sys.argv[1:])}".rstrip(), "",
             f"Seeds {', '.join(map(str, args.seeds))}; the long texts are synthetic (each ag7600 article followed by "
             "nine others of its class), so only the direction and size of the effect carry over.", "",
             "| texts | max_length | eval acc | train ex/s | wall s | peak RSS MB |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['texts']} | {r['max_length']} ({r['setting']}) | {100 * r['accuracy']:.2f}% | "
                     f"{r['train_examples_per_second']:,.0f} | {r['wall_seconds']:.0f} | {r['peak_rss_mb']:,.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"command": "python bench/lengths.py " + " ".join(sys.argv[1:]),
                                           "rows": rows}, indent=2) + "\n")
    if args.markdown:
        write_section(args.markdown, "lengths", text)


if __name__ == "__main__":
    main()
