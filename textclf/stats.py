"""Uncertainty of a metric and significance of a difference (numpy + scipy; no TensorFlow).

- `summary(values)`: mean, sample standard deviation and the 95% confidence interval of the
  mean (Student's t with n - 1 degrees of freedom) of one metric over the runs of a group.
- `mcnemar(correct_a, correct_b)`: McNemar's exact test on paired per-example correctness
  (two-sided binomial test of the discordant pairs).
- `paired_bootstrap(correct_a, correct_b)`: a percentile interval of the accuracy difference,
  resampling the eval examples (the same draw for both sides: the pairing is kept) and, for
  groups, the runs of each group too, so seed noise widens the interval.
- `compare_correctness(...)`: both, and the verdict: the leader is ahead by more than noise
  when p < 0.05 and the interval excludes 0.

Correctness arrays are (examples,) for one run or (runs, examples) for a group of runs on the
same eval data. Groups enter McNemar's test run against run (paired in seed order; the median
p over the pairs): a majority vote would compare the groups' ensembles, which can be far more
accurate than their runs, instead of the runs whose mean accuracy is reported.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

LEVEL = 0.95
ALPHA = 0.05
BOOTSTRAP_SAMPLES = 10_000


def summary(values: Sequence[float], level: float = LEVEL) -> dict[str, Any]:
    """Mean, sd (ddof 1), n and the t-interval of the mean (None for fewer than two values)."""
    from scipy import stats

    x = np.asarray([float(v) for v in values], dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "ci": None}
    mean = float(x.mean())
    if n < 2:
        return {"n": 1, "mean": mean, "sd": None, "ci": None}
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci": [mean - half, mean + half]}


def _as_runs(correct) -> np.ndarray:
    c = np.asarray(correct, dtype=bool)
    return c[None, :] if c.ndim == 1 else c


def mcnemar(correct_a, correct_b) -> dict[str, Any]:
    """McNemar's exact test: b = only A right, c = only B right, p = two-sided binomial(b; b + c, 1/2).

    Groups are compared run against run, paired in group order (seed order; a single run is
    paired with each run of the other side; of unequal groups the first runs): the p-value is
    the median over the pairs, each pair's counts and p are in `pairs`.
    """
    from scipy import stats

    a, b = _as_runs(correct_a), _as_runs(correct_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired correctness of different lengths: {a.shape[1]} and {b.shape[1]} examples")
    n = max(len(a), len(b)) if 1 in (len(a), len(b)) else min(len(a), len(b))
    pairs = []
    for i in range(n):
        x, y = a[min(i, len(a) - 1)], b[min(i, len(b) - 1)]
        only_a, only_b = int(np.sum(x & ~y)), int(np.sum(~x & y))
        p = 1.0 if only_a + only_b == 0 else float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
        pairs.append({"only_a_correct": only_a, "only_b_correct": only_b, "p_value": p})
    if n == 1:
        return dict(pairs[0])
    return {"p_value": float(np.median([q["p_value"] for q in pairs])), "pairs": pairs}


def paired_bootstrap(correct_a, correct_b, *, samples: int = BOOTSTRAP_SAMPLES, level: float = LEVEL,
                     seed: int = 0) -> dict[str, Any]:
    """Accuracy(A) - accuracy(B) and its percentile bootstrap interval (seeded: the same numbers every time)."""
    a, b = _as_runs(correct_a).astype(np.float32), _as_runs(correct_b).astype(np.float32)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"paired correctness of different lengths: {a.shape[1]} and {b.shape[1]} examples")
    n = a.shape[1]
    rng = np.random.default_rng(seed)
    diffs = np.empty(samples, dtype=np.float64)
    chunk = max(1, 2_000_000 // (n * max(len(a), len(b))))
    for start in range(0, samples, chunk):
        k = min(chunk, samples - start)
        rows = rng.integers(0, n, size=(k, n))  # the same examples for both sides
        # each side's runs resampled too (one run: always itself), then averaged per example
        ra = a[rng.integers(0, len(a), size=(k, len(a)))].mean(axis=1)
        rb = b[rng.integers(0, len(b), size=(k, len(b)))].mean(axis=1)
        diffs[start:start + k] = (np.take_along_axis(ra, rows, axis=1).mean(axis=1)
                                  - np.take_along_axis(rb, rows, axis=1).mean(axis=1))
    low, high = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return {"difference": float(a.mean() - b.mean()), "interval": [float(low), float(high)], "samples": samples,
            "level": level}


def compare_correctness(correct_a, correct_b, *, seed: int = 0) -> dict[str, Any]:
    """McNemar and the bootstrap interval; `significant` when p < ALPHA and the interval excludes 0."""
    test = mcnemar(correct_a, correct_b)
    boot = paired_bootstrap(correct_a, correct_b, seed=seed)
    low, high = boot["interval"]
    significant = test["p_value"] < ALPHA and (low > 0 or high < 0)
    leader = None if boot["difference"] == 0 else ("a" if boot["difference"] > 0 else "b")
    return {**test, **boot, "significant": bool(significant), "leader": leader}


def macro_f1(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> float:
    """Macro-F1 over the classes present in `labels` (as textclf's evaluation report computes it);
    multi-hot rows (multi-label): the mean F1 of the labels present."""
    if labels.ndim == 2:
        truth, pred = labels.astype(bool), predicted.astype(bool)
        tp, support = (truth & pred).sum(axis=0), truth.sum(axis=0)
        denom = support + pred.sum(axis=0)
        f1 = np.divide(2.0 * tp, denom, out=np.zeros(labels.shape[1]), where=denom > 0)
        return float(f1[support > 0].mean()) if (support > 0).any() else 0.0
    cm = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes).reshape(num_classes,
                                                                                                 num_classes)
    tp = np.diag(cm).astype(np.float64)
    support, predicted_n = cm.sum(axis=1), cm.sum(axis=0)
    denom = support + predicted_n  # 2tp / (2tp + fp + fn) = 2tp / (support + predicted)
    f1 = np.divide(2 * tp, denom, out=np.zeros(num_classes), where=denom > 0)
    present = support > 0
    return float(f1[present].mean()) if present.any() else 0.0


def paired_bootstrap_f1(labels, predicted_a, predicted_b, num_classes: int, *, samples: int = 2_000,
                        level: float = LEVEL, seed: int = 0) -> dict[str, Any]:
    """Macro-F1(A) - macro-F1(B) (a group: the mean over its runs) with its percentile bootstrap
    interval and a two-sided bootstrap p-value (how often the resampled difference has the other sign)."""
    y = np.asarray(labels, dtype=np.int64)
    pa = np.asarray(predicted_a, dtype=np.int64).reshape(-1, *y.shape)  # (runs, examples[, labels])
    pb = np.asarray(predicted_b, dtype=np.int64).reshape(-1, *y.shape)

    def group_f1(preds: np.ndarray, rows: np.ndarray | None, picks: np.ndarray) -> float:
        yy = y if rows is None else y[rows]
        return float(np.mean([macro_f1(yy, preds[r] if rows is None else preds[r][rows], num_classes) for r in picks]))

    observed = group_f1(pa, None, np.arange(len(pa))) - group_f1(pb, None, np.arange(len(pb)))
    rng = np.random.default_rng(seed)
    diffs = np.empty(samples)
    for i in range(samples):
        rows = rng.integers(0, len(y), size=len(y))
        diffs[i] = (group_f1(pa, rows, rng.integers(0, len(pa), size=len(pa)))
                    - group_f1(pb, rows, rng.integers(0, len(pb), size=len(pb))))
    low, high = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    # (count + 1) / (samples + 1): a bootstrap p is never exactly 0
    p = min(1.0, 2 * (min(int(np.sum(diffs <= 0)), int(np.sum(diffs >= 0))) + 1) / (samples + 1))
    return {"difference": observed, "interval": [float(low), float(high)], "p_value": p, "samples": samples,
            "level": level}
