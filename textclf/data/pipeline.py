"""The shared tf.data pipeline: tokenize once in-graph, cache, shuffle, bucket by length."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from textclf._tf import tf

Encoder = Callable[[tf.Tensor], tf.RaggedTensor]
ENCODE_CHUNK = 4096


@dataclass
class Batches:
    """A batched dataset and the exact number of batches one pass yields."""

    dataset: tf.data.Dataset
    steps: int
    examples: int
    padded_tokens: int | None = None


def encode_texts(texts: np.ndarray, encode: Encoder) -> tf.RaggedTensor:
    """Tokenize all texts once (in-graph `encode`, in chunks) into one RaggedTensor."""
    parts = [
        encode(tf.constant(list(texts[i : i + ENCODE_CHUNK]), dtype=tf.string))
        for i in range(0, len(texts), ENCODE_CHUNK)
    ]
    return tf.concat(parts, axis=0) if len(parts) > 1 else parts[0]


def length_buckets(lengths: np.ndarray, batch_size: int, max_buckets: int = 12) -> list[int]:
    """Bucket boundaries at length quantiles, a few batches per bucket at least."""
    n_buckets = int(min(max_buckets, max(1, len(lengths) // (batch_size * 4))))
    if n_buckets <= 1:
        return []
    qs = np.quantile(lengths, np.linspace(0, 1, n_buckets + 1)[1:-1])
    return sorted({int(q) + 1 for q in qs})


def training_batches(
    ids: tf.RaggedTensor,
    labels: np.ndarray,
    *,
    global_batch_size: int,
    seed: int,
    bucket: bool = True,
    repeat: bool = False,
) -> Batches:
    """Shuffled (seeded, reshuffled every epoch), length-bucketed, padded-per-batch batches."""
    lengths = ids.row_lengths().numpy()
    ds = _id_dataset(ids, labels)
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    boundaries = length_buckets(lengths, global_batch_size) if bucket else []
    if boundaries:
        ds = ds.bucket_by_sequence_length(
            element_length_func=lambda x, y: tf.shape(x)[0],
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[global_batch_size] * (len(boundaries) + 1),
            padded_shapes=([None], []),
        )
        counts = np.bincount(np.searchsorted(boundaries, lengths, side="right"),
                             minlength=len(boundaries) + 1)
        steps = int(sum(math.ceil(c / global_batch_size) for c in counts))
    else:
        ds = ds.padded_batch(global_batch_size, padded_shapes=([None], []))
        steps = math.ceil(len(labels) / global_batch_size)
    if repeat:  # exact `steps` per pass, so Keras can run several steps per call
        ds = ds.repeat()
    return Batches(ds.prefetch(tf.data.AUTOTUNE), steps, len(labels))


def _id_dataset(ids: tf.RaggedTensor, labels: np.ndarray) -> tf.data.Dataset:
    """(ids without padding, label) elements from the tokenized corpus held in memory."""
    dense = tf.cast(ids.to_tensor(0), tf.int32)
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    ds = tf.data.Dataset.from_tensor_slices((dense, lengths, labels.astype(np.int32)))
    ds = ds.map(lambda x, n, y: (x[:n], y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.cache()


def eval_batches(ids: tf.RaggedTensor, labels: np.ndarray, *, batch_size: int) -> Batches:
    """In-order batches padded to each batch's longest sequence."""
    ds = _id_dataset(ids, labels)
    ds = ds.padded_batch(batch_size, padded_shapes=([None], [])).prefetch(tf.data.AUTOTUNE)
    return Batches(ds, math.ceil(len(labels) / batch_size), len(labels))


def feature_batches(features: np.ndarray, labels: np.ndarray, *, global_batch_size: int, seed: int) -> Batches:
    """Shuffled, repeated batches of precomputed feature vectors (exact steps per pass)."""
    ds = tf.data.Dataset.from_tensor_slices((features, labels.astype(np.int32)))
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).batch(global_batch_size).repeat()
    return Batches(ds.prefetch(tf.data.AUTOTUNE), math.ceil(len(labels) / global_batch_size), len(labels))


def array_batches(features: np.ndarray, labels: np.ndarray, *, batch_size: int) -> Batches:
    """In-order batches of precomputed feature vectors."""
    ds = tf.data.Dataset.from_tensor_slices((features, labels.astype(np.int32))).batch(batch_size)
    return Batches(ds.prefetch(tf.data.AUTOTUNE), math.ceil(len(labels) / batch_size), len(labels))


def predict_by_length(model, ids: tf.RaggedTensor, batch_size: int) -> np.ndarray:
    """model(padded ids) for every row, batched in length order (little padding), in input order."""
    lengths = ids.row_lengths().numpy()
    order = np.argsort(lengths, kind="stable")
    ordered = tf.gather(ids, order)
    batches = eval_batches(ordered, np.zeros(len(order), np.int32), batch_size=batch_size)
    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    out = np.concatenate([fn(x).numpy() for x, _ in batches.dataset])
    result = np.empty_like(out)
    result[order] = out
    return result
