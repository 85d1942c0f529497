"""Bags of n-grams: in-graph n-gram keys -> TF-IDF -> a linear head (fitted exactly) or an MLP head.

string -> `NgramKeys` (word 1..n-grams, optionally character n-grams inside words, as int64
hash keys) -> `NgramIds` (binary search in the training vocabulary; 0 padding, 1 unknown) ->
padded ids -> `TfidfBag`: per-row sparse counts of the known n-grams, sublinear tf (1 + log
count) × smoothed idf, each part (words, characters) L2-normalised -> `SparseDense` on the
SparseTensor -> [Dense(hidden) + dropout]* -> softmax (or scores -> `ScaledSoftmax`).

`num_layers=0` is a linear model (`ngram-linear`: one-vs-rest squared hinge on words and
characters; it trains without TensorFlow, see models/ngram/solver.py, and `keras_from_twin` builds
its Keras model for export); one hidden layer of 64 with dropout
0.2 on the word n-grams in at least 2 training texts is the n-gram MLP of Google's Text
Classification Guide (`ngram-mlp`; the Guide's `layers=2` counts the output layer; its
20,000 cap is dropped, see models/catalog.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from textclf._tf import keras, tf
from textclf.errors import ModelError
from textclf import task
from textclf.models.base import FEATURE_ROWS, FROZEN_FEATURES, PACKAGE, BuiltModel, GraphLayer
from textclf.models.ngram.params import NgramParams
from textclf.models.ngram.features import HASH_BITS, MULTIPLIER
from textclf.textrules import PUNCTUATION

PAD, OOV = 0, 1


@keras.saving.register_keras_serializable(package=PACKAGE)
class TfidfBag(GraphLayer):
    """Ragged (or padded) n-gram ids (batch, None) -> L2-normalised sublinear TF-IDF rows, a SparseTensor
    (batch, vocab).

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

    def call(self, ids) -> tf.SparseTensor:
        if isinstance(ids, tf.RaggedTensor):  # ragged ids (runs since textclf 0.2): nothing padded
            flat = tf.cast(ids.flat_values, tf.int64)
            batch = ids.nrows(out_type=tf.int64)
            keys = tf.cast(ids.value_rowids(), tf.int64) * self.vocab_size + flat
            keys = tf.boolean_mask(keys, flat > OOV)
        else:  # padded ids (saved runs of earlier versions)
            ids = tf.cast(ids, tf.int64)
            batch = tf.shape(ids, tf.int64)[0]
            keys = tf.range(batch)[:, tf.newaxis] * self.vocab_size + ids
            keys = tf.boolean_mask(keys, ids > OOV)
        # One key per (row, id) of a known n-gram, sorted: the SparseTensor's canonical order.
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


_HASH_BITS, _MULTIPLIER = HASH_BITS, MULTIPLIER


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


def build_ngram(params: NgramParams, *, num_classes: int, train_texts: np.ndarray,
                multilabel: bool = False) -> BuiltModel:
    """Count the n-grams of the training texts (numpy, models/ngram/features.py), keep the vocabulary and
    idf, and build the classifier; the training texts' TF-IDF rows come along (`train_rows`)."""
    from textclf.models.ngram import features as nf

    texts = [str(t) for t in train_texts]
    try:
        vocab, rows = nf.fit_vocabulary(texts, ngrams=params.ngrams, char_ngrams=params.char_ngrams,
                                        min_df=params.min_df, max_tokens=params.vocab_size,
                                        char_min_df=params.char_min_df, char_max_tokens=params.char_vocab_size)
    except ValueError:
        raise ModelError("the training texts have no words once lower-cased and stripped of punctuation: "
                         "an n-gram model has nothing to learn from") from None
    built = _keras_ngram(params, vocab.keys, vocab.idf, vocab.char_start, num_classes=num_classes,
                         multilabel=multilabel, n_texts=len(texts))
    return dataclasses.replace(built, mode=FEATURE_ROWS, train_rows=rows,
                               feature_rows=lambda batch: nf.tfidf_rows([str(t) for t in batch], vocab))


def _keras_ngram(params: NgramParams, keys: np.ndarray, idf: np.ndarray, char_start: int, *, num_classes: int,
                 multilabel: bool, n_texts: int) -> BuiltModel:
    """The Keras model of a bag of n-grams with this vocabulary: strings -> ragged ids -> TF-IDF -> head.

    Nothing is padded: ids stay ragged from the text to the TF-IDF rows, so a batch costs in
    proportion to its texts' total length, not to its longest text times the batch size.
    """
    tokenize = NgramKeys(params.ngrams, params.char_ngrams, name="ngram_keys")
    # Id 0 pads, id 1 is any n-gram outside the vocabulary; the kept n-grams follow.
    lookup = NgramIds(len(keys), name="ngram_ids")
    lookup.keys.assign(keys)
    vocab_size = len(keys) + 2

    def encode(batch: tf.Tensor) -> tf.RaggedTensor:
        return lookup(tokenize(batch))

    text_in = keras.Input(shape=(), dtype=tf.string, name="text")
    text_to_ids = keras.Model(text_in, lookup(tokenize(text_in)), name="text_to_ids")

    ids = keras.Input(shape=(None,), dtype=tf.int64, ragged=True, name="token_ids")
    tfidf = TfidfBag(vocab_size, char_start=char_start, name="tfidf")
    tfidf.idf.assign(np.asarray(idf, np.float32))
    features = keras.Model(ids, tfidf(ids), name="tfidf_features")

    # The TF-IDF rows cannot change during training: training computes them once and fits the head.
    bag = keras.Input(shape=(vocab_size,), sparse=True, name="tfidf")
    penalty = params.l2 + (1.0 / (2.0 * params.c * n_texts) if params.c else 0.0)
    regularizer = keras.regularizers.l2(penalty) if penalty else None
    hinge = params.loss == "squared_hinge"
    output = None if hinge else task.activation(multilabel)  # hinge: the head gives scores, softmax comes after it
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
    return BuiltModel(model=model, encode=encode, text_to_ids=text_to_ids, mode=FROZEN_FEATURES, features=features,
                      head=head,
                      feature_batch_size=4096,
                      loss=(multilabel_squared_hinge if multilabel else one_vs_rest_squared_hinge) if hinge else None,
                      to_probabilities=to_probabilities)


def keras_from_twin(arrays: dict, params: NgramParams):
    """The string-in Keras model of a linear n-gram model saved as twin arrays (a run trained without
    TensorFlow, textclf.models.ngram.solver): what `export` saves. Same layers, same probabilities."""
    if str(arrays.get("layers")) != "1":
        raise ValueError("not a linear n-gram model's arrays")
    kernel = arrays["kernel_0"]
    multilabel = str(arrays["scale_output"]) == "sigmoid"
    # The arrays hold scores and the scale their probabilities take (either loss): a head of scores,
    # then ScaledSoftmax; the n-gram lengths are the arrays' own.
    params = dataclasses.replace(params, loss="squared_hinge", ngrams=int(arrays["ngrams"]),
                                 char_ngrams=int(arrays["char_ngrams"]), num_layers=0)
    built = _keras_ngram(params, arrays["keys"], arrays["idf"], int(arrays["char_start"]),
                         num_classes=kernel.shape[1], multilabel=multilabel, n_texts=1)
    dense = built.head.get_layer("probs")
    dense.kernel.assign(kernel)
    dense.bias.assign(arrays["bias_0"])
    built.to_probabilities.scale.assign(float(arrays["scale"]))
    if "temperature" in arrays:  # calibrated (textclf.calibration)
        return built.inference_model(arrays["temperature"].tolist(), bool(arrays["temperature_multilabel"]))
    return built.inference_model()


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

    `scale` 1: a plain softmax of the scores (runs of earlier versions saved a fitted scale here); a run
    calibrates the result with a temperature (textclf.calibration, TemperatureScaling).
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
