"""`ngram-linear` without TensorFlow: TF-IDF rows in numpy (models/ngram/features.py), scikit-learn's liblinear.

The default model is the first thing every user runs, so it costs what TF-IDF + LinearSVC
costs: no TensorFlow import, the features made once (vectorised, chunk by chunk), and the
head fitted by LIBLINEAR (the `liblinear-multicore` binding of its authors) — the solver
scikit-learn's LinearSVC wraps (dual coordinate descent on the squared hinge, one-vs-rest,
intercept as a feature of value 1), in a newer release that fitted ag7600 and SST-2 twice as
fast, with the rows converted once and shared by every fit (scikit-learn converts them again
for each). Every (C, class) fit is a task on both cores (the ctypes call releases the GIL). C
is chosen on the validation part, then refitted on all training rows.

The fitted model is saved as arrays in the n-gram twin format (textclf.twins: vocabulary keys,
idf, word hashes, kernel, bias, softmax scale), which `predict`, `evaluate` and `serve` run
with numpy; `export` builds the equivalent Keras model from them (models/ngram/model.py's layers).
"""

from __future__ import annotations

import time
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

from textclf import textrules
from textclf.models.ngram import features as nf
from textclf.processes import Children, in_fresh_process, kill

# The C values tried; the one with the best validation score is refitted on all training texts.
C_GRID = {"squared_hinge": (0.1, 0.3, 1.0), "crossentropy": (3.0, 10.0, 30.0)}


class _Problem:
    """A CSR matrix as liblinear's problem (converted once, with a bias feature of value 1, as
    LinearSVC's intercept_scaling=1); `labelled(y)` shares its rows under other labels (each thread
    its own labels, the rows read-only)."""

    def __init__(self, x, rows: np.ndarray | None = None, base: "_Problem | None" = None) -> None:
        if base is None:
            self.base = _convert(x)
            self.width = x.shape[1]
            self.rows = None
        else:  # some rows of `base`, sharing its converted rows
            self.base, self.width, self.rows = base.base, base.width, rows

    def subset(self, rows: np.ndarray) -> "_Problem":
        """The problem of these rows (indices), without converting them again."""
        return _Problem(None, rows=np.asarray(rows), base=self)

    def labelled(self, y: np.ndarray):
        from ctypes import POINTER, c_double, c_uint64, cast

        from liblinear.liblinear import feature_node, problem

        base = self.base
        prob = problem.__new__(problem)
        n = base.l if self.rows is None else len(self.rows)
        prob.l, prob.n, prob.bias = n, base.n, base.bias
        if self.rows is None:
            prob.x = base.x
        else:
            prob.x = prob.rows_ptrs = (POINTER(feature_node) * n)()
            mine = np.ctypeslib.as_array(cast(prob.rows_ptrs, POINTER(c_uint64)), (n,))
            mine[:] = np.ctypeslib.as_array(cast(base.x, POINTER(c_uint64)), (base.l,))[self.rows]
        prob.keep = (base, self)  # the converted rows stay alive while the problem is in use
        prob.y = (c_double * n)()
        np.ctypeslib.as_array(prob.y, (n,))[:] = y
        return prob


CONVERT_BLOCK = 1 << 22  # non-zeros laid out at once by _convert (bounds its temporaries: ~100 MB)


def _convert(x):
    """liblinear's problem of CSR rows `x` with a bias feature of value 1 (LinearSVC's intercept_scaling=1):
    the binding's own layout (`csr_to_problem` + `set_bias`: each row's nodes, then the bias node, then
    a -1 terminator, in one array of feature_node), made with numpy.

    The binding lays rows out in a Python loop, row by row, unless numba is installed (it is not a
    dependency): SST-2's 67,349 rows took 0.45 s there, held the GIL, and touched 16 bytes of new memory
    per non-zero; here whole blocks of rows at a time. tests/models/test_ngram_features.py compares the two."""
    from ctypes import POINTER, addressof, c_double, c_uint64, cast, sizeof

    from liblinear.liblinear import feature_node, problem

    n, width = x.shape
    indptr = x.indptr.astype(np.int64)
    rowptr = indptr + 2 * np.arange(n + 1, dtype=np.int64)  # each row: its nodes, the bias node, the terminator
    space = np.empty(x.nnz + 2 * n, dtype=feature_node)
    index, value = space["index"], space["value"]
    ends = rowptr[1:]
    start = 0
    while start < n:  # rows in blocks of about CONVERT_BLOCK non-zeros: the features' slots, then the rest
        stop = int(np.searchsorted(indptr, indptr[start] + CONVERT_BLOCK, side="right")) - 1
        stop = min(n, max(stop, start + 1))
        lo, hi = int(rowptr[start]), int(rowptr[stop])
        slots = np.ones(hi - lo, bool)
        slots[ends[start:stop] - 2 - lo] = slots[ends[start:stop] - 1 - lo] = False
        a, b = int(indptr[start]), int(indptr[stop])
        index[lo:hi][slots] = x.indices[a:b] + 1
        value[lo:hi][slots] = x.data[a:b]
        start = stop
    index[ends - 2], value[ends - 2] = width + 1, 1.0  # the bias feature (index n + 1, value 1)
    index[ends - 1], value[ends - 1] = -1, 0.0
    prob = problem.__new__(problem)
    prob.l, prob.n, prob.bias = n, width + 1, 1.0
    prob.x_space, prob.rowptr = space, rowptr  # alive as long as the problem
    prob.y = (c_double * n)()
    prob.x = (POINTER(feature_node) * n)()
    base = addressof(space.ctypes.data_as(POINTER(feature_node))[0])
    np.ctypeslib.as_array(cast(prob.x, POINTER(c_uint64)), (n,))[:] = rowptr[:-1] * sizeof(feature_node) + base
    return prob


def _binary(problem: _Problem, positive: np.ndarray, loss: str, c: float, params, weights=(1.0, 1.0)):
    """One binary fit (liblinear; `positive` says which rows are +1): (w over the columns, b, iterations).

    liblinear's dual solver visits the examples in an order drawn from a generator inside the
    library that no call can reseed: a fit's weights depend on the fits the process ran before it
    (see _Fits, which runs each group of fits in a fresh process).
    """
    from liblinear.liblinear import liblinear, parameter, toPyModel

    if not positive.any() or positive.all():  # one class only: a constant answer, no fit
        return np.zeros(problem.width), (1.0 if positive.all() else -1.0), 0
    solver = 1 if loss == "squared_hinge" else 7  # dual L2-loss SVC (LinearSVC's), dual logistic regression
    param = parameter(f"-s {solver} -c {c} -e {params.tol} -B 1 -q -w1 {weights[1]} -w-1 {weights[0]}")
    prob = problem.labelled(np.where(positive, 1.0, -1.0))
    model = toPyModel(liblinear.train(prob, param))
    w = np.ctypeslib.as_array(model.w, (problem.width + 1,)).copy()
    sign = 1.0 if model.get_labels()[0] == 1 else -1.0  # liblinear's w scores its first label
    return sign * w[:-1], sign * w[-1] * model.bias, 0


# The problems the fitting processes read: set before they fork, so each inherits them without a copy.
_SHARED: dict[int, "_Problem"] = {}


def _task(key: int, columns: list[np.ndarray], loss: str, c: float, params, weights: list) -> list[tuple]:
    """Some binary fits of one C, one after another (in a fresh process: see _Fits)."""
    return [_binary(_SHARED[key], col, loss, c, params, w) for col, w in zip(columns, weights)]


class _Fits:
    """One-vs-rest binary fits, every (rows, C, class) fit a task for one of two processes:
    `submit(problem, labels, C)` starts one C's fits, `result(handle)` gives its
    (kernel (width, classes), bias (classes,)) (one score negated for two classes; a class without an
    example gets a score that never wins)."""

    def __init__(self, loss: str, params, num_classes: int, class_weight, problems: list[_Problem]) -> None:
        self.loss, self.params, self.num_classes = loss, params, num_classes
        self.cw = None if class_weight is None else np.asarray(class_weight, np.float64)
        _SHARED.clear()
        _SHARED.update(enumerate(problems))
        self.keys = {id(p): i for i, p in enumerate(problems)}
        # Two processes, each forked for one task: liblinear's dual solver draws from a generator in
        # the library whose state carries over from fit to fit (threads would share it, a long-lived
        # worker would carry it from task to task: the same run giving other weights each time). A
        # process forked from this one, which never fits, starts from the generator's first state,
        # and inherits the converted rows without a copy.
        self.pool = ThreadPoolExecutor(2)  # two threads, each waiting on its child
        self.children = Children()

    def close(self, abort: bool = False) -> None:
        """Wait for the fits; with `abort` (an interrupt, an error) stop the running ones first."""
        if abort:
            kill(self.children)
        self.pool.shutdown(wait=True, cancel_futures=True)
        _SHARED.clear()

    def _columns(self, labels: np.ndarray) -> list[np.ndarray]:
        if labels.ndim == 2:
            return [labels[:, k].astype(bool) for k in range(labels.shape[1])]
        if self.num_classes == 2:
            return [labels == 1]
        return [labels == k for k in range(self.num_classes)]

    def _weights(self, k: int, multilabel: bool) -> tuple[float, float]:
        if multilabel or self.cw is None:
            return 1.0, 1.0
        if self.num_classes == 2:
            return float(self.cw[0]), float(self.cw[1])
        return 1.0, float(self.cw[k])  # LinearSVC's class_weight in one-vs-rest: C of class k's own rows

    def submit(self, problem: _Problem, labels: np.ndarray, c: float, split: int = 1):
        """Start C's fits on these rows, as `split` tasks (a fixed share of the classes each)."""
        multilabel = labels.ndim == 2
        columns = self._columns(labels)
        weights = [self._weights(k, multilabel) for k in range(len(columns))]
        groups = [g for g in np.array_split(np.arange(len(columns)), max(1, min(split, len(columns)))) if len(g)]
        args = [(self.keys[id(problem)], [columns[k] for k in g], self.loss, c, self.params, [weights[k] for k in g])
                for g in groups]
        futures = [self.pool.submit(in_fresh_process, self.children, "a liblinear fit", _task, *a) for a in args]
        return futures, columns, multilabel

    def result(self, handle) -> tuple[np.ndarray, np.ndarray]:
        futures, columns, multilabel = handle
        parts = [fit for f in futures for fit in f.result()]
        kernel = np.stack([w for w, _, _ in parts], axis=1)
        bias = np.array([b for _, b, _ in parts])
        if not multilabel and self.num_classes == 2:
            half = 1.0 if self.loss == "squared_hinge" else 0.5
            return np.concatenate([-half * kernel, half * kernel], axis=1), np.array([-half, half]) * bias[0]
        if not multilabel:
            absent = ~np.array([col.any() for col in columns])
            kernel[:, absent], bias[absent] = 0.0, -1e3
        return kernel, bias


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


def make_features(params, texts: np.ndarray, say: Callable[[str], None] = lambda line: None, progress=None):
    """(vocabulary, TF-IDF rows, seconds) of the training texts; ModelError when they have no n-gram.
    `progress(characters done, total)` is called as chunks are counted."""
    from textclf.errors import ModelError

    started = time.perf_counter()
    nf.lean_allocator()
    try:
        vocab, x = nf.fit_vocabulary(list(texts), ngrams=params.ngrams, char_ngrams=params.char_ngrams,
                                     min_df=params.min_df, max_tokens=params.vocab_size,
                                     char_min_df=params.char_min_df, char_max_tokens=params.char_vocab_size,
                                     progress=progress)
    except ValueError:
        raise ModelError("the training texts have no words once lower-cased and stripped of punctuation: "
                         "an n-gram model has nothing to learn from") from None
    nf.give_back_memory()
    seconds = time.perf_counter() - started
    say(f"features: {x.shape[0]:,} texts x {vocab.width - 2:,} n-grams ({x.nnz:,} non-zero), {seconds:.1f} s")
    return vocab, x, seconds


def fit_linear(params, texts: np.ndarray, labels: np.ndarray, num_classes: int, held: np.ndarray | None, *,
               class_weight: np.ndarray | None = None, say: Callable[[str], None] = lambda line: None,
               features=None, idle: Callable[[], None] | None = None) -> dict:
    """Features of all training `texts` (`features`: make_features' result, when already made), C chosen on
    the `held` rows (fitted on the others), then the chosen C refitted on every row. Returns {"arrays": the
    twin arrays (softmax scale 1: the run calibrates them), "history", "c", "softmax_scale", "train_examples",
    "val_probabilities", "feature_seconds", "solve_seconds"}.

    The vocabulary and idf come from all training texts (as `training.refit` does for the Keras
    n-gram models); without `held`, the first C of the grid is fitted (or params.c). `idle()` is called
    once the fits are running (this process only waits for them then: e.g. imports for later).
    """
    multilabel = labels.ndim == 2
    vocab, x, feature_seconds = features or make_features(params, texts, say)
    del features
    started = time.perf_counter()
    validating = held is not None and held.any()
    val_x = x[held] if validating else None
    problem = _Problem(x)
    del x  # liblinear holds its own copy of the rows; the validation part's are kept for scoring
    nf.give_back_memory()
    part = problem.subset(np.flatnonzero(~held)) if validating else problem
    fits = _Fits(params.loss, params, num_classes, class_weight, [problem, part])
    try:
        best, kernel, bias, val_scores, history = _search(fits, problem, part, labels, held, val_x, params,
                                                          class_weight is not None, say, idle)
    except BaseException:
        fits.close(abort=True)  # e.g. Ctrl-C: the children stop now rather than finish their fits
        raise
    fits.close()
    solve_seconds = time.perf_counter() - started
    # The scores' softmax (sigmoid) at scale 1: the run's calibration step fits a temperature on the
    # validation part's (training/calibrate.py) and the twin applies it.
    scale, val_probs = 1.0, None
    if val_scores is not None:
        val_probs = probabilities(val_scores, multilabel).astype(np.float32)
    arrays = twin_arrays(vocab, kernel, bias, scale, multilabel)
    return {"arrays": arrays, "history": history, "c": best, "softmax_scale": scale, "train_examples": len(labels),
            "val_probabilities": val_probs, "feature_seconds": feature_seconds, "solve_seconds": solve_seconds}


def _search(fits: _Fits, problem: _Problem, part: _Problem, labels, held, val_x, params, balanced: bool, say,
            idle=None):
    """C from the grid by its validation score (fitted on `part`), then refitted on all rows: (C, kernel,
    bias, the chosen C's validation scores or None, history)."""
    grid = (params.c,) if params.c else C_GRID[params.loss]
    history: dict[str, list[float]] = {"c": [], "val_accuracy": []}
    if val_x is None:
        handle = fits.submit(problem, labels, grid[0], split=2)
        if idle is not None:
            idle()
        kernel, bias = fits.result(handle)
        return grid[0], kernel, bias, None, history
    # With one task per C (one binary fit) the grid leaves a core idle in its last round: the refit of the
    # largest C (SST-2's choice) starts first in it, and is done when the choice is made (else the chosen C
    # is refitted after it). With two tasks per C both cores are busy throughout, and a refit guessed
    # wrong would be a round of work thrown away.
    if labels.ndim == 2:
        columns = labels.shape[1]
    else:
        columns = 1 if fits.num_classes == 2 else fits.num_classes
    guess = len(grid) > 1 and columns == 1
    speculative = {max(grid): fits.submit(problem, labels, max(grid), split=2)} if guess else {}
    # Largest C first: its fits take longest, and the short ones fill in behind them (SST-2: two rounds
    # of 1.8 + 0.9 and 1.5 + 1.1 s instead of 1.8 + 1.5).
    handles = dict(sorted(((c, fits.submit(part, labels[~held], c, split=2)) for c in sorted(grid, reverse=True))))
    threading.Thread(target=_import_optimize, daemon=True).start()  # for the calibration step, while the fits run
    if idle is not None:
        idle()
    val_y = labels[held]
    best, best_score, val_scores = grid[0], -1.0, None
    for c in grid:
        handle = handles[c]
        s = scores(val_x, *fits.result(handle))
        score = validation_score(s, val_y, balanced)
        history["c"].append(c)
        history["val_accuracy"].append(score)
        say(f"C {c:g}: validation {'micro-F1' if labels.ndim == 2 else 'accuracy'} {100 * score:.2f}%")
        if score > best_score:
            best, best_score, val_scores = c, score, s
    kernel, bias = fits.result(speculative.get(best) or fits.submit(problem, labels, best, split=2))
    return best, kernel, bias, val_scores, history


def _import_optimize() -> None:
    import scipy.optimize  # noqa: F401 - 0.17 s of imports, done while waiting for the fits


def twin_arrays(vocab: nf.Vocabulary, kernel: np.ndarray, bias: np.ndarray, scale: float, multilabel: bool) -> dict:
    """The model in textclf.twins's n-gram format: what predict, evaluate, serve and export read."""
    from textclf.twins import FORMAT

    table = vocab.hashes.table
    words = sorted(table)  # in a fixed order: the same run writes the same file
    return {"format": np.array(FORMAT), "kind": np.array("ngram"), "ngrams": np.array(vocab.ngrams),
            "char_ngrams": np.array(vocab.char_ngrams), "punctuation": np.array(textrules.PUNCTUATION),
            "keys": vocab.keys, "idf": vocab.idf, "char_start": np.array(vocab.char_start),
            "words": np.frombuffer("\n".join(words).encode("utf-8", "surrogatepass"), np.uint8),
            "word_hashes": np.fromiter((table[w] for w in words), np.int64, len(words)),
            "layers": np.array(1), "kernel_0": kernel.astype(np.float32), "bias_0": bias.astype(np.float32),
            "activation_0": np.array("linear"), "scale": np.array(scale, np.float32),
            "scale_output": np.array("sigmoid" if multilabel else "softmax")}
