"""The shared pipeline: exact step counts, per-batch padding, seeded shuffling, no loss."""

import numpy as np

from textclf._tf import tf
from textclf.data.pipeline import eval_batches, feature_batches, length_buckets, training_batches


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


def test_fixed_shapes_pad_to_bucket_boundaries_and_keep_every_example():
    """For XLA: few distinct lengths (the bucket boundaries), same examples, same step count."""
    lengths = np.random.default_rng(1).integers(1, 40, size=500)
    labels = np.arange(500) % 3
    batches = training_batches(_ragged(lengths), labels, global_batch_size=16, seed=5, fixed_shapes=True)
    allowed = {b - 1 for b in length_buckets(lengths, 16)} | {int(lengths.max())}
    widths, seen = set(), []
    for x, y in batches.dataset:
        widths.add(x.shape[1])
        seen.extend(zip(np.count_nonzero(x.numpy(), axis=1).tolist(), y.numpy().tolist()))
    assert widths <= allowed and len(widths) <= len(allowed)
    assert len(seen) == 500 and sorted(seen) == sorted(zip(lengths.tolist(), labels.tolist()))
    assert sum(1 for _ in batches.dataset) == batches.steps


def test_shuffle_is_seeded():
    ids, labels = _ragged([5] * 64), np.arange(64)
    order = lambda seed: [
        y.numpy().tolist() for _, y in training_batches(ids, labels, global_batch_size=8, seed=seed).dataset
    ]
    assert order(1) == order(1)
    assert order(1) != order(2)


def test_eval_batches_run_in_length_order_and_come_back_in_input_order():
    from textclf._tf import tf

    ids = tf.ragged.constant([[1, 2, 3, 4, 5], [6], [7, 8, 9], [10, 11], [12, 13, 14, 15]])
    labels = np.array([0, 1, 2, 3, 4])
    batches = eval_batches(ids, labels, batch_size=2)
    widths, seen = [], []
    for x, y in batches.dataset:
        widths.append(x.shape[1])
        seen += y.numpy().tolist()
    assert widths == [2, 4, 5] and batches.steps == 3  # little padding: [1], [2, 3], [4, 5] tokens
    assert seen == [1, 3, 2, 4, 0]  # the labels travel with their rows
    first_ids = np.array([row[0] for x, _ in batches.dataset for row in x.numpy()])
    assert batches.in_input_order(first_ids).tolist() == [1, 6, 7, 10, 12]
    assert batches.in_input_order(np.array(seen)).tolist() == labels.tolist()


def test_length_buckets_need_enough_data():
    assert length_buckets(np.arange(10), batch_size=64) == []
    bounds = length_buckets(np.arange(10_000) % 100, batch_size=32)
    assert bounds == sorted(bounds) and 2 <= len(bounds) <= 12


def test_each_epoch_order_depends_only_on_seed_and_epoch():
    """What makes resume exact: the stream started at epoch e equals epoch e of the full stream."""
    lengths = np.random.default_rng(2).integers(1, 30, size=300)
    ids, labels = _ragged(lengths), np.arange(300)
    full = training_batches(ids, labels, global_batch_size=16, seed=4, repeat=True)
    stream = [y.numpy().tolist() for _, y in full.dataset.take(3 * full.steps)]
    epochs = [stream[i * full.steps:(i + 1) * full.steps] for i in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]
    for e in range(3):
        alone = training_batches(ids, labels, global_batch_size=16, seed=4, start_epoch=e)
        assert [y.numpy().tolist() for _, y in alone.dataset] == epochs[e]
        assert sorted(sum(epochs[e], [])) == list(range(300))


def test_feature_batches_resume_at_an_epoch():
    x = np.arange(100, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    y = np.arange(100)
    full = feature_batches(x, y, global_batch_size=32, seed=1)
    stream = [b.numpy().tolist() for _, b in full.dataset.take(2 * full.steps)]
    resumed = feature_batches(x, y, global_batch_size=32, seed=1, start_epoch=1)
    assert [b.numpy().tolist() for _, b in resumed.dataset.take(full.steps)] == stream[full.steps:]
    assert sorted(sum(stream[: full.steps], [])) == list(range(100))
