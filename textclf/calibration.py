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
T_RANGE = (1e-3, 1e3)  # temperatures tried (a log-uniform grid, then refined): hinge scores need small ones


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


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float | list[float]:
    """The temperature minimising the NLL of `labels` (a number; per label for multi-label data)."""
    if labels.ndim == 2:
        return [_fit_one(probs[:, [j]], labels[:, [j]], True) for j in range(labels.shape[1])]
    return _fit_one(probs, labels, False)


def _fit_one(probs: np.ndarray, labels: np.ndarray, multilabel: bool) -> float:
    from scipy.optimize import minimize_scalar

    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    grid = np.linspace(lo, hi, 61)  # the NLL in log T is smooth but may be flat: a grid first, then refine
    losses = [nll(scale(probs, np.exp(g), multilabel), labels) for g in grid]
    best = int(np.argmin(losses))
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    found = minimize_scalar(lambda g: nll(scale(probs, np.exp(g), multilabel), labels), bounds=(a, b),
                            method="bounded", options={"xatol": 1e-4})
    g = found.x if found.success and found.fun <= losses[best] else grid[best]
    return float(np.exp(g))
