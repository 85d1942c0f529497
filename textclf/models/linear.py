"""`ngram-linear` without TensorFlow: TF-IDF rows in numpy (models/ngram_features.py), scikit-learn's liblinear.

The default model is the first thing every user runs, so it costs what TF-IDF + LinearSVC
costs: no TensorFlow import, the features made once (vectorised, chunk by chunk), and the
head fitted by liblinear — LinearSVC's own solver (dual coordinate descent on the squared
hinge, one-vs-rest), the objective the earlier L-BFGS fit minimised, at a fraction of its time.
C is chosen on the validation part with the grid's fits run two at a time (liblinear releases
the GIL), then refitted on all training rows.

The fitted model is saved as arrays in the n-gram twin format (textclf.lite: vocabulary keys,
idf, word hashes, kernel, bias, softmax scale), which `predict`, `evaluate` and `serve` run
with numpy; `export` builds the equivalent Keras model from them (models/ngram.py's layers).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from textclf.models import ngram_features as nf

# The C values tried; the one with the best validation score is refitted on all training texts.
C_GRID = {"squared_hinge": (0.1, 0.3, 1.0), "crossentropy": (3.0, 10.0, 30.0)}


def _estimator(loss: str, c: float, multilabel: bool, class_weight: dict | None, params):
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import LinearSVC

    if loss == "squared_hinge":
        one = LinearSVC(C=c, loss="squared_hinge", dual=True, tol=params.tol, max_iter=params.max_iter,
                        class_weight=class_weight)
    else:
        one = LogisticRegression(C=c, solver="liblinear" if multilabel else "lbfgs", tol=params.tol,
                                 max_iter=params.max_iter, class_weight=class_weight)
    return OneVsRestClassifier(one) if multilabel else one


def _fit(x, y, loss: str, c: float, multilabel: bool, class_weight, params, num_classes: int):
    """(kernel float64 (width, classes), bias (classes,), iterations) of one fit."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    est = _estimator(loss, c, multilabel, class_weight, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: the fit is still usable
        est.fit(x, y)
    if multilabel:
        coefs = [e.coef_ for e in est.estimators_]
        coef = np.concatenate(coefs) if coefs else np.zeros((0, x.shape[1]))
        bias = np.concatenate([np.atleast_1d(e.intercept_) for e in est.estimators_])
        iterations = int(max(np.max(getattr(e, "n_iter_", 0)) for e in est.estimators_))
    else:
        coef, bias = est.coef_, np.atleast_1d(est.intercept_)
        iterations = int(np.max(est.n_iter_))
        if coef.shape[0] == 1 and num_classes == 2:  # one score s for the second class: [-s, s] (or ±s/2)
            half = 1.0 if loss == "squared_hinge" else 0.5
            coef, bias = np.concatenate([-half * coef, half * coef]), np.array([-half * bias[0], half * bias[0]])
    # Classes without any example in y have no column: give them a score that never wins.
    kernel = np.asarray(coef, np.float64).T
    if not multilabel and kernel.shape[1] != num_classes:
        present = np.unique(y)
        full = np.zeros((kernel.shape[0], num_classes))
        full_bias = np.full(num_classes, -1e3)
        full[:, present], full_bias[present] = kernel, bias
        kernel, bias = full, full_bias
    return kernel, np.asarray(bias, np.float64), iterations


def scores(x, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return np.asarray(x @ kernel) + bias


def probabilities(scores: np.ndarray, multilabel: bool) -> np.ndarray:
    if multilabel:
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-scores))
    z = np.exp(scores - scores.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def log_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean log-loss of softmax(scores) (class ids), or of sigmoid(scores) per label (multi-hot rows)."""
    if labels.ndim == 2:
        return float(np.mean(np.logaddexp(0.0, scores) - labels * scores))
    z = scores - scores.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]))


def validation_score(scores: np.ndarray, labels: np.ndarray, balanced: bool) -> float:
    """What C is chosen by: accuracy (balanced: the mean recall over classes), or for multi-hot labels
    the micro-F1 of the labels with a positive score."""
    if labels.ndim == 2:
        predicted, truth = scores > 0, labels.astype(bool)
        tp = np.sum(predicted & truth)
        return float(2 * tp / max(predicted.sum() + truth.sum(), 1))
    hits = scores.argmax(axis=1) == labels
    if not balanced:
        return float(np.mean(hits))
    return float(np.mean([hits[labels == k].mean() for k in np.unique(labels)]))


def fit_linear(params, texts: np.ndarray, labels: np.ndarray, num_classes: int, held: np.ndarray | None, *,
               class_weight: np.ndarray | None = None, say: Callable[[str], None] = lambda line: None) -> dict:
    """Features of all training `texts`, C chosen on the `held` rows (fitted on the others), then the chosen C
    refitted on every row. Returns {"arrays": the twin arrays, "history", "c", "softmax_scale",
    "train_examples", "val_probabilities", "feature_seconds", "solve_seconds"}.

    The vocabulary and idf come from all training texts (as `training.refit` does for the Keras
    n-gram models); without `held`, the first C of the grid is fitted (or params.c).
    """
    import scipy.optimize

    multilabel = labels.ndim == 2
    started = time.perf_counter()
    vocab, x = nf.fit_vocabulary(list(texts), ngrams=params.ngrams, char_ngrams=params.char_ngrams,
                                 min_df=params.min_df, max_tokens=params.vocab_size, char_min_df=params.char_min_df,
                                 char_max_tokens=params.char_vocab_size)
    x = x.astype(np.float64)  # liblinear's own type: converted once here rather than in every fit
    feature_seconds = time.perf_counter() - started
    say(f"features: {x.shape[0]:,} texts x {vocab.width - 2:,} n-grams ({x.nnz:,} non-zero), "
        f"{feature_seconds:.1f} s")
    started = time.perf_counter()
    cw = None if class_weight is None else dict(enumerate(np.asarray(class_weight, np.float64).tolist()))
    grid = (params.c,) if params.c else C_GRID[params.loss]
    history: dict[str, list[float]] = {"c": [], "val_accuracy": [], "iterations": []}
    best, best_fit, best_score, val_scores = grid[0], None, -1.0, None
    if held is not None and held.any() and len(grid) > 1:
        fit_x, fit_y, val_x, val_y = x[~held], labels[~held], x[held], labels[held]
        fit = lambda c: _fit(fit_x, fit_y, params.loss, c, multilabel, cw, params, num_classes)
        with ThreadPoolExecutor(max_workers=2) as pool:  # liblinear runs without the GIL: both cores
            fits = list(pool.map(fit, grid))
        for c, (kernel, bias, iterations) in zip(grid, fits):
            s = scores(val_x, kernel, bias)
            score = validation_score(s, val_y, class_weight is not None)
            history["c"].append(c)
            history["val_accuracy"].append(score)
            history["iterations"].append(iterations)
            say(f"C {c:g}: validation {'micro-F1' if multilabel else 'accuracy'} {100 * score:.2f}% "
                f"({iterations} liblinear iterations)")
            if score > best_score:
                best, best_score, val_scores = c, score, s
        del fits
    elif held is not None and held.any():
        kernel, bias, _ = _fit(x[~held], labels[~held], params.loss, best, multilabel, cw, params, num_classes)
        val_scores = scores(x[held], kernel, bias)
    kernel, bias, iterations = _fit(x, labels, params.loss, best, multilabel, cw, params, num_classes)
    history["refit_iterations"] = [iterations]
    solve_seconds = time.perf_counter() - started
    scale, val_probs = 1.0, None
    if val_scores is not None:
        # The temperature that minimises the validation part's log-loss, from the chosen C's scores (fitted
        # without those rows); the thresholds of a multi-label run are tuned on the same probabilities.
        val_y = labels[held]
        scale = float(np.exp(scipy.optimize.minimize_scalar(lambda t: log_loss(np.exp(t) * val_scores, val_y),
                                                            bounds=(-5, 5), method="bounded").x))
        val_probs = probabilities(scale * val_scores, multilabel).astype(np.float32)
    arrays = twin_arrays(vocab, kernel, bias, scale, multilabel)
    return {"arrays": arrays, "history": history, "c": best, "softmax_scale": scale, "train_examples": len(labels),
            "val_probabilities": val_probs, "feature_seconds": feature_seconds, "solve_seconds": solve_seconds}


def twin_arrays(vocab: nf.Vocabulary, kernel: np.ndarray, bias: np.ndarray, scale: float, multilabel: bool) -> dict:
    """The model in textclf.lite's n-gram format: what predict, evaluate, serve and export read."""
    from textclf.lite import FORMAT

    words = list(vocab.hashes.table)
    return {"format": np.array(FORMAT), "kind": np.array("ngram"), "ngrams": np.array(vocab.ngrams),
            "char_ngrams": np.array(vocab.char_ngrams), "punctuation": np.array(nf.PUNCTUATION),
            "keys": vocab.keys, "idf": vocab.idf, "char_start": np.array(vocab.char_start),
            "words": np.frombuffer("\n".join(words).encode("utf-8", "surrogatepass"), np.uint8),
            "word_hashes": np.fromiter(vocab.hashes.table.values(), np.int64, len(words)),
            "layers": np.array(1), "kernel_0": kernel.astype(np.float32), "bias_0": bias.astype(np.float32),
            "activation_0": np.array("linear"), "scale": np.array(scale, np.float32),
            "scale_output": np.array("sigmoid" if multilabel else "softmax")}
