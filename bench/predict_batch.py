"""Prediction batch size of a BERT run: texts/s of its predictor at each tokens-per-batch budget.

textclf.prediction cuts the texts into length-sorted batches of at most 256 texts and, for a family with
`predict_tokens` (textclf.registry.Family; BERT: 1,024), about that many tokens (a text counted as its
characters / 4, at most the run's max_length). This measures a fine-tuned
MiniLM run's predictor (its twin, as `predict` and a distillation's teacher pass load it; `evaluate` and
`serve` cut their batches the same way, on the Keras model) on
three kinds of text: ag7600's eval texts (news, ~240 characters), SST-2's dev sentences (~100) and long
texts (12 ag7600 eval texts joined, ~2,900 characters, cut to the run's max_length), at each `--budgets`
value; "256 texts" is no token budget (before BERT had one: 256 texts a batch). Each round runs
every budget once, in an order that reverses from round to round, after one warm-up pass per kind; the table
gives the median texts/s over `--rounds` and its ratio to 256 texts. `--run` measures a run you have;
without it a MiniLM (imported from ../shared) is fine-tuned on 500 of ag7600's training texts for one epoch
(its speed is the same as a fully trained run's). Writes JSON and the `predict-batch` section of
docs/BENCHMARKS.md.

    .venv/bin/python bench/predict_batch.py                   # ≈ 10 min on 2 cores
    .venv/bin/python bench/predict_batch.py --run runs/latest --rounds 5
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import ROOT, SHARED, publish, write_split

OUT = ROOT / "bench" / "out" / "predict-batch"
OLD = 0  # no token budget: 256 texts a batch on any of these texts


def texts_of(kind: str, n: int) -> list[str]:
    """`n` texts of one kind (see the module doc)."""
    if kind == "sst2":
        with open(SHARED / "data" / "sst2" / "dev.tsv", encoding="utf-8") as f:
            rows = [line.rstrip("\n").split("\t")[0] for line in f][1:]
        return rows[:n]
    _, evaluation = write_split(ROOT / "bench" / "out" / "ag7600")
    with open(evaluation, encoding="utf-8", newline="") as f:
        news = [f"{row[1]}. {row[2]}" for row in csv.reader(f)]
    if kind == "ag7600":
        return news[:n]
    return [" ".join(news[i:i + 12]) for i in range(0, 12 * n, 12)][:n]


def teacher_run() -> Path:
    """A MiniLM run: fine-tuned for one epoch on 500 of ag7600's training texts (reused when complete)."""
    from textclf.runs import is_complete

    run = OUT / "minilm-run"
    if is_complete(run):
        return run
    home = Path(os.environ.setdefault("TEXTCLF_HOME", str(OUT / "home")))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    textclf = [sys.executable, "-m", "textclf"]
    if not (home / "models" / "minilm").exists():
        subprocess.run([*textclf, "models", "import-hf", str(SHARED / "models" / "all-MiniLM-L6-v2"), "--name",
                        "minilm"], check=True, env=env)
    train, _ = write_split(ROOT / "bench" / "out" / "ag7600")
    small = OUT / "train500.csv"
    small.parent.mkdir(parents=True, exist_ok=True)
    small.write_text("".join(Path(train).read_text(encoding="utf-8").splitlines(keepends=True)[:500]),
                     encoding="utf-8")
    subprocess.run([*textclf, "train", "--model", "minilm", "--epochs", "1", "--data", f"csv:{small}",
                    "--run-dir", str(run)], check=True, env=env)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", help="a BERT run to measure (default: a MiniLM fine-tuned on 500 texts)")
    parser.add_argument("--budgets", default="512,1024,2048", help="tokens per batch to compare")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--texts", type=int, default=512, help="texts per kind (long texts: a quarter)")
    parser.add_argument("--json", default=str(OUT / "predict-batch.json"))
    parser.add_argument("--markdown", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    run = Path(args.run) if args.run else teacher_run()

    from textclf.prediction import Predictor, batch_tokens
    from textclf.runs import Run

    predictor = Predictor(run, use_twin=True)
    shipped = batch_tokens(Run(run).config, Run(run).info.get("family", ""))[0]
    if not shipped:
        raise SystemExit(f"{run}: its model has no predict_tokens here (not a BERT run, or its imported model is "
                         "not in this TEXTCLF_HOME)")
    budgets = [OLD, *sorted({int(b) for b in args.budgets.split(",")} | {shipped})]
    kinds = {"ag7600": texts_of("ag7600", args.texts), "sst2": texts_of("sst2", args.texts),
             "long": texts_of("long", max(args.texts // 4, 1))}
    for texts in kinds.values():  # warm-up: the graph's first calls
        predictor.probabilities(texts[:64])
    speed = {(kind, b): [] for kind in kinds for b in budgets}
    for r in range(args.rounds):
        for b in budgets if r % 2 == 0 else budgets[::-1]:
            predictor.batch_tokens = b
            for kind, texts in kinds.items():
                started = time.perf_counter()
                predictor.probabilities(texts)
                speed[(kind, b)].append(len(texts) / (time.perf_counter() - started))
                print(f"round {r + 1}: {kind} at {b:,} tokens a batch: {speed[(kind, b)][-1]:.1f} texts/s",
                      flush=True)

    def label(b: int) -> str:
        return "256 texts (before)" if b == OLD else f"~{b:,} tokens" + (" (shipped)" if b == shipped else "")

    rows = []
    for kind, texts in kinds.items():
        base = statistics.median(speed[(kind, OLD)])
        for b in budgets:
            median = statistics.median(speed[(kind, b)])
            rows.append({"texts": kind, "mean_chars": round(statistics.mean(map(len, texts))), "budget": b,
                         "texts_per_s": median, "runs": speed[(kind, b)], "ratio": median / base})
    model = Run(run).config.get("model")
    text = "\n".join([
        "## Prediction batch size of a BERT run (`bench/predict_batch.py`)", "",
        f"`python bench/predict_batch.py{''.join(' ' + a for a in sys.argv[1:])}` — 2 cores, "
        f"{time.strftime('%Y-%m-%d %H:%M')}. The {model} run's predictor (its twin), {args.rounds} rounds, the "
        "budgets' order reversed each round; median texts/s and its ratio to 256 texts a batch (no token budget).", "",
        "| texts | mean chars | batch at most | texts/s | × 256 texts |", "|---|---|---|---|---|",
        *[f"| {r['texts']} | {r['mean_chars']:,} | {label(r['budget'])} | {r['texts_per_s']:.1f} | "
          f"{r['ratio']:.2f}× |" for r in rows]])
    publish({"run": str(run), "model": model, "rounds": args.rounds, "shipped": shipped, "rows": rows},
            args.json, args.markdown, "predict-batch", text)


if __name__ == "__main__":
    main()
