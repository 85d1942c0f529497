"""The shared tf.data pipeline: tokenize once in-graph, cache, shuffle, bucket by length."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from textclf._tf import tf
from textclf.data import length_order

Encoder = Callable[[tf.Tensor], tf.RaggedTensor]
ENCODE_CHUNK = 4096


@dataclass
class Batches:
    """A batched dataset and the exact number of batches one pass yields.

    `inverse`: set when the batches hold the rows in another order (eval batches in length
    order); `in_input_order` puts per-row outputs of one pass back in the input's order.
    """

    dataset: tf.data.Dataset
    steps: int
    inverse: np.ndarray | None = None

    def in_input_order(self, outputs: np.ndarray) -> np.ndarray:
        return outputs if self.inverse is None else outputs[self.inverse]


def label_values(labels: np.ndarray) -> np.ndarray:
    """Labels as the model's targets: int32 class ids, or float32 multi-hot rows (multi-label data)."""
    return labels.astype(np.float32) if labels.ndim == 2 else labels.astype(np.int32)


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
    start_epoch: int = 0,
    fixed_shapes: bool = False,
) -> Batches:
    """Shuffled, length-bucketed batches padded to each batch's longest sequence.

    Each epoch shuffles the examples, groups them by length bucket, cuts every bucket into
    batches and shuffles the batch order; then one gather per batch builds it. Batch sizes
    per bucket are the same every epoch, so all index work is a handful of vectorized ops
    per epoch instead of per-example tf.data work (which cost ~25% of a transformer step on
    2 cores with `bucket_by_sequence_length`).

    Epoch e's order depends only on (seed, e): a run resumed at epoch e sees exactly the
    batches an uninterrupted run would. `repeat` yields epochs start_epoch, start_epoch+1, …
    (each with exactly `steps` batches, so Keras can run several steps per call); without
    it, the one epoch `start_epoch`. `fixed_shapes` pads each batch to the longest length
    its bucket admits (a few distinct shapes, for XLA, which compiles once per shape)
    instead of to the batch's longest sequence.
    """
    lengths = ids.row_lengths().numpy().astype(np.int32)
    boundaries = length_buckets(lengths, global_batch_size) if bucket else []
    bucket_of = np.searchsorted(boundaries, lengths, side="right").astype(np.int32)
    counts = np.bincount(bucket_of, minlength=len(boundaries) + 1)
    # Batch sizes bucket by bucket (full batches, then the remainder), and each batch's bucket.
    sizes = [min(global_batch_size, c - i) for c in counts for i in range(0, c, global_batch_size)]
    batch_bucket = [b for b, c in enumerate(counts) for _ in range(0, c, global_batch_size)]
    steps = len(sizes)
    longest = np.array([*boundaries, int(lengths.max()) + 1], np.int32) - 1  # longest text each bucket can hold
    dense = tf.constant(ids.to_tensor(0).numpy().astype(np.int32))
    row_lengths, ys = tf.constant(lengths), tf.constant(label_values(labels))
    buckets, sizes_t = tf.constant(bucket_of), tf.constant(sizes, tf.int64)
    batch_width = tf.constant(longest[batch_bucket] if fixed_shapes else np.zeros(steps, np.int32))

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        perm = tf.random.experimental.stateless_shuffle(tf.range(len(labels)), seed=key)
        perm = tf.gather(perm, tf.argsort(tf.gather(buckets, perm), stable=True))  # by bucket, shuffled within
        per_batch = tf.RaggedTensor.from_row_lengths(perm, sizes_t)
        order = tf.random.experimental.stateless_shuffle(tf.range(steps), seed=key + [0, 2**40])
        return tf.data.Dataset.from_tensor_slices((tf.gather(per_batch, order), tf.gather(batch_width, order)))

    def gather(idx: tf.Tensor, fixed_width: tf.Tensor):
        w = fixed_width if fixed_shapes else tf.reduce_max(tf.gather(row_lengths, idx))
        return tf.gather(dense, idx)[:, :w], tf.gather(ys, idx)

    ds = _epochs(start_epoch, repeat).flat_map(one_epoch)
    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return Batches(ds.prefetch(tf.data.AUTOTUNE), steps)


def _epochs(start_epoch: int, repeat: bool) -> tf.data.Dataset:
    return tf.data.Dataset.range(start_epoch, 2**62 if repeat else start_epoch + 1)


def _shuffled_indices(n: int, seed: int, epoch: tf.Tensor) -> tf.data.Dataset:
    """0..n-1 in an order fixed by (seed, epoch) alone (stateless: nothing to checkpoint)."""
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.data.Dataset.from_tensor_slices(tf.random.experimental.stateless_shuffle(tf.range(n), seed=key))


def _id_dataset(ids: tf.RaggedTensor, labels: np.ndarray) -> tf.data.Dataset:
    """(ids without padding, label) elements from the tokenized corpus held in memory."""
    dense = tf.cast(ids.to_tensor(0), tf.int32)
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    ds = tf.data.Dataset.from_tensor_slices((dense, lengths, label_values(labels)))
    ds = ds.map(lambda x, n, y: (x[:n], y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.cache()


def eval_batches(ids: tf.RaggedTensor, labels: np.ndarray, *, batch_size: int) -> Batches:
    """Batches in length order, each padded to its longest sequence; `in_input_order` undoes the order.

    In input order a batch of 256 pads to its longest text (for AG News near the 128-token
    cap, ~2.5x the mean), which made a fine-tuned MiniLM's validation pass cost a fifth of its
    training time. Batched as ragged rows and padded per batch: a per-example map (as
    `_id_dataset` does for shuffled training batches) took 3-10x longer on 5,400 texts.
    """
    order = np.argsort(ids.row_lengths().numpy(), kind="stable")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    ids, labels = tf.gather(ids, order), labels[order]
    ds = tf.data.Dataset.from_tensor_slices((tf.cast(ids, tf.int32), label_values(labels))).batch(batch_size)
    ds = ds.map(lambda x, y: (x.to_tensor(0), y)).cache().prefetch(tf.data.AUTOTUNE)
    return Batches(ds, math.ceil(len(labels) / batch_size), inverse)


@dataclass
class SparseRows:
    """Precomputed sparse feature rows (e.g. TF-IDF): per example its non-zero columns and values."""

    cols: tf.RaggedTensor
    values: tf.RaggedTensor
    width: int

    def rows(self, index: tf.Tensor) -> tf.SparseTensor:
        """The rows at `index` as a SparseTensor (len(index), width), in canonical order."""
        cols, values = tf.gather(self.cols, index), tf.gather(self.values, index)
        indices = tf.stack([cols.value_rowids(), cols.flat_values], axis=1)
        return tf.SparseTensor(indices, values.flat_values, tf.stack([cols.nrows(), tf.constant(self.width, tf.int64)]))


def sparse_rows(matrix) -> SparseRows:
    """A scipy CSR matrix as SparseRows (its row splits, columns and values as they are)."""
    splits = tf.constant(np.asarray(matrix.indptr, np.int64))
    cols = tf.RaggedTensor.from_row_splits(tf.constant(np.asarray(matrix.indices, np.int64)), splits, validate=False)
    values = tf.RaggedTensor.from_row_splits(tf.constant(np.asarray(matrix.data, np.float32)), splits, validate=False)
    return SparseRows(cols, values, int(matrix.shape[1]))


Features = "np.ndarray | SparseRows"


def concat_features(parts: list) -> Features:
    """Precomputed features of several sets, one after another."""
    if isinstance(parts[0], SparseRows):
        cols, values = tf.concat([p.cols for p in parts], 0), tf.concat([p.values for p in parts], 0)
        return SparseRows(cols, values, parts[0].width)
    return np.concatenate(parts)


def _take(features, index: tf.Tensor):
    if isinstance(features, SparseRows):
        return features.rows(index)
    return tf.gather(features, index)


def feature_batches(
    features: Features, labels: np.ndarray, *, global_batch_size: int, seed: int, start_epoch: int = 0
) -> Batches:
    """Shuffled batches of precomputed features (dense vectors or sparse rows), epochs from `start_epoch` on, endless.

    As in `training_batches`, epoch e's order depends only on (seed, e).
    """
    xs = features if isinstance(features, SparseRows) else tf.constant(features)
    ys = tf.constant(label_values(labels))
    steps = math.ceil(len(labels) / global_batch_size)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        batches = _shuffled_indices(len(labels), seed, epoch).batch(global_batch_size)
        return batches.map(lambda i: (_take(xs, i), tf.gather(ys, i)))

    ds = _epochs(start_epoch, repeat=True).flat_map(one_epoch)
    return Batches(ds.prefetch(tf.data.AUTOTUNE), steps)


def array_batches(features: Features, labels: np.ndarray, *, batch_size: int) -> Batches:
    """In-order batches of precomputed features (dense vectors or sparse rows)."""
    if isinstance(features, SparseRows):
        ys = tf.constant(label_values(labels))
        ds = tf.data.Dataset.range(len(labels)).batch(batch_size).map(lambda i: (features.rows(i), tf.gather(ys, i)))
    else:
        ds = tf.data.Dataset.from_tensor_slices((features, label_values(labels))).batch(batch_size)
    return Batches(ds.prefetch(tf.data.AUTOTUNE), math.ceil(len(labels) / batch_size))


def feature_function(model):
    """model(x, training=False) for padded int32 id batches of any shape, traced once.

    One signature for every batch: left to `reduce_retracing` it traced three times for the
    batches of one id set (0.08 s each for the n-gram features).
    """
    return tf.function(lambda x: model(x, training=False), input_signature=[tf.TensorSpec([None, None], tf.int32)])


def predict_by_length(fn, ids: tf.RaggedTensor, batch_size: int, progress=None) -> Features:
    """fn(padded ids) for every row, batched in length order (little padding), in input order.

    `fn` is a `feature_function`: reuse one for several id sets and it is traced once. A model
    with SparseTensor output (a bag of n-grams) gives SparseRows, else an array. `progress(rows
    done)` is called after each batch.
    """
    batches, inverse = length_order(ids.row_lengths().numpy(), batch_size)
    ids = tf.cast(ids, tf.int32)
    outputs, done = [], 0
    if progress is not None:
        progress(0)
    for rows in batches:
        outputs.append(fn(tf.gather(ids, rows).to_tensor(0)))
        done += len(rows)
        if progress is not None:
            progress(done)
    n = len(inverse)
    if outputs and isinstance(outputs[0], tf.SparseTensor):
        offsets = np.cumsum([0] + [int(p.dense_shape[0]) for p in outputs[:-1]])
        rows = np.concatenate([p.indices[:, 0].numpy() + o for p, o in zip(outputs, offsets)])
        cols = np.concatenate([p.indices[:, 1].numpy() for p in outputs])
        values = np.concatenate([p.values.numpy() for p in outputs])
        as_ragged = lambda v: tf.gather(tf.RaggedTensor.from_value_rowids(v, rows, nrows=n), inverse)
        return SparseRows(as_ragged(cols), as_ragged(values), int(outputs[0].dense_shape[1]))
    out = np.concatenate([o.numpy() for o in outputs])
    return out[inverse]
