"""The task: single-label (one class per text) or multi-label (a set of labels per text).

The one owner of what differs between them, used by the models, training, evaluation,
prediction, serving and export:

- the output activation (softmax over the classes, or one sigmoid per label), the loss and the
  accuracy metric a Keras model trains with;
- the decision rule: the most probable class, or every label whose probability reaches its
  threshold (the thresholds tuned on the validation part when the run trained).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def activation(multilabel: bool) -> str:
    """The output layer's activation: one probability per class summing to 1, or one independent
    probability per label (multi-label data: any number of labels per text)."""
    return "sigmoid" if multilabel else "softmax"


def loss(multilabel: bool):
    """Cross-entropy on the model's probabilities: over the classes, or per label."""
    from textclf._tf import keras

    return keras.losses.BinaryCrossentropy() if multilabel else keras.losses.SparseCategoricalCrossentropy()


def example_loss(multilabel: bool):
    """`loss` as a plain function, one value per example (usable under any distribution strategy)."""
    from textclf._tf import keras

    return keras.losses.binary_crossentropy if multilabel else keras.losses.sparse_categorical_crossentropy


def subset_accuracy(y_true, y_pred):
    """Multi-label accuracy (scikit-learn's accuracy_score on label sets): 1 when every label's
    probability is on the right side of 0.5, else 0."""
    from textclf._tf import tf

    match = tf.equal(tf.cast(y_true > 0.5, tf.bool), tf.cast(y_pred >= 0.5, tf.bool))
    return tf.cast(tf.reduce_all(match, axis=-1), tf.float32)


def accuracy_metric(multilabel: bool):
    """The `accuracy` a Keras model reports while it trains: of the class, or of the whole label set."""
    from textclf._tf import keras

    if multilabel:
        return keras.metrics.MeanMetricWrapper(subset_accuracy, name="accuracy")
    return keras.metrics.SparseCategoricalAccuracy(name="accuracy")


def decide(probs: np.ndarray, thresholds: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """The answers for rows of probabilities: the class index per row (`thresholds` None), or multi-hot
    uint8 rows, 1 where a label's probability reaches its threshold."""
    probs = np.asarray(probs)
    if thresholds is None:
        return probs.argmax(axis=1)
    return (probs >= np.asarray(thresholds)).astype(np.uint8)


def chosen(p: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> list[int]:
    """One text's labels (multi-label): those reaching their thresholds, most probable first."""
    hot = decide(np.asarray(p)[None, :], thresholds)[0]
    return sorted(np.flatnonzero(hot).tolist(), key=lambda j: -p[j])


def decide_graph(probs: Any, thresholds: Any = None) -> Any:
    """`decide` in a TensorFlow graph (an export's serving signature): int32 class ids, or int32 multi-hot."""
    from textclf._tf import tf

    if thresholds is None:
        return tf.argmax(probs, axis=1, output_type=tf.int32)
    return tf.cast(probs >= thresholds, tf.int32)
