"""What a model builder returns, and the text layers shared by token-id models."""

from __future__ import annotations

import contextvars
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from textclf._tf import keras, tf
from textclf.compat import NoAutograph

PACKAGE = "textclf"

# True while a saved run's model is rebuilt from its config with its weights read right after
# (textclf.models.saving): layers that load pretrained weights of their own (a BERT encoder's
# SavedModel checkpoint) skip reading them, since every value would be overwritten.
WEIGHTS_FOLLOW: contextvars.ContextVar[bool] = contextvars.ContextVar("textclf_weights_follow", default=False)


class GraphLayer(NoAutograph, keras.layers.Layer):
    """A layer whose `call` is plain TensorFlow ops, with no Python control flow on tensors.

    Keras runs every subclassed layer's `call` through AutoGraph when it builds or loads
    a model; for these layers that conversion only costs time (≈ 0.5 s of a cold
    `textclf predict`), so it is switched off (textclf.compat.NoAutograph).
    """


# How a built model trains (BuiltModel.mode): one per family's way of learning.
END_TO_END = "end_to_end"  # every weight trains on batches of token ids (`model`): transformer, fine-tuned BERT
FROZEN_FEATURES = "frozen_features"  # `features` (frozen) runs once per text, then only `head` trains: frozen BERT
FEATURE_ROWS = "feature_rows"  # `feature_rows` computes features in numpy, then `head` trains: n-gram bags
MODES = (END_TO_END, FROZEN_FEATURES, FEATURE_ROWS)


@dataclass
class BuiltModel:
    """A trainable model plus the in-graph encoder the data pipeline tokenizes with.

    `model` maps padded token ids (batch, time) to class probabilities; `encode` maps a
    batch of strings to ragged token ids; `inference_model()` chains both so a saved run
    takes raw strings. `mode` says how it trains (END_TO_END, FROZEN_FEATURES, FEATURE_ROWS)
    and which of the optional fields it needs (checked when built).
    """

    model: keras.Model
    encode: Callable[[tf.Tensor], tf.RaggedTensor]
    text_to_ids: keras.layers.Layer | keras.Model
    mode: str = END_TO_END
    # FROZEN_FEATURES and FEATURE_ROWS: `model` is head(features(ids)); only `head` trains.
    features: keras.Model | None = None
    head: keras.Model | None = None
    feature_batch_size: int = 64  # texts per call when computing frozen features (memory-bound for BERT)
    # FEATURE_ROWS: texts -> their feature rows (a scipy CSR matrix) in numpy, and those of the
    # builder's training texts when it computed them anyway (nothing padded).
    feature_rows: Callable[[Any], Any] | None = None
    train_rows: Any = None
    # The training loss on the head's output (default: the task's, textclf.task); a head that outputs
    # scores maps them to probabilities with `to_probabilities`.
    loss: Any = None
    to_probabilities: Callable[[Any], Any] = lambda x: x
    # The parameters as built, when the builder settled some from the data (e.g. max_length):
    # they replace the requested ones in the run's config.json.
    params: Any = None
    # One line each for what the builder chose from the data (printed when training starts).
    notes: list[str] = field(default_factory=list)
    # (vocabulary, embedding variable): word embeddings a distilled student can start from its teacher's
    # word vectors (textclf.distillation.start_from_teacher); None when the model has none.
    word_embeddings: tuple[list[str], Any] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"BuiltModel.mode {self.mode!r}: one of {', '.join(MODES)}")
        if self.mode != END_TO_END and (self.features is None or self.head is None):
            raise ValueError(f"BuiltModel.mode {self.mode}: needs `features` and `head`")
        if self.mode == FEATURE_ROWS and self.feature_rows is None:
            raise ValueError("BuiltModel.mode feature_rows: needs `feature_rows`")

    def inference_model(self, temperature=None, multilabel: bool = False) -> keras.Model:
        """Strings in, probabilities out; with a `temperature` (textclf.calibration), the classifier on token
        ids ends in TemperatureScaling, so everything made from the model (its twin, TFLite) is calibrated."""
        classifier = self.model
        if temperature is not None:
            ids = keras.Input(shape=(None,), dtype=self.model.inputs[0].dtype, name="token_ids")
            calibrate = TemperatureScaling(temperature, multilabel, name="temperature_scaling")
            classifier = keras.Model(ids, calibrate(self.model(ids)), name=f"{self.model.name}_calibrated")
        texts = keras.Input(shape=(), dtype=tf.string, name="text")
        return keras.Model(texts, classifier(self.text_to_ids(texts)), name="textclf_classifier")


@keras.saving.register_keras_serializable(package=PACKAGE)
class TemperatureScaling(GraphLayer):
    """Probabilities -> the same at `temperature` (textclf.calibration.scale, in TensorFlow): softmax of
    log p / T, or per label (a list of T) sigmoid of logit p / T. The argmax never changes."""

    EPS = 1e-7

    def __init__(self, temperature, multilabel: bool = False, **kwargs) -> None:
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.temperature = [float(t) for t in temperature] if isinstance(temperature, (list, tuple)) \
            else float(temperature)
        self.multilabel = bool(multilabel)

    def call(self, probs: tf.Tensor) -> tf.Tensor:
        p = tf.clip_by_value(tf.cast(probs, tf.float32), self.EPS, 1.0 - self.EPS)
        t = tf.constant(self.temperature, tf.float32)
        if self.multilabel:
            return tf.sigmoid((tf.math.log(p) - tf.math.log1p(-p)) / t)
        return tf.nn.softmax(tf.math.log(p) / t)

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature, "multilabel": self.multilabel}


LENGTH_PERCENTILE = 99


def length_from_data(lengths: np.ndarray, cap: int, floor: int = 8) -> int:
    """A token budget for texts of these lengths: their 99th percentile rounded up to a multiple of 8, in [floor, cap].

    Padding is per batch (to its longest text), so a budget above most texts costs only the
    long tail; the cap bounds attention's quadratic cost and the position embeddings.
    """
    if len(lengths) == 0:
        return floor
    budget = int(np.ceil(np.percentile(lengths, LENGTH_PERCENTILE) / 8.0) * 8)
    return int(min(cap, max(floor, budget)))


def max_length_from_data(params, counts: np.ndarray, cap: int, what: str):
    """`params` with max_length taken from the training texts' token `counts`, and the line that says so."""
    params = dataclasses.replace(params, max_length=length_from_data(counts, cap))
    return params, [f"max_length {params.max_length}: {LENGTH_PERCENTILE}th percentile of the training texts' "
                    f"{what} (at most {cap}; --max-length to set it)"]


@keras.saving.register_keras_serializable(package=PACKAGE)
class SequenceIds(GraphLayer):
    """Ragged ids (or dense ids padded with 0) -> at most `max_length` ids per row, padded, never an empty row.

    An empty row (a text with no tokens left) becomes one OOV id, so masked pooling
    always has a position to average and training and serving see the same ids.
    """

    def __init__(self, max_length: int, oov_id: int = 1, **kwargs) -> None:
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.max_length = max_length
        self.oov_id = oov_id

    def ragged(self, ids) -> tf.RaggedTensor:
        """Ragged ids (or, from runs of earlier versions, ids padded with 0) cut to max_length."""
        if isinstance(ids, tf.RaggedTensor):
            ids = ids[:, : self.max_length]
        else:
            ids = tf.RaggedTensor.from_tensor(ids, padding=0)[:, : self.max_length]
        empty = tf.equal(ids.row_lengths(), 0)[:, tf.newaxis]
        fill = tf.ragged.boolean_mask(tf.fill(tf.shape(empty), tf.cast(self.oov_id, ids.dtype)), empty)
        return tf.concat([ids, fill], axis=1)

    def call(self, dense: tf.Tensor) -> tf.Tensor:
        return self.ragged(dense).to_tensor(0)

    def get_config(self) -> dict:
        return {**super().get_config(), "max_length": self.max_length, "oov_id": self.oov_id}
