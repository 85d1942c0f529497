"""Whether a run's probabilities mean what they say, and temperature scaling to make them.

Measures (on any probabilities and labels): the expected calibration error, with 15 equal-width bins
(ECE, Guo et al. 2017) and with 15 equal-mass bins (adaptive ECE, Nixon et al. 2019) of the top
label's probability — for multi-label data, of every label's probability as a yes/no event; the Brier
score; the negative log-likelihood.

Temperature scaling (Guo et al. 2017): one number T, fitted on the validation part (never the eval
data) to minimise the NLL, divides the model's log-probabilities before the softmax — per label
(sigmoid of logit / T) for multi-label data. It never changes which class is most probable. The run's
saved model holds it as its last layer (textclf.models.base.TemperatureScaling), so predict, the
twins, serve and export all give the calibrated probabilities.
"""

from __future__ import annotations

import numpy as np

BINS = 15
EPS = 1e-7
T_RANGE = (0.05, 20.0)  # temperatures of probabilities (a log-uniform grid, then refined)
SCORE_RANGE = (float(np.exp(-5)), float(np.exp(5)))  # of scores' softmax (ngram-linear's SVM margins: no probabilities)
FLOOR_WORK = 20_000_000  # ece_floor draws at most this many events in all (at least 10 draws)
MIN_ERRORS = 10  # fewer wrong validation answers than this fit no temperature of probabilities (per label: T 1)


def _events(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) pairs: the top label's probability and whether it is right; multi-label:
    every label's probability and whether the label is there."""
    from textclf import task

    probs = np.asarray(probs, np.float64)
    if labels.ndim == 2:
        return probs.ravel(), labels.astype(bool).ravel()
    return probs.max(axis=1), task.decide(probs) == labels


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = BINS, adaptive: bool = False) -> float:
    """Expected calibration error: the |accuracy - confidence| of each bin, weighted by its share."""
    confidence, correct = _events(probs, labels)
    if len(confidence) == 0:
        return 0.0
    if adaptive:
        order = np.argsort(confidence, kind="stable")
        groups = np.array_split(order, min(bins, len(order)))
    else:
        edges = np.minimum((confidence * bins).astype(int), bins - 1)
        groups = [np.flatnonzero(edges == b) for b in range(bins)]
    total = len(confidence)
    return float(sum(len(g) / total * abs(correct[g].mean() - confidence[g].mean()) for g in groups if len(g)))


def ece_floor(probs: np.ndarray, multilabel: bool, draws: int = 100, seed: int = 0) -> float:
    """The ECE that perfectly calibrated probabilities would show on this many texts: the mean ECE of
    `probs` against `draws` sets of labels drawn from `probs` themselves. An ECE near it is as calibrated as
    these texts can tell (872 texts of SST-2's dev set: ~0.025 — a measured ECE below that is luck).

    A drawn label makes the top label right with the top probability (multi-label: each label is there with
    its probability), so each draw is one Bernoulli per event in ECE's bins; at most FLOOR_WORK events are
    drawn in all (fewer draws for large data, at least 10)."""
    probs = np.asarray(probs, np.float64)
    if probs.size == 0:
        return 0.0
    confidence = probs.ravel() if multilabel else probs.max(axis=1) / np.maximum(probs.sum(axis=1), EPS)
    edges = np.minimum((confidence * BINS).astype(int), BINS - 1)
    expected = np.bincount(edges, weights=confidence, minlength=BINS)
    rng = np.random.default_rng(seed)
    rounds = max(10, min(draws, FLOOR_WORK // len(confidence)))
    found = [np.abs(np.bincount(edges, weights=rng.random(len(confidence)) < confidence, minlength=BINS) - expected)
             .sum() / len(confidence) for _ in range(rounds)]
    return float(np.mean(found))


def brier(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared difference between the probabilities and the one-hot (multi-hot) truth, summed over
    the classes (multi-label: averaged over the labels)."""
    probs = np.asarray(probs, np.float64)
    if labels.ndim == 2:
        return float(np.mean((probs - labels) ** 2))
    truth = np.zeros_like(probs)
    truth[np.arange(len(labels)), labels] = 1.0
    return float(np.mean(np.sum((probs - truth) ** 2, axis=1)))


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the truth (multi-label: binary cross-entropy averaged over labels)."""
    p = np.clip(np.asarray(probs, np.float64), EPS, 1 - EPS)
    if labels.ndim == 2:
        return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))
    return float(-np.mean(np.log(p[np.arange(len(labels)), labels])))


def measures(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    return {"ece": ece(probs, labels), "adaptive_ece": ece(probs, labels, adaptive=True),
            "brier": brier(probs, labels), "nll": nll(probs, labels)}


def scale(probs: np.ndarray, temperature, multilabel: bool) -> np.ndarray:
    """Probabilities at `temperature` (a number, or one per label): softmax(log p / T), or sigmoid(logit p / T)."""
    p = np.clip(np.asarray(probs, np.float64), EPS, 1 - EPS)
    t = np.asarray(temperature, np.float64)
    if multilabel:
        return (1.0 / (1.0 + np.exp(-(np.log(p) - np.log1p(-p)) / t))).astype(np.float32)
    z = np.log(p) / t
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def errors(probs: np.ndarray, labels: np.ndarray) -> int | list[int]:
    """Wrong answers of the probabilities (multi-label: per label, at 0.5)."""
    from textclf import task

    if labels.ndim == 2:
        return [int(((probs[:, j] >= 0.5) != labels[:, j].astype(bool)).sum()) for j in range(labels.shape[1])]
    return int((task.decide(probs) != labels).sum())


def fit_temperature(probs: np.ndarray, labels: np.ndarray, scores: bool = False) -> float | list[float] | None:
    """The temperature minimising the NLL of `labels` (a number; per label for multi-label data), within
    T_RANGE — or SCORE_RANGE for `scores` (the softmax of a margin's scores, which needs a scale whatever
    its errors). Probabilities with fewer than MIN_ERRORS wrong answers keep theirs: the NLL of an
    all-right validation part falls without end as T -> 0, and T 1 is the model's own (None for
    single-label data; 1 for such a label)."""
    bounds = SCORE_RANGE if scores else T_RANGE
    wrong = errors(probs, labels)
    if labels.ndim == 2:
        return [_fit_one(probs[:, [j]], labels[:, [j]], True, bounds) if scores or wrong[j] >= MIN_ERRORS else 1.0
                for j in range(labels.shape[1])]
    if not scores and wrong < MIN_ERRORS:
        return None
    return _fit_one(probs, labels, False, bounds)


def _fit_one(probs: np.ndarray, labels: np.ndarray, multilabel: bool, bounds=T_RANGE) -> float:
    from scipy.optimize import minimize_scalar

    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    grid = np.linspace(lo, hi, 61)  # the NLL in log T is smooth but may be flat: a grid first, then refine
    losses = [nll(scale(probs, np.exp(g), multilabel), labels) for g in grid]
    best = int(np.argmin(losses))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    found = minimize_scalar(lambda g: nll(scale(probs, np.exp(g), multilabel), labels), bounds=(a, b),
                            method="bounded", options={"xatol": 1e-4})
    g = found.x if found.success and found.fun <= losses[best] else grid[best]
    return float(np.exp(g))
