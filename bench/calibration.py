"""Calibration: ECE before and after temperature scaling, per model and data set (issue 33).

For ag7600 and SST-2 (train.tsv.gz / dev.tsv): the default (ngram-linear), ngram-mlp and the
transformer with a validation part of 10% of the training data (`--set training.validation_fraction=0.1`:
its default has none, and a temperature is fitted on the validation part only), `--seeds` seeds each.
Each run records its eval ECE (15 equal-width bins), adaptive ECE, Brier and NLL with the temperature
and without it (metrics.json's `calibration.before`), and its accuracy (the same either way for a
single-label run). Runs are kept under bench/out/calibration/ and reused when complete. Writes JSON
and the `calibration` section of docs/BENCHMARKS.md.

    .venv/bin/python bench/calibration.py                         # ≈ 40 min on 2 cores
    .venv/bin/python bench/calibration.py --datasets ag7600 --models default,transformer
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from benchlib import ROOT, publish, study_parser, train_eval_specs

from textclf.runs import Run, is_complete

OUT = ROOT / "bench" / "out" / "calibration"
MODELS = {"default": [], "ngram-mlp": ["--model", "ngram-mlp"],
          "transformer": ["--model", "transformer", "--set", "training.validation_fraction=0.1"]}


def runs_of(dataset: str, model: str, seeds: int) -> list[Path]:
    train, evaluation = train_eval_specs(dataset)
    found = []
    for seed in range(42, 42 + seeds):
        out = OUT / dataset / f"{model}-s{seed}"
        if not is_complete(out):
            done = subprocess.run([sys.executable, "-m", "textclf", "train", "--data", train, "--eval-data", evaluation,
                                   *MODELS[model], "--seed", str(seed), "--run-dir", str(out)], cwd=ROOT)
            if done.returncode:
                raise SystemExit(f"training {model} on {dataset} failed")
        found.append(out)
    return found


BEST_T = np.exp(np.linspace(np.log(0.2), np.log(5.0), 401))  # temperatures (of the run's probabilities) tried


def bounds(run: Path) -> tuple[float, float, float]:
    """Bounds on the run's eval ECE, from one pass of its predictor (what `evaluate` computes) over its eval
    data, each never a run's own: the floor — the ECE perfectly calibrated probabilities would show on these
    texts (textclf.calibration.ece_floor); the ECE at the temperature fitted (log-loss) on the eval data
    itself; and the lowest ECE any temperature of BEST_T gives there (ECE is jagged in T: an optimistic bound)."""
    from textclf import calibration
    from textclf.evaluation import eval_examples
    from textclf.prediction import load_predictor

    examples = eval_examples(str(run))
    probs = load_predictor(run).probabilities(examples.texts)
    multilabel = examples.labels.ndim == 2
    fitted = calibration.fit_temperature(probs, examples.labels)
    at_fitted = probs if fitted is None else calibration.scale(probs, fitted, multilabel)
    best = min(calibration.ece(calibration.scale(probs, t, multilabel), examples.labels) for t in BEST_T)
    return calibration.ece_floor(probs, multilabel), calibration.ece(at_fitted, examples.labels), best


def row(dataset: str, model: str, runs: list[Path]) -> dict:
    metrics = [Run(r).metrics for r in runs]
    measured = [bounds(r) for r in runs]
    mean = lambda values: statistics.mean(values)  # noqa: E731
    sd = lambda values: statistics.stdev(values) if len(values) > 1 else 0.0  # noqa: E731
    after = [m["ece"] for m in metrics]
    before = [m["calibration"].get("before", m)["ece"] for m in metrics]
    temperatures = [m["calibration"].get("temperature") for m in metrics]
    accuracy = [100 * m["accuracy"] for m in metrics]
    return {"dataset": dataset, "model": model, "seeds": len(runs), "accuracy": mean(accuracy),
            "accuracy_sd": sd(accuracy), "ece_before": mean(before), "ece_before_sd": sd(before),
            "ece_after": mean(after), "ece_after_sd": sd(after),
            "adaptive_ece_after": mean([m["adaptive_ece"] for m in metrics]),
            "nll_before": mean([m["calibration"].get("before", m)["nll"] for m in metrics]),
            "nll_after": mean([m["nll"] for m in metrics]), "temperatures": temperatures,
            "ece_floor": mean([b[0] for b in measured]), "ece_eval_fitted": mean([b[1] for b in measured]),
            "ece_best_temperature": mean([b[2] for b in measured]),
            "met": mean(after) <= 0.02 or mean(after) <= mean(before) / 2, "runs": [str(r) for r in runs]}


def table(rows: list[dict], command: str) -> str:
    lines = ["## Calibration: ECE before and after temperature scaling", "",
             f"`{command}` — 2 cores, {time.strftime('%Y-%m-%d %H:%M')}. Mean ± sd over the seeds on the eval data "
             "(ag7600's 1,600 rows; SST-2's 872-row dev set). Before: the model's own probabilities (ngram-linear: "
             "the softmax of its SVM scores); after: with the temperature fitted on the validation part (10% of the "
             "training data; of phrase data such as SST-2's training file, its sentences)."
             " Target: ECE after ≤ 0.02 or ≤ half of before. Floor: the ECE perfectly calibrated "
             "probabilities would show on the same eval texts (the mean over 100 sets of labels drawn from the "
             "run's own probabilities, `textclf.calibration.ece_floor`): an ECE within about one floor of it is "
             "as calibrated as the eval set can tell. Two temperatures chosen on the eval data itself, never what "
             "a run uses: eval-fitted, the log-loss minimum's ECE; best T, the lowest ECE of any temperature "
             "(0.2–5× the run's; ECE is jagged in T, so an optimistic bound).", "",
             "| data | model | seeds | accuracy % | ECE before | ECE after | floor | eval-fitted | best T "
             "| adaptive ECE after | NLL before → after | target |", "|" + "---|" * 12]
    lines += [f"| {r['dataset']} | {r['model']} | {r['seeds']} | {r['accuracy']:.2f} ± {r['accuracy_sd']:.2f} | "
              f"{r['ece_before']:.4f} ± {r['ece_before_sd']:.4f} | {r['ece_after']:.4f} ± {r['ece_after_sd']:.4f} | "
              f"{r['ece_floor']:.4f} | {r['ece_eval_fitted']:.4f} | {r['ece_best_temperature']:.4f} | "
              f"{r['adaptive_ece_after']:.4f} | {r['nll_before']:.3f} → {r['nll_after']:.3f} | "
              f"{'met' if r['met'] else 'missed'} |" for r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = study_parser(__doc__, OUT / "calibration.json")
    parser.add_argument("--models", default="default,ngram-mlp,transformer")
    args = parser.parse_args()
    rows = []
    for dataset in args.datasets.split(","):
        for model in args.models.split(","):
            rows.append(row(dataset, model, runs_of(dataset, model, args.seeds)))
            print(rows[-1], flush=True)
    command = "python bench/calibration.py " + " ".join(sys.argv[1:])
    publish({"benchmark": "calibration", "command": command, "rows": rows}, args.json, args.markdown,
            "calibration", table(rows, command))


if __name__ == "__main__":
    main()
