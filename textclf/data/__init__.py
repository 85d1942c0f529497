"""Data sources (tfds, csv/tsv, jsonl, the shipped sample) and the shared tf.data pipeline."""

from __future__ import annotations

import numpy as np


def length_order(lengths, batch_size: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Row indices in length order cut into batches (little padding per batch), and the inverse
    permutation that puts the concatenated results back in input order."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)], inverse
