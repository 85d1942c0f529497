"""Data sources (tfds, csv/tsv, jsonl, the shipped sample) and the shared tf.data pipeline."""

from __future__ import annotations

import numpy as np


def length_order(lengths, batch_size: int, budget: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Row indices in length order cut into batches (little padding per batch), and the inverse
    permutation that puts the concatenated results back in input order. With `budget`, a batch also
    holds at most that much length in all (a longer row alone): memory follows the work, not the count."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    if budget is None:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)], inverse
    batches, start, total = [], 0, 0
    for i, row in enumerate(order):
        size = int(lengths[row])
        if i > start and (i - start >= batch_size or (budget is not None and total + size > budget)):
            batches.append(order[start:i])
            start, total = i, 0
        total += size
    if start < len(order):
        batches.append(order[start:])
    return batches, inverse
