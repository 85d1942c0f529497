"""The shared pipeline: exact step counts, per-batch padding, seeded shuffling, no loss."""

import numpy as np

from textclf._tf import tf
from textclf.data.pipeline import eval_batches, length_buckets, training_batches


def _ragged(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return tf.ragged.constant([list(rng.integers(2, 50, size=n)) for n in lengths], dtype=tf.int64)


def test_bucketed_batches_cover_every_example_once_with_exact_step_count():
    lengths = np.random.default_rng(1).integers(1, 40, size=500)
    ids = _ragged(lengths)
    labels = np.arange(500) % 3
    batches = training_batches(ids, labels, global_batch_size=16, seed=5)
    seen, steps, padded = [], 0, 0
    for x, y in batches.dataset:
        steps += 1
        row_lengths = np.count_nonzero(x.numpy(), axis=1)
        assert x.shape[1] == row_lengths.max()  # padded to the batch's longest, not a fixed length
        padded += x.shape[0] * x.shape[1]
        seen.extend(zip(row_lengths.tolist(), y.numpy().tolist()))
    assert steps == batches.steps
    assert sorted(seen) == sorted(zip(lengths.tolist(), labels.tolist()))
    assert padded < 0.75 * 500 * lengths.max()  # bucketing beats padding everything to the max


def test_shuffle_is_seeded():
    ids, labels = _ragged([5] * 64), np.arange(64)
    order = lambda seed: [y.numpy().tolist() for _, y in training_batches(ids, labels, global_batch_size=8, seed=seed).dataset]
    assert order(1) == order(1)
    assert order(1) != order(2)


def test_eval_batches_keep_input_order():
    ids, labels = _ragged([3, 9, 1, 7]), np.array([0, 1, 2, 3])
    batches = eval_batches(ids, labels, batch_size=3)
    assert [y for _, ys in batches.dataset for y in ys.numpy().tolist()] == [0, 1, 2, 3]
    assert batches.steps == 2


def test_length_buckets_need_enough_data():
    assert length_buckets(np.arange(10), batch_size=64) == []
    bounds = length_buckets(np.arange(10_000) % 100, batch_size=32)
    assert bounds == sorted(bounds) and 2 <= len(bounds) <= 12
