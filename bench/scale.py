"""How textclf scales with the training set: 6k, 67k and 670k rows, one epoch, in one invocation.

Data: ag7600's 6,000 training rows (eval: its 1,600), SST-2's 67,349 (eval: dev, 872) and
670k rows: SST-2's training file ten times, copies 1-9 perturbed with a seeded rule (one
word dropped, two neighbours swapped, per sentence of 4+ words) so no copy repeats the
original text. Models: textclf's default (`textclf train` with only the data flags and
`--epochs 1`; the rule of `--model auto` may choose differently at different sizes) and
the transformer (`--model transformer --epochs 1`). Each row is one `textclf train` child
process; from its metrics.json: load s (reading and validating the files), tokenize s
(every text tokenized once, plus features for models that compute them once), train ex/s;
peak RSS from wait4. Bounds checked: from 67k to 670k rows train ex/s within 20% and peak
RSS growing by less than 2 GB. Writes JSON and the `scale` section of docs/BENCHMARKS.md.

    .venv/bin/python bench/scale.py                 # ≈ 15 min on 2 cores
    .venv/bin/python bench/scale.py --sizes 6k,67k --models transformer
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, SHARED, publish, run_child, write_section, write_split

HERE = Path(__file__).resolve().parent
SST2 = SHARED / "data" / "sst2"
OUT = ROOT / "bench" / "out" / "scale"
SIZES = ("6k", "67k", "670k")
MODELS = {"default": [], "transformer": ["--model", "transformer"]}


def perturb(sentence: str, rng: random.Random) -> str:
    """One word dropped and two neighbours swapped (sentences of 4+ words; shorter ones unchanged)."""
    words = sentence.split()
    if len(words) < 4:
        return sentence
    del words[rng.randrange(len(words))]
    i = rng.randrange(len(words) - 1)
    words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def write_repeated(source: Path, out: Path, copies: int = 10, seed: int = 0) -> Path:
    """SST-2's headered TSV `copies` times, copy k > 0 perturbed with Random(seed, k); written once."""
    if out.exists():
        return out
    with gzip.open(source, "rt", encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial")
    with open(partial, "w", encoding="utf-8") as f:
        f.write(header + "\n")
        for k in range(copies):
            rng = random.Random(f"{seed}-{k}")
            for row in rows:
                sentence, label = row.rsplit("\t", 1)
                f.write(f"{perturb(sentence, rng) if k else sentence}\t{label}\n")
    partial.replace(out)
    return out


def datasets(sizes: list[str]) -> dict[str, tuple[str, str]]:
    found = {}
    for size in sizes:
        if size == "6k":
            train, evaluation = write_split(OUT.parent / "ag7600")
            found[size] = (f"csv:{train}", f"csv:{evaluation}")
        elif size in ("67k", "670k"):
            if not (SST2 / "train.tsv.gz").exists():
                raise SystemExit(f"the {size} rows need {SST2 / 'train.tsv.gz'} (GLUE SST-2 in ../shared)")
            train = SST2 / "train.tsv.gz" if size == "67k" else write_repeated(SST2 / "train.tsv.gz",
                                                                                 OUT / "sst2-x10.tsv")
            found[size] = (f"tsv:{train}", f"tsv:{SST2 / 'dev.tsv'}")
        else:
            raise SystemExit(f"unknown size {size!r}; choose from {', '.join(SIZES)}")
    return found


def run(model: str, train: str, evaluation: str, tmp: Path, quiet: bool) -> dict:
    runs_root = tmp / f"runs-{model}-{len(list(tmp.iterdir()))}"
    cmd = [str(Path(sys.executable).parent / "textclf"), "train", "--data", train, "--eval-data", evaluation,
           "--epochs", "1", "--seed", "1", "--runs-root", str(runs_root), *MODELS[model]]
    child = run_child(cmd, quiet)
    wall, rss, code = child["wall_seconds"], child["peak_rss_mb"], child["code"]
    if code != 0:
        return {"error": f"exit {code}: {' '.join(cmd)}"}
    from textclf.runs import Run

    r = Run((runs_root / "latest").resolve())
    m = r.metrics
    return {"model": r.config["model"], "train_examples": m["train_examples"], "load_seconds": m["load_seconds"],
            "tokenize_seconds": m["prepare_seconds"], "train_seconds": m["train_seconds"],
            "train_examples_per_second": m["train_examples_per_second"], "accuracy": m["accuracy"],
            "wall_seconds": wall, "peak_rss_mb": rss}


def verdicts(rows: dict[str, dict[str, dict]]) -> list[str]:
    out = []
    for model, by_size in rows.items():
        small, big = by_size.get("67k"), by_size.get("670k")
        if not small or not big or "error" in small or "error" in big:
            continue
        growth = big["peak_rss_mb"] - small["peak_rss_mb"]
        rss = f"peak RSS {growth:+,.0f} MB (bound < +2,048: {'met' if growth < 2048 else 'MISSED'})"
        if small["model"] != big["model"]:
            out.append(f"{model}: 67k → 670k picks {small['model']} then {big['model']}, so train ex/s are not "
                       f"comparable; {rss}")
            continue
        ratio = big["train_examples_per_second"] / small["train_examples_per_second"]
        out.append(f"{model} ({big['model']}): 67k → 670k train ex/s ×{ratio:.2f} (bound ≥ 0.80: "
                   f"{'met' if ratio >= 0.8 else 'MISSED'}), {rss}")
    return out


def markdown(result: dict) -> str:
    lines = ["## Scale: 6k, 67k and 670k training rows (`bench/scale.py`)", "",
             "Produced by one command; every number below was measured by it:", "", f"    {result['command']}", "",
             f"Machine: {result['machine']}, {result['date']}. One epoch (`--epochs 1`), seed 1. 670k = SST-2's "
             "training file ten times, copies 1-9 perturbed (a word dropped, two neighbours swapped). load s: "
             "reading and validating the data; tokenize s: every text tokenized once (and n-gram features "
             "computed); train ex/s: training examples per second of training (for ngram-linear: of features + "
             "L-BFGS solves; it includes the first steps' graph tracing, a fixed cost, so small sets look slower); "
             "wall s: the whole command.", "",
             "| model | rows | chosen | load s | tokenize s | train s | train ex/s | eval acc | wall s | peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, by_size in result["rows"].items():
        for size, r in by_size.items():
            if "error" in r:
                lines.append(f"| {model} | {size} | failed | | | | | | | {r['error']} |")
                continue
            lines.append(f"| {model} | {r['train_examples']:,} | {r['model']} | {r['load_seconds']:.1f} | "
                         f"{r['tokenize_seconds']:.1f} | {r['train_seconds']:.1f} | "
                         f"{r['train_examples_per_second']:,.0f} | {100 * r['accuracy']:.2f}% | "
                         f"{r['wall_seconds']:.1f} | {r['peak_rss_mb']:,.0f} |")
    lines += [""] + [f"- {v}" for v in result["verdicts"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--json", default=str(ROOT / "bench" / "out" / "scale.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--quiet", action="store_true", help="hide the children's output")
    parser.add_argument("--from-json", metavar="PATH", help="only rewrite the Markdown section from a saved result")
    args = parser.parse_args()
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        result["verdicts"] = verdicts(result["rows"])
        write_section(args.markdown, "scale", markdown(result))
        return
    os.environ.setdefault("TEXTCLF_HOME", str(ROOT / "bench" / "out" / "home"))
    models = [m for m in args.models.split(",") if m]
    if set(models) - set(MODELS):
        raise SystemExit(f"--models: choose from {', '.join(MODELS)}")
    data = datasets(args.sizes.split(","))
    result = {"command": "python bench/scale.py " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d %H:%M"),
              "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
              "rows": {m: {} for m in models}}
    with tempfile.TemporaryDirectory(prefix="textclf-scale-") as tmp:
        for size, (train, evaluation) in data.items():
            for model in models:
                print(f"== {model} {size}", flush=True)
                row = run(model, train, evaluation, Path(tmp), args.quiet)
                print(f"   {json.dumps(row)}", flush=True)
                result["rows"][model][size] = row
    result["verdicts"] = verdicts(result["rows"])
    publish(result, args.json, args.markdown, "scale", markdown(result))


if __name__ == "__main__":
    main()
