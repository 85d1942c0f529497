"""How fast a run predicts, as a user meets it: warm texts/s and a cold `textclf predict`.

`runs compare --speed` and `report --speed` put these beside accuracy, and textclf.reports plots one
against the other (the accuracy-latency frontier of a teacher and its students, say); bench/distill.py
measures with the same code.

- warm: the run's predictor as `textclf predict` loads it (its twin when it has one) on up to
  `WARM_TEXTS` of the run's eval texts, after one warm-up batch; texts per second, the median of `rounds`,
  the runs taking turns;
- cold: `textclf predict TEXT --run DIR` in a fresh process, start to exit; the median of `rounds`,
  the runs taking turns (a busy machine slows each alike).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

WARM_TEXTS = 2000
HEADLINE = "Oil prices jump as OPEC cuts output"
SPEED_METRICS = (("predict_texts_per_second", "predict texts/s (warm)", True),
                 ("cold_predict_seconds", "cold predict (s)", False))


def warm_texts_per_second(run_dirs: Sequence[Path], texts: Sequence[Sequence[str]], rounds: int = 3) -> list[float]:
    """Per run, the median texts/s of its predictor on its `texts` (up to WARM_TEXTS), the runs taking turns
    round by round (a machine busy for a while slows each alike: their ratio holds)."""
    from textclf.prediction import Predictor

    batches = [[str(t) for t in run_texts[:WARM_TEXTS]] or [HEADLINE] for run_texts in texts]
    predictors = [Predictor(Path(run), use_twin=True) for run in run_dirs]
    for predictor, batch in zip(predictors, batches):
        predictor.probabilities(batch[:64])
    speeds: list[list[float]] = [[] for _ in run_dirs]
    for i in turns(len(run_dirs), rounds):
        started = time.perf_counter()
        predictors[i].probabilities(batches[i])
        speeds[i].append(len(batches[i]) / max(time.perf_counter() - started, 1e-9))
    return [statistics.median(s) for s in speeds]


def turns(n: int, rounds: int) -> list[int]:
    """The order n runs are timed in: each once a round (at least one), round r starting at run r mod n."""
    order = list(range(n))
    return [i for r in range(max(rounds, 1)) for i in order[r % n:] + order[: r % n]] if n else []


def cold_predict_seconds(run_dirs: Sequence[Path], rounds: int = 3) -> list[float]:
    """Per run, the median seconds of a fresh `textclf predict HEADLINE --run DIR` (RunError if one fails)."""
    from textclf.errors import RunError

    times: list[list[float]] = [[] for _ in run_dirs]
    for i in turns(len(run_dirs), rounds):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "textclf", "predict", HEADLINE, "--run", str(run_dirs[i])],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            last = (done.stderr.strip().splitlines() or ["failed"])[-1]
            raise RunError(f"cold predict of {run_dirs[i]}: {last}")
        times[i].append(time.perf_counter() - started)
    return [statistics.median(t) for t in times]


def measure(run_dirs: Sequence[Path], rounds: int = 3) -> dict[str, list[float]]:
    """SPEED_METRICS of each run (warm on its own eval texts)."""
    from textclf.evaluation import eval_examples

    warm = warm_texts_per_second(run_dirs, [eval_examples(run).texts for run in run_dirs], rounds)
    return {"predict_texts_per_second": warm, "cold_predict_seconds": cold_predict_seconds(run_dirs, rounds)}
