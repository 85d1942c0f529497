"""Bags of n-grams: in-graph n-gram keys -> TF-IDF -> a linear head (fitted exactly) or an MLP head.

string -> `NgramKeys` (word 1..n-grams, optionally character n-grams inside words, as int64
hash keys) -> `NgramIds` (binary search in the training vocabulary; 0 padding, 1 unknown) ->
padded ids -> `TfidfBag`: per-row sparse counts of the known n-grams, sublinear tf (1 + log
count) × smoothed idf, each part (words, characters) L2-normalised -> `SparseDense` on the
SparseTensor -> [Dense(hidden) + dropout]* -> softmax (or scores -> `ScaledSoftmax`).

`num_layers=0` is a linear model (`ngram-linear`: one-vs-rest squared hinge on words and
characters, fitted by L-BFGS with `solve_linear_head`); one hidden layer of 64 with dropout
0.2 on the word n-grams in at least 2 training texts is the n-gram MLP of Google's Text
Classification Guide (`ngram-mlp`; the Guide's `layers=2` counts the output layer; its
20,000 cap is dropped, see models/catalog.py).
"""

from __future__ import annotations

import numpy as np

from textclf._tf import keras, tf
from textclf.data.pipeline import encode_texts
from textclf.errors import ModelError
from textclf.models.base import PACKAGE, GraphLayer, BuiltModel, output_activation
from textclf.models.catalog import NgramParams

PAD, OOV = 0, 1


@keras.saving.register_keras_serializable(package=PACKAGE)
class TfidfBag(GraphLayer):
    """Padded n-gram ids (batch, time) -> L2-normalised sublinear TF-IDF rows, a SparseTensor (batch, vocab).

    Padding and unknown ids carry no weight (as a vectorizer ignores words outside its
    vocabulary); a text with no known n-gram is an all-zero row.
    """

    def __init__(self, vocab_size: int, char_start: int = 0, **kwargs) -> None:
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.char_start = char_start or vocab_size  # ids from here on are character n-grams
        # A weight, saved with the model; the builder assigns the training texts' idf.
        self.idf = self.add_weight(name="idf", shape=(vocab_size,), initializer="ones", trainable=False)

    def call(self, ids: tf.Tensor) -> tf.SparseTensor:
        ids = tf.cast(ids, tf.int64)
        batch = tf.shape(ids, tf.int64)[0]
        # One key per (row, id) of a known n-gram, sorted: the SparseTensor's canonical order.
        keys = tf.range(batch)[:, tf.newaxis] * self.vocab_size + ids
        keys = tf.boolean_mask(keys, ids > OOV)
        unique, _, counts = tf.unique_with_counts(tf.sort(keys))
        rows, cols = unique // self.vocab_size, unique % self.vocab_size
        weights = (1.0 + tf.math.log(tf.cast(counts, tf.float32))) * tf.gather(self.idf, cols)
        # Word and character n-grams are normalised apart, each part to unit length, as two
        # stacked TfidfVectorizers are (5-fold CV, LinearSVC: 89.02% vs 88.75% normalised together).
        part = rows * 2 + tf.cast(cols >= self.char_start, tf.int64)
        norms = tf.math.sqrt(tf.math.unsorted_segment_sum(tf.square(weights), part, batch * 2))
        weights = weights / tf.gather(norms, part)
        # A dense_shape whose second entry is a constant gives the output a static width,
        # which the Dense layers after it need.
        shape = tf.stack([batch, tf.constant(self.vocab_size, tf.int64)])
        return tf.SparseTensor(tf.stack([rows, cols], axis=1), weights, shape)

    def get_config(self) -> dict:
        return {**super().get_config(), "vocab_size": self.vocab_size, "char_start": self.char_start}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SparseDense(GraphLayer):
    """Dense layer on a SparseTensor (batch, vocab): `sparse_dense_matmul`, a sum of weighted kernel rows.

    Measured per training step (batch 256-1024 headlines) against tf_keras Dense's
    `embedding_lookup_sparse` path and against gather + segment_sum: both of those give
    IndexedSlices gradients with repeated rows, and Adam's sparse update (deduplication,
    scatter) cost 26 ms vs 9 ms for the dense update of a 20k × 64 kernel; with the dense
    gradient the MLP's epoch went from 0.79 to 0.49 s at batch 512.

    The product itself is `_sparse_matmul`: the forward pass as gather + sorted segment_sum
    (sparse_dense_matmul's forward kernel took 4.7-4.8 ms per 512-row batch of a 34k × 64
    kernel, this 2.6-2.7 ms), the gradient sparse_dense_matmul's own adjoint product (dense).
    """

    def __init__(self, units: int, activation: str | None = None, kernel_regularizer=None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape) -> None:
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), self.units),
                                      initializer="glorot_uniform", regularizer=self.kernel_regularizer)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        super().build(input_shape)

    def call(self, features: tf.SparseTensor) -> tf.Tensor:
        return self.activation(_sparse_matmul(features.indices, features.values, features.dense_shape, self.kernel)
                               + self.bias)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer)}


@tf.custom_gradient
def _sparse_matmul(indices: tf.Tensor, values: tf.Tensor, dense_shape: tf.Tensor, kernel: tf.Tensor):
    """SparseTensor(indices, values, dense_shape) @ kernel, for indices in canonical (row-sorted) order.

    Forward: each non-zero's kernel row, weighted, summed per row (rows without any non-zero
    stay zero). Gradient with respect to the kernel: sparse_dense_matmul(sp, dy, adjoint_a),
    a dense (vocab, units) tensor, as tf.sparse.sparse_dense_matmul's own gradient is.
    """
    rows = indices[:, 0]
    out = tf.math.segment_sum(tf.gather(kernel, indices[:, 1]) * values[:, tf.newaxis], rows)
    out = tf.pad(out, [[0, dense_shape[0] - tf.shape(out, tf.int64)[0]], [0, 0]])

    def grad(dy):
        sp = tf.SparseTensor(indices, values, dense_shape)
        return None, None, None, tf.sparse.sparse_dense_matmul(sp, dy, adjoint_a=True)

    return out, grad


# tf_keras TextVectorization's punctuation, replaced by a space (a word boundary, as in
# scikit-learn's token pattern) rather than deleted: "New York-based" -> new, york, based.
PUNCTUATION = r'[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~\']'
_HASH_BITS = 56  # an n-gram's key: its kind (word n, or character n + 8) in the bits above these
_MULTIPLIER = 0x9E3779B97F4A7C15 - (1 << 64)  # odd 64-bit constant (as int64) for mixing


def _mix(prefix: tf.Tensor, nxt: tf.Tensor) -> tf.Tensor:
    """Hash of a sequence extended by one element (int64, wrapping multiply)."""
    return tf.bitwise.bitwise_xor(prefix * _MULTIPLIER, nxt) + tf.bitwise.right_shift(prefix, 29)


def _gram_keys(values: tf.Tensor, group: tf.Tensor, longest: int, shortest: int, kind_offset: int):
    """Keys of every run of shortest..longest consecutive `values` within one group, and each run's start.

    `values` are int64 hashes (words) or code points (characters), flat; `group` says which
    text or word each belongs to (sorted), and a run never crosses groups.
    """
    found = []
    h = values
    for width in range(1, longest + 1):
        if width > 1:
            h = _mix(h[:-1], values[width - 1:])
        if width >= shortest:
            inside = tf.equal(group[: tf.size(h)], group[width - 1:])
            key = tf.bitwise.bitwise_or(tf.bitwise.bitwise_and(h, (1 << _HASH_BITS) - 1),
                                        tf.constant((width + kind_offset) << _HASH_BITS, tf.int64))
            found.append((tf.boolean_mask(key, inside),
                          tf.boolean_mask(tf.range(tf.size(h, out_type=tf.int64)), inside)))
    return found


@keras.saving.register_keras_serializable(package=PACKAGE)
class NgramKeys(GraphLayer):
    """Strings (batch,) -> ragged int64 n-gram keys (batch, None): word 1..`ngrams`-grams and character n-grams.

    Words: lower-cased, punctuation turned into spaces, split on whitespace. Character n-grams
    (`char_ngrams` > 0) are scikit-learn's `char_wb`: 2..`char_ngrams` characters inside each
    lower-cased whitespace-separated token, punctuation kept, padded with a space on both
    sides (" news, " -> " n", "ne", ..., ", "). Each n-gram is a 56-bit hash of its words
    (FarmHash fingerprints) or code points, tagged with its kind and length in the bits above,
    so a word and the same letters inside a longer word differ. Integer keys, not strings:
    on 6,000 headlines (4.5M n-grams) the n-gram strings took 4.2 s to build and 30 s more to
    count and look up; the keys take ≈ 1 s to build and ≈ 1 s to count.
    """

    def __init__(self, ngrams: int = 2, char_ngrams: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ngrams = ngrams
        self.char_ngrams = char_ngrams

    def call(self, texts: tf.Tensor) -> tf.RaggedTensor:
        lowered = tf.strings.lower(texts, encoding="utf-8")
        words = tf.strings.split(tf.strings.regex_replace(lowered, PUNCTUATION, " "))
        nrows = words.nrows(out_type=tf.int64)
        word_rows = words.value_rowids()
        hashes = tf.strings.to_hash_bucket_fast(words.flat_values, 1 << 62)
        # One ragged part per n-gram length (a part's keys are in text order), joined per text.
        parts = [tf.RaggedTensor.from_value_rowids(keys, tf.gather(word_rows, starts), nrows, validate=False)
                 for keys, starts in _gram_keys(hashes, word_rows, self.ngrams, 1, 0)]
        if self.char_ngrams:
            # Inside whitespace-separated words with their punctuation, as char_wb does: measured
            # better than inside the punctuation-free words (5-fold CV on ag7600's training split
            # with LinearSVC: 89.02% vs 88.25%).
            spaced = tf.strings.split(lowered)
            space_rows = spaced.value_rowids()
            chars = tf.strings.unicode_decode(tf.strings.join([" ", spaced.flat_values, " "]), "UTF-8")
            char_words = chars.value_rowids()
            for keys, starts in _gram_keys(tf.cast(chars.flat_values, tf.int64), char_words,
                                           self.char_ngrams, 2, 8):
                rows = tf.gather(space_rows, tf.gather(char_words, starts))
                parts.append(tf.RaggedTensor.from_value_rowids(keys, rows, nrows, validate=False))
        return tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "ngrams": self.ngrams, "char_ngrams": self.char_ngrams}


@keras.saving.register_keras_serializable(package=PACKAGE)
class NgramIds(GraphLayer):
    """Ragged n-gram keys -> ragged ids: 2 + the key's place among the sorted vocabulary keys, 1 if absent (0 pads).

    The keys are a non-trainable weight searched with `tf.searchsorted` (a binary search):
    no lookup-table resource or vocabulary asset, and building it for 200k n-grams takes
    milliseconds where a tf_keras IntegerLookup took 1.7 s.
    """

    def __init__(self, vocab_size: int, **kwargs) -> None:
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.keys = self.add_weight(name="keys", shape=(vocab_size,), dtype=tf.int64, initializer="zeros",
                                    trainable=False)

    def call(self, keys: tf.RaggedTensor) -> tf.RaggedTensor:
        flat = keys.flat_values
        place = tf.searchsorted(self.keys, flat)
        found = tf.equal(tf.gather(self.keys, tf.minimum(place, self.vocab_size - 1)), flat)
        return keys.with_flat_values(tf.where(found, place + 2, tf.ones_like(place)))

    def get_config(self) -> dict:
        return {**super().get_config(), "vocab_size": self.vocab_size}


def is_char_key(keys: np.ndarray) -> np.ndarray:
    """Whether each n-gram key is a character n-gram (its kind bits are above 8)."""
    return (keys >> _HASH_BITS) > 8


def ngram_vocabulary(keys: tf.RaggedTensor, *, min_df: int, max_tokens: int, char_min_df: int,
                     char_max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """The kept n-gram keys of the training texts and their document frequencies.

    Word n-grams in at least `min_df` texts, the most frequent `max_tokens` (0: all), then
    character n-grams in at least `char_min_df` texts, the most frequent `char_max_tokens`
    (0: all); within each part by falling document frequency (ties by key). Returned in key order.
    """
    flat, rows = keys.flat_values.numpy(), keys.value_rowids().numpy()
    # Sorted by key, stably: each key's texts stay in order, so a repeat within a text is adjacent.
    # (np.unique is avoided: in numpy 2.4 it took 12 s on 4.5M keys where sorting takes 0.3 s.)
    order = np.argsort(flat, kind="stable")
    flat, rows = flat[order], rows[order]
    new_key = np.ones(len(flat), dtype=bool)
    new_key[1:] = flat[1:] != flat[:-1]
    new_text = new_key.copy()
    new_text[1:] |= rows[1:] != rows[:-1]
    starts = np.flatnonzero(new_key)
    unique = flat[starts]
    df = np.add.reduceat(new_text.astype(np.int64), starts) if len(flat) else np.zeros(0, np.int64)
    order = np.argsort(-df, kind="stable")
    char = is_char_key(unique)
    kept = []
    for part, least, most in ((~char, min_df, max_tokens), (char, char_min_df, char_max_tokens)):
        chosen = order[part[order] & (df[order] >= least)]
        kept.append(chosen[:most] if most else chosen)
    kept = np.sort(np.concatenate(kept))  # in key order: NgramIds searches them
    return unique[kept], df[kept]


def smoothed_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """ln((1 + n) / (1 + df)) + 1, scikit-learn's smooth_idf: a word in every text still counts a little."""
    return (np.log((1.0 + n_docs) / (1.0 + df)) + 1.0).astype(np.float32)


def build_ngram(params: NgramParams, *, num_classes: int, train_texts: np.ndarray,
                multilabel: bool = False) -> BuiltModel:
    """Count the n-grams of the training texts, keep the vocabulary and idf, and build the classifier."""
    tokenize = NgramKeys(params.ngrams, params.char_ngrams, name="ngram_keys")
    texts = np.asarray([str(t) for t in train_texts], dtype=object)
    tokens = encode_texts(texts, tokenize)
    if not int(tf.size(tokens.flat_values)):
        raise ModelError("the training texts have no words once lower-cased and stripped of punctuation: "
                         "an n-gram model has nothing to learn from")
    kept, df = ngram_vocabulary(tokens, min_df=params.min_df, max_tokens=params.vocab_size,
                                char_min_df=params.char_min_df, char_max_tokens=params.char_vocab_size)
    if not len(kept):  # e.g. every n-gram occurs once and min_df is 2: keep them all rather than nothing
        kept, df = ngram_vocabulary(tokens, min_df=1, max_tokens=params.vocab_size, char_min_df=1,
                                    char_max_tokens=params.char_vocab_size)
    # Id 0 pads, id 1 is any n-gram outside the vocabulary; the kept n-grams follow.
    lookup = NgramIds(len(kept), name="ngram_ids")
    lookup.keys.assign(kept)
    vocab_size = len(kept) + 2

    def encode(batch: tf.Tensor) -> tf.RaggedTensor:
        return lookup(tokenize(batch))

    text_in = keras.Input(shape=(), dtype=tf.string, name="text")
    text_to_ids = keras.Model(text_in, lookup(tokenize(text_in)).to_tensor(PAD), name="text_to_ids")

    ids = keras.Input(shape=(None,), dtype=tf.int64, name="token_ids")
    idf = np.concatenate([[0.0, 0.0], smoothed_idf(df, len(texts))])
    tfidf = TfidfBag(vocab_size, char_start=2 + int(np.sum(~is_char_key(kept))), name="tfidf")
    tfidf.idf.assign(idf.astype(np.float32))
    features = keras.Model(ids, tfidf(ids), name="tfidf_features")

    # The TF-IDF rows cannot change during training: training computes them once and fits the head.
    bag = keras.Input(shape=(vocab_size,), sparse=True, name="tfidf")
    penalty = params.l2 + (1.0 / (2.0 * params.c * len(texts)) if params.c else 0.0)
    regularizer = keras.regularizers.l2(penalty) if penalty else None
    hinge = params.loss == "squared_hinge"
    output = None if hinge else output_activation(multilabel)  # hinge: the head gives scores, softmax comes after it
    if params.num_layers == 0:
        probs = SparseDense(num_classes, activation=output, kernel_regularizer=regularizer, name="probs")(bag)
    else:
        x = SparseDense(params.hidden_dim, activation="relu", name="hidden_0")(bag)
        x = keras.layers.Dropout(params.dropout, name="dropout_0")(x)
        for i in range(1, params.num_layers):
            x = keras.layers.Dense(params.hidden_dim, activation="relu", name=f"hidden_{i}")(x)
            x = keras.layers.Dropout(params.dropout, name=f"dropout_{i}")(x)
        probs = keras.layers.Dense(num_classes, activation=output, dtype="float32", name="probs",
                                   kernel_regularizer=regularizer)(x)
    head = keras.Model(bag, probs, name="head")
    to_probabilities = ScaledSoftmax(multilabel=multilabel, name="scores_to_probs") if hinge else (lambda x: x)
    model = keras.Model(ids, to_probabilities(head(features(ids))),
                        name="ngram_linear" if params.num_layers == 0 else "ngram_mlp")
    built = BuiltModel(model=model, encode=encode, text_to_ids=text_to_ids, features=features, head=head,
                       feature_batch_size=4096,
                       loss=(multilabel_squared_hinge if multilabel else one_vs_rest_squared_hinge) if hinge else None,
                       to_probabilities=to_probabilities, train_ids=lookup(tokens))
    if params.solver == "lbfgs":
        built.solve = lambda **data: solve_linear_head(built, params, **data)
    return built


def one_vs_rest_squared_hinge(labels: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
    """LinearSVC's loss: for every class, max(0, 1 - y·score)² with y = +1 for the label, else -1; summed."""
    signs = 2.0 * tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), tf.shape(scores)[-1]) - 1.0
    return tf.reduce_sum(tf.square(tf.nn.relu(1.0 - signs * scores)), axis=-1)


def multilabel_squared_hinge(labels: tf.Tensor, scores: tf.Tensor) -> tf.Tensor:
    """The same loss for multi-hot labels: y = +1 for each of the example's labels, else -1."""
    signs = 2.0 * tf.cast(labels, scores.dtype) - 1.0
    return tf.reduce_sum(tf.square(tf.nn.relu(1.0 - signs * scores)), axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaledSoftmax(GraphLayer):
    """Scores -> softmax(scale · scores): margins of a one-vs-rest squared hinge as probabilities.

    `scale` (a temperature, fitted by `solve_linear_head` on the validation part: the scale
    that minimises its log-loss) makes the probabilities mean something; 1 is a plain softmax.
    `multilabel`: sigmoid(scale · scores), one independent probability per label (margin 0 is 0.5).
    """

    def __init__(self, multilabel: bool = False, **kwargs) -> None:
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.multilabel = multilabel
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones", trainable=False)

    def call(self, scores: tf.Tensor) -> tf.Tensor:
        if self.multilabel:
            return tf.sigmoid(self.scale * scores)
        return tf.nn.softmax(self.scale * scores, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "multilabel": self.multilabel}


# The C values tried, smallest (most regularised) first, each L-BFGS solve starting from the last
# one's weights; the one with the best validation accuracy is refitted on all training texts.
C_GRID = {"squared_hinge": (0.1, 0.3, 1.0), "crossentropy": (3.0, 10.0, 30.0)}


def _csr(rows):
    """A SparseRows as a scipy CSR matrix (float64): its ragged row splits, columns and values as they are."""
    import scipy.sparse

    indptr = rows.cols.row_splits.numpy()
    return scipy.sparse.csr_matrix((rows.values.flat_values.numpy().astype(np.float64), rows.cols.flat_values.numpy(),
                                    indptr), shape=(len(indptr) - 1, rows.width))


def _objective(x, labels: np.ndarray, num_classes: int, loss: str, weights: np.ndarray | None = None):
    """(theta, C) -> (C·Σ w_i·loss_i + ½‖W‖², gradient), theta = [W (V×K) flat, b (K)]; `weights`
    per example (class weights), else 1.

    scipy.sparse products, not tf.sparse: on this 2-core machine sparse_dense_matmul ran at
    ~0.1 GFLOP/s and one L-BFGS fit of 6,000 headlines took minutes; CSR products take seconds.
    """
    width = x.shape[1]
    xt = x.T.tocsr()
    multilabel = labels.ndim == 2
    y = labels.astype(np.float64) if multilabel else np.eye(num_classes)[labels]
    signs = 2.0 * y - 1.0
    w = np.ones((len(labels), 1)) if weights is None else np.asarray(weights, dtype=np.float64)[:, None]

    def fun(theta: np.ndarray, c: float):
        kernel = theta[: width * num_classes].reshape(width, num_classes)
        scores = x @ kernel + theta[width * num_classes:]
        if loss == "squared_hinge":
            margin = np.maximum(0.0, 1.0 - signs * scores)
            data, d_scores = float(np.sum(w * margin ** 2)), -2.0 * w * signs * margin
        elif multilabel:  # binary cross-entropy per label on sigmoid(score)
            data = float(np.sum(w * (np.logaddexp(0.0, scores) - y * scores)))
            d_scores = w * (1.0 / (1.0 + np.exp(-scores)) - y)
        else:
            top = scores.max(axis=1, keepdims=True)
            exp = np.exp(scores - top)
            total = exp.sum(axis=1, keepdims=True)
            data = float(np.sum(w * (np.log(total) + top - np.sum(y * scores, axis=1, keepdims=True))))
            d_scores = w * (exp / total - y)
        value = c * data + 0.5 * float(np.sum(kernel ** 2))
        grad = np.concatenate([(c * (xt @ d_scores) + kernel).ravel(), c * d_scores.sum(axis=0)])
        return value, grad

    return fun


def _scores(x, theta: np.ndarray, num_classes: int) -> np.ndarray:
    width = x.shape[1]
    return x @ theta[: width * num_classes].reshape(width, num_classes) + theta[width * num_classes:]


def solve_linear_head(built: BuiltModel, params: NgramParams, fit_x, fit_y: np.ndarray, val_x, val_y,
                      say=lambda line: None, class_weight: np.ndarray | None = None) -> dict:
    """Fit the linear head exactly (scipy's L-BFGS-B on the full batch), choosing C on the validation part.

    The same objective as scikit-learn's LinearSVC (squared hinge, one-vs-rest) or
    LogisticRegression (cross-entropy), minimised to convergence rather than by SGD epochs:
    with Adam and early stopping the same features reached 80.6% where LinearSVC reached
    81.5% (SST-2, 3 leak-free folds of its training file). With `params.c` = 0 every C of
    `C_GRID` is fitted on `fit_x` and scored on `val_x`; the best (ties: the smaller C) is
    refitted on the fit and validation rows together (without a validation part: the first C, on
    `fit_x`). Sets the head's weights (and the softmax scale) and returns the history. With
    `class_weight` (one weight per class) each example's loss is weighted by its class's, and C
    is chosen by balanced accuracy (the mean recall over classes) instead of accuracy.
    """
    import scipy.optimize

    num_classes = int(built.head.output_shape[-1])
    fit_s, val_s = _csr(fit_x), _csr(val_x) if val_x is not None else None
    width = fit_s.shape[1]
    theta = np.zeros(width * num_classes + num_classes)
    grid = (params.c,) if params.c else C_GRID[params.loss]
    history: dict[str, list[float]] = {"c": [], "val_accuracy": [], "iterations": []}
    options = {"maxiter": params.max_iter, "ftol": params.tol}
    best, best_theta, best_acc = grid[0], theta, -1.0
    cw = None if class_weight is None else np.asarray(class_weight, dtype=np.float64)
    if val_s is not None:
        fun = _objective(fit_s, fit_y, num_classes, params.loss, None if cw is None else cw[fit_y])
        for c in grid:
            done = scipy.optimize.minimize(fun, theta, args=(c,), jac=True, method="L-BFGS-B", options=options)
            theta = done.x
            result_acc = _validation_score(_scores(val_s, theta, num_classes), val_y, cw is not None)
            history["c"].append(c)
            history["val_accuracy"].append(result_acc)
            history["iterations"].append(int(done.nit))
            say(f"C {c:g}: validation {'micro-F1' if val_y.ndim == 2 else 'accuracy'} {100 * result_acc:.2f}% "
                f"({done.nit} L-BFGS iterations)")
            if result_acc > best_acc:
                best, best_theta, best_acc = c, theta.copy(), result_acc
    import scipy.sparse

    all_s = scipy.sparse.vstack([fit_s, val_s], format="csr") if val_s is not None else fit_s
    all_y = np.concatenate([fit_y, val_y]) if val_s is not None else fit_y
    # From the chosen weights, with a tighter tolerance: the first steps on the added validation
    # rows lower the objective by little relative to its size, and `tol` alone stopped after one.
    done = scipy.optimize.minimize(_objective(all_s, all_y, num_classes, params.loss, None if cw is None else cw[all_y]),
                                   best_theta, args=(best,),
                                   jac=True, method="L-BFGS-B", options={**options, "ftol": params.tol / 10})
    theta = done.x
    history["refit_iterations"] = [int(done.nit)]
    kernel, bias = theta[: width * num_classes].reshape(width, num_classes), theta[width * num_classes:]
    dense = built.head.get_layer("probs")
    dense.kernel.assign(kernel.astype(np.float32))
    dense.bias.assign(bias.astype(np.float32))
    scale = 1.0
    scaled = isinstance(built.to_probabilities, ScaledSoftmax)
    val_scores = _scores(val_s, best_theta, num_classes) if val_s is not None else None
    if scaled and val_s is not None:
        # The temperature from the validation scores of the C chosen (fitted without them).
        scale = float(np.exp(scipy.optimize.minimize_scalar(lambda t: _log_loss(np.exp(t) * val_scores, val_y),
                                                            bounds=(-5, 5), method="bounded").x))
        built.to_probabilities.scale.assign(scale)
    # The validation part's probabilities from the head fitted without it (multi-label thresholds are tuned on them).
    val_probs = None if val_scores is None else _probabilities(scale * val_scores if scaled else val_scores,
                                                               val_y.ndim == 2)
    return {"history": history, "c": best, "softmax_scale": scale, "train_examples": len(all_y),
            "val_probabilities": val_probs}


def _probabilities(scores: np.ndarray, multilabel: bool) -> np.ndarray:
    if multilabel:
        return 1.0 / (1.0 + np.exp(-scores))
    z = np.exp(scores - scores.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _log_loss(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean log-loss of softmax(scores) (class ids), or of sigmoid(scores) per label (multi-hot rows)."""
    if labels.ndim == 2:
        return float(np.mean(np.logaddexp(0.0, scores) - labels * scores))
    z = scores - scores.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(labels)), labels]))


def _validation_score(scores: np.ndarray, labels: np.ndarray, balanced: bool) -> float:
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
