"""The toy family's builder: TextVectorization -> ids (cut to max_length) -> Embedding -> mean -> Dense."""

from __future__ import annotations

import numpy as np

from textclf import task
from textclf._tf import keras, tf
from textclf.models.base import END_TO_END, BuiltModel, SequenceIds


def build_toy_bow(params, *, num_classes: int, train_texts: np.ndarray, multilabel: bool = False) -> BuiltModel:
    vectorizer = keras.layers.TextVectorization(max_tokens=params.vocab_size, ragged=True, name="vectorizer")
    vectorizer.adapt(tf.data.Dataset.from_tensor_slices(tf.constant([str(t) for t in train_texts])).batch(1024))
    cut = SequenceIds(params.max_length, name="sequence_ids")
    text_in = keras.Input(shape=(), dtype=tf.string, name="text")
    text_to_ids = keras.Model(text_in, cut(vectorizer(text_in)), name="text_to_ids")
    ids = keras.Input(shape=(None,), dtype=tf.int64, name="token_ids")
    x = keras.layers.Embedding(vectorizer.vocabulary_size(), params.embed_dim, mask_zero=True, name="embedding")(ids)
    x = keras.layers.GlobalAveragePooling1D(name="mean")(x)
    probs = keras.layers.Dense(num_classes, activation=task.activation(multilabel), name="probs")(x)
    return BuiltModel(model=keras.Model(ids, probs, name="toy_bow"), encode=lambda batch: cut.ragged(vectorizer(batch)),
                      text_to_ids=text_to_ids, mode=END_TO_END)
