"""BERT classifiers on TF Hub-format encoders: frozen or fine-tuned, any sequence length.

string -> WordPiece ids (tf-text FastBertTokenizer on the preprocessing model's vocab, or
the model's own `tokenize`) -> [CLS] ids[:max_length-2] [SEP] padded to the batch's longest ->
encoder (`hub.KerasLayer`, `trainable` flag) -> mean / pooled / [CLS] pooling -> dropout -> dense softmax (float32).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from textclf import task
from textclf._tf import keras, tf
from textclf.compat import NoAutograph
from textclf.errors import ModelError
from textclf.models import store
from textclf.models.base import (END_TO_END, FROZEN_FEATURES, PACKAGE, WEIGHTS_FOLLOW, BuiltModel, GraphLayer,
                                 max_length_from_data)
from textclf.models.bert.params import BERT_PREPROCESS, BertParams
from textclf.models.limits import MAX_SEQUENCE


@keras.saving.register_keras_serializable(package=PACKAGE)
def exact_gelu(x):
    """erf-based GELU, as in Hugging Face BERT (Model Garden's "gelu" is the tanh approximation)."""
    return tf.nn.gelu(x, approximate=False)


def resolve_handle(handle: str, what: str = "encoder") -> str:
    """A local folder for a store name, a local path, or a TF Hub handle (downloaded/cached)."""
    import tensorflow_hub as hub

    imported = store.find(handle)
    if imported is not None:
        meta = store.read_meta(imported)
        return str(imported / meta["encoder" if what == "encoder" else "preprocessor"])
    path = Path(os.path.expanduser(handle))
    if path.exists():
        if not (path / "saved_model.pb").exists():
            raise ModelError(f"{what} {handle!r} is not a SavedModel folder (no saved_model.pb)")
        return str(path.absolute())  # recorded in the saved run, which may load from elsewhere
    if "://" not in handle and not handle.startswith(("gs:", "/")):
        names = ", ".join(m["name"] for m in store.list_models()) or "none"
        raise ModelError(f"{what} {handle!r} is not a TF Hub handle, a SavedModel path or an imported model "
                         f"(imported: {names})")
    try:
        return hub.resolve(handle)
    except Exception as err:  # network errors, 404s, bad archives
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise ModelError(
            f"cannot fetch TF Hub {what} {handle} ({reason}); offline, use a local SavedModel path, "
            f"a TFHUB_CACHE_DIR that holds it, or import a checkpoint with `textclf models import-hf DIR --name NAME`"
        ) from None


def _special_ids(preprocessor_dir: str) -> tuple[int, int]:
    vocab_file = Path(preprocessor_dir) / "assets" / "vocab.txt"
    if not vocab_file.is_file():
        raise ModelError(f"preprocessing model {preprocessor_dir} has no assets/vocab.txt")
    vocab = vocab_file.read_text(encoding="utf-8").splitlines()
    try:
        return vocab.index("[CLS]"), vocab.index("[SEP]")
    except ValueError:
        raise ModelError(f"{vocab_file} has no [CLS]/[SEP] tokens") from None


@keras.saving.register_keras_serializable(package=PACKAGE)
class HubWordPiece(GraphLayer):
    """Strings -> ragged WordPiece ids with a TF Hub BERT preprocessing model's `tokenize`."""

    def __init__(self, handle: str, **kwargs) -> None:
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        import tensorflow_hub as hub
        import tensorflow_text  # noqa: F401  (registers the ops the preprocessing model uses)

        self.handle = handle
        self._preprocessor = hub.load(handle)

    def call(self, texts: tf.Tensor) -> tf.RaggedTensor:
        tokens = self._preprocessor.tokenize(tf.reshape(texts, [-1]))
        return tf.cast(tokens.merge_dims(-2, -1), tf.int32)

    def get_config(self) -> dict:
        return {**super().get_config(), "handle": self.handle}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FastWordPiece(GraphLayer):
    """Strings -> ragged WordPiece ids with tf-text's FastBertTokenizer on a preprocessing model's vocab.

    Equivalent to the TF Hub BERT preprocessing models' `tokenize` (BertTokenizer) for the
    same vocabulary and lower-casing, without loading their SavedModel.
    """

    def __init__(self, vocab_file: str, lower_case: bool = True, **kwargs) -> None:
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        import tensorflow_text as text

        self.vocab_file, self.lower_case = vocab_file, lower_case
        try:
            vocab = Path(vocab_file).read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise ModelError(f"cannot read the WordPiece vocabulary {vocab_file}: {err.strerror}") from None
        self._tokenizer = text.FastBertTokenizer(vocab=vocab, token_out_type=tf.int32,
                                                 lower_case_nfd_strip_accents=lower_case)

    def call(self, texts: tf.Tensor) -> tf.RaggedTensor:
        return self._tokenizer.tokenize(tf.reshape(texts, [-1]))

    def get_config(self) -> dict:
        return {**super().get_config(), "vocab_file": self.vocab_file, "lower_case": self.lower_case}


def _lower_cases(preprocessor_dir: str) -> bool:
    """Whether a preprocessing model lower-cases: "HELLO" and "hello" get the same ids."""
    probe = HubWordPiece(preprocessor_dir)(tf.constant(["HELLO", "hello"]))
    return probe[0].numpy().tolist() == probe[1].numpy().tolist()


def wordpiece_layer(preprocessor_dir: str, kind: str = "fast") -> keras.layers.Layer:
    """The tokenizer for a preprocessing model: FastWordPiece on its vocab, or its own `tokenize`."""
    if kind == "hub":
        return HubWordPiece(preprocessor_dir, name="wordpiece")
    return FastWordPiece(str(Path(preprocessor_dir) / "assets" / "vocab.txt"), _lower_cases(preprocessor_dir),
                         name="wordpiece")


@keras.saving.register_keras_serializable(package=PACKAGE)
class BertPackIds(GraphLayer):
    """Ragged WordPiece ids -> [CLS] ids[:max_length-2] [SEP], padded with 0 to the batch's longest."""

    def __init__(self, max_length: int, cls_id: int, sep_id: int, **kwargs) -> None:
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.max_length, self.cls_id, self.sep_id = max_length, cls_id, sep_id

    def ragged(self, tokens: tf.RaggedTensor) -> tf.RaggedTensor:
        # Scatter into the packed layout (a ragged concat adds Assert ops that Grappler warns about).
        tokens = tokens[:, : self.max_length - 2]
        lengths = tokens.row_lengths()
        packed_lengths = lengths + 2
        starts = tf.cumsum(packed_lengths, exclusive=True)
        positions = tf.concat([
            tf.range(tf.size(tokens.values, out_type=tf.int64)) + 1 + 2 * tokens.value_rowids(),
            starts, starts + lengths + 1], axis=0)
        values = tf.concat([tokens.values, tf.fill(tf.shape(starts), tf.cast(self.cls_id, tokens.dtype)),
                            tf.fill(tf.shape(starts), tf.cast(self.sep_id, tokens.dtype))], axis=0)
        packed = tf.scatter_nd(positions[:, tf.newaxis], values, tf.reduce_sum(packed_lengths)[tf.newaxis])
        return tf.RaggedTensor.from_row_lengths(packed, packed_lengths, validate=False)

    def call(self, tokens: tf.RaggedTensor) -> tf.Tensor:
        return self.ragged(tokens).to_tensor(0)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_length": self.max_length, "cls_id": self.cls_id, "sep_id": self.sep_id}


_PLAIN_KERAS_LAYER = []


def _plain_keras_layer():
    """hub.KerasLayer with AutoGraph off, like GraphLayer.

    Its `call` branches on Python values only (`training` goes through smart_cond), yet Keras
    converts it with AutoGraph at every symbolic call: three per BERT model load (≈ 0.3 s each
    on this machine, cProfile of `load_model`), for the same graph.
    """
    if not _PLAIN_KERAS_LAYER:
        import tensorflow_hub as hub

        class PlainKerasLayer(NoAutograph, hub.KerasLayer):
            pass

        _PLAIN_KERAS_LAYER.append(PlainKerasLayer)
    return _PLAIN_KERAS_LAYER[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class HubBertEncoder(GraphLayer):
    """Padded ids -> one vector per text from a TF Hub-format BERT encoder.

    Builds the encoder's dict inputs (mask from padding, one segment), runs the
    `hub.KerasLayer` (frozen unless `trainable`) and pools: masked mean of
    `sequence_output`, `pooled_output`, or the [CLS] position.
    """

    def __init__(self, handle: str, pooling: str = "mean", trainable: bool = True, **kwargs) -> None:
        super().__init__(trainable=trainable, **kwargs)
        import tensorflow_hub as hub

        self.handle, self.pooling = handle, pooling
        try:
            # A loaded object, not the path: given a path, hub.KerasLayer first tries
            # `from keras.saving.legacy... import load_context`, which imports Keras 3
            # (≈ 2.7 s of every BERT command) only to fail and fall back to the same options.
            # Rebuilding a saved run: its weights replace the checkpoint's, which is not read (≈ 1 s of
            # a cold `textclf predict` for MiniLM's 91 MB).
            options = tf.saved_model.LoadOptions(experimental_skip_checkpoint=True) if WEIGHTS_FOLLOW.get() else None
            self.encoder = _plain_keras_layer()(hub.load(handle, options=options), trainable=trainable, name="encoder")
        except Exception as err:
            first = (str(err).splitlines() or ["?"])[0][:200]
            raise ModelError(f"cannot load BERT encoder {handle}: {first}") from None

    def call(self, ids: tf.Tensor, training=None) -> tf.Tensor:
        ids = tf.cast(ids, tf.int32)
        mask = tf.cast(tf.not_equal(ids, 0), tf.int32)
        outputs = self.encoder({"input_word_ids": ids, "input_mask": mask, "input_type_ids": tf.zeros_like(ids)},
                               training=training)
        if self.pooling == "pooled":
            return outputs["pooled_output"]
        sequence = outputs["sequence_output"]
        if self.pooling == "cls":
            return sequence[:, 0, :]
        weights = tf.cast(mask, sequence.dtype)[:, :, tf.newaxis]
        return tf.reduce_sum(sequence * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "handle": self.handle, "pooling": self.pooling}


def _folders(params: BertParams) -> tuple[str, str]:
    """The encoder's and the preprocessing model's local folders."""
    encoder_dir = resolve_handle(params.encoder, "encoder")
    if params.preprocessor:
        return encoder_dir, resolve_handle(params.preprocessor, "preprocessor")
    if store.find(params.encoder) is not None:
        return encoder_dir, resolve_handle(params.encoder, "preprocessor")
    return encoder_dir, resolve_handle(BERT_PREPROCESS, "preprocessor")


def word_vectors(params: BertParams, words: list[str]) -> np.ndarray:
    """Each word's input embedding in the pretrained encoder: the mean of its WordPiece rows of the encoder's
    word-embedding table (the variable with a row per vocabulary entry); NaN for a word that is only special
    tokens ([UNK]) or empty (the family's `word_vectors`: what a distilled student's word embeddings can start
    from). Memory: the table and one row per piece of the words."""
    encoder_dir, preprocessor_dir = _folders(params)
    vocab = Path(preprocessor_dir, "assets", "vocab.txt").read_text(encoding="utf-8").splitlines()
    checkpoint = str(Path(encoder_dir, "variables", "variables"))
    try:
        name = next(n for n, shape in tf.train.list_variables(checkpoint) if len(shape) == 2 and shape[0] == len(vocab))
    except (StopIteration, tf.errors.OpError, ValueError):
        raise ModelError(f"encoder {params.encoder}: no word-embedding table of {len(vocab):,} rows in "
                         f"{checkpoint}") from None
    table = tf.train.load_variable(checkpoint, name)
    pieces = wordpiece_layer(preprocessor_dir, params.tokenizer)(tf.constant([str(w) for w in words]))
    if pieces.ragged_rank > 1:  # the preprocessing model's own tokenizer: [text, word, piece]
        pieces = pieces.merge_dims(1, -1)
    special = np.array([t[:1] + t[-1:] in ("[]", "<>") for t in vocab])  # [UNK], [CLS], …, <unk>: no word's
    ids = pieces.flat_values.numpy().astype(np.int64)
    keep = ~special[ids] if len(ids) else np.zeros(0, bool)
    starts = np.minimum(pieces.row_splits.numpy()[:-1], max(len(ids) - 1, 0))
    counts, sums = np.zeros(len(words)), np.zeros((len(words), table.shape[1]))
    if len(ids):
        counts = np.add.reduceat(keep.astype(np.float64), starts)
        sums = np.add.reduceat(table[ids] * keep[:, None], starts)
    counts[pieces.row_lengths().numpy() == 0] = 0  # reduceat gives an empty row the next row's first value
    out = np.full((len(words), table.shape[1]), np.nan, np.float32)
    has = counts > 0
    out[has] = sums[has] / counts[has, None]
    return out


def build_bert(params: BertParams, *, num_classes: int, train_texts: np.ndarray | None = None,
               multilabel: bool = False) -> BuiltModel:
    """Build the classifier; the encoder's weights come from its SavedModel."""
    encoder_dir, preprocessor_dir = _folders(params)
    cls_id, sep_id = _special_ids(preprocessor_dir)

    wordpiece = wordpiece_layer(preprocessor_dir, params.tokenizer)
    notes = []
    if not params.max_length:
        if train_texts is None or not len(train_texts):
            params = dataclasses.replace(params, max_length=128)
        else:
            texts = tf.data.Dataset.from_tensor_slices(tf.constant([str(t) for t in train_texts])).batch(4096)
            counts = np.concatenate([wordpiece(batch).row_lengths().numpy() + 2 for batch in texts])
            params, notes = max_length_from_data(params, counts, MAX_SEQUENCE, "WordPiece counts + [CLS], [SEP]")
    pack = BertPackIds(params.max_length, cls_id, sep_id, name="pack")
    text_in = keras.Input(shape=(), dtype=tf.string, name="text")
    text_to_ids = keras.Model(text_in, pack(wordpiece(text_in)), name="text_to_ids")

    ids = keras.Input(shape=(None,), dtype=tf.int32, name="token_ids")
    features = keras.Model(ids, HubBertEncoder(encoder_dir, params.pooling, params.trainable, name="bert")(ids),
                           name="bert_features")
    pooled = keras.Input(shape=(features.output.shape[-1],), name="pooled")
    x = keras.layers.Dropout(params.dropout)(pooled)
    head = keras.Model(pooled, keras.layers.Dense(num_classes, activation=task.activation(multilabel), dtype="float32",
                                                  name="probs")(x), name="head")
    model = keras.Model(ids, head(features(ids)), name="bert_classifier")

    def encode(batch: tf.Tensor) -> tf.RaggedTensor:
        return pack.ragged(wordpiece(batch))

    frozen = not params.trainable
    return BuiltModel(model=model, encode=encode, text_to_ids=text_to_ids,
                      mode=FROZEN_FEATURES if frozen else END_TO_END,
                      features=features if frozen else None, head=head if frozen else None, params=params,
                      notes=notes)
