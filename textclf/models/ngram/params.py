"""The n-gram family's parameters (light: no TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass

from textclf.errors import check
from textclf.models.limits import MAX_LAYERS
from textclf.registry import ModelParams


@dataclass(frozen=True)
class NgramParams(ModelParams):
    """A bag of word (and character) n-grams weighted by TF-IDF, then `num_layers` hidden layers (0: linear).

    `vocab_size` caps the word n-grams to the most frequent (0: every one in at least `min_df`
    training texts); `char_vocab_size` likewise the character n-grams (`char_min_df`).
    """

    ngrams: int = 2
    vocab_size: int = 0
    min_df: int = 1
    # Character n-grams inside words (scikit-learn's char_wb), 2..char_ngrams characters; 0 = none.
    char_ngrams: int = 5
    char_min_df: int = 2
    char_vocab_size: int = 0
    num_layers: int = 0
    hidden_dim: int = 64
    dropout: float = 0.2
    l2: float = 0.0
    # scikit-learn's C: an L2 penalty of 1 / (2·C·N) on the output kernel for N training texts,
    # i.e. the same objective as LogisticRegression(C=c); 0 = none. Added to `l2`.
    c: float = 0.0
    loss: str = "crossentropy"  # or squared_hinge: one-vs-rest, LinearSVC's loss (scores -> softmax to serve)
    # adam: epochs of Adam with early stopping; liblinear (linear only): LIBLINEAR's dual solver of
    # LinearSVC's squared hinge (or, crossentropy, of one-vs-rest logistic regression) on the TF-IDF
    # rows, without TensorFlow, C
    # chosen on the validation part when c is 0 (textclf.models.ngram.solver). lbfgs: the earlier name of
    # the exact fit, kept so saved configs still load; it fits with liblinear too.
    solver: str = "adam"
    max_iter: int = 1000  # kept for saved configs: LIBLINEAR's dual solvers stop after their own 1,000 passes
    # liblinear's stopping tolerance: LIBLINEAR's own default for its dual solvers (scikit-learn's
    # LinearSVC passes 1e-4): on ag7600's and SST-2's validation parts the same accuracy at every C
    # of the grid within 0.2 pt, at half the fitting time.
    tol: float = 0.1

    @property
    def solved_without_tensorflow(self) -> bool:  # ModelParams' field, per instance
        """ngram-linear (the default) with its exact solver: numpy features and scikit-learn's liblinear
        (textclf.models.ngram.solver), no TensorFlow import."""
        return self.solver in ("liblinear", "lbfgs") and self.num_layers == 0

    def __post_init__(self) -> None:
        check(1 <= self.ngrams <= 5, "ngrams", self.ngrams, "an integer in [1, 5] (longest word n-gram)")
        check(self.vocab_size >= 0, "vocab_size", self.vocab_size, "an integer >= 0 (0 = no cap)")
        check(self.min_df >= 1, "min_df", self.min_df, "an integer >= 1")
        check(self.char_ngrams == 0 or 2 <= self.char_ngrams <= 8, "char_ngrams", self.char_ngrams,
              "an integer in [2, 8] (longest character n-gram), or 0 = words only")
        check(self.char_min_df >= 1, "char_min_df", self.char_min_df, "an integer >= 1")
        check(self.char_vocab_size >= 0, "char_vocab_size", self.char_vocab_size, "an integer >= 0 (0 = no cap)")
        check(0 <= self.num_layers <= MAX_LAYERS, "num_layers", self.num_layers,
              f"an integer in [0, {MAX_LAYERS}] (0 = linear)")
        check(self.hidden_dim >= 1, "hidden_dim", self.hidden_dim, "an integer >= 1")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "a number in [0, 1)")
        check(self.l2 >= 0, "l2", self.l2, "a number >= 0")
        check(self.c >= 0, "c", self.c, "a number >= 0 (scikit-learn's C; 0 = no penalty)")
        check(self.loss in ("crossentropy", "squared_hinge"), "loss", self.loss, "crossentropy or squared_hinge")
        check(self.solver in ("adam", "liblinear", "lbfgs"), "solver", self.solver, "adam or liblinear")
        check(self.solver == "adam" or self.num_layers == 0, "solver", self.solver,
              "adam when num_layers > 0 (liblinear fits a linear model only)")
        check(self.max_iter >= 1, "max_iter", self.max_iter, "an integer >= 1")
        check(0 < self.tol < 1, "tol", self.tol, "a number in (0, 1)")
