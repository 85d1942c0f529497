"""`--model auto`: choose the model family from statistics of the training split.

Google's Text Classification Guide measured that the ratio of the number of training samples
to the median number of words per sample predicts which family wins: below ~1500, a bag of
n-grams; above it, a sequence model. textclf's own measurements (docs/BENCHMARKS.md,
bench/baselines.py) refine the threshold for its models; the rule stays a pure function of
the statistics so it can be tested on any numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

# Samples / median words per sample at or above which the sequence model is chosen. The Guide's
# 1500 was measured with a sepCNN on pre-trained embeddings; textclf's transformer is trained from
# scratch and lost to TF-IDF + LinearSVC at 9,621 (SST-2: 80.7% vs 82.6%), so the bar is ten times
# higher. The bag of n-grams is the linear model on word and character n-grams fitted exactly (now liblinear):
# in 5-fold cross-validation on ag7600's training split and on 3 leak-free splits of SST-2's
# training file it matched or beat TF-IDF + LinearSVC, where the word-only MLP did not
# (docs/BENCHMARKS.md, bench/tune.py).
SEQUENCE_RATIO = 15000
NGRAM_MODEL = "ngram-linear"
SEQUENCE_MODEL = "transformer"


@dataclass(frozen=True)
class TextStats:
    """Size and length statistics of a set of texts."""

    samples: int
    median_words: float

    @property
    def ratio(self) -> float:
        """Samples / median words per sample (the Guide's S/W)."""
        return self.samples / max(self.median_words, 1.0)


def text_stats(texts: Sequence[str]) -> TextStats:
    """Samples and median words per sample (words split on whitespace)."""
    words = np.fromiter((len(str(t).split()) for t in texts), dtype=np.int64, count=len(texts))
    return TextStats(len(texts), float(np.median(words)) if len(words) else 0.0)


def choose_model(stats: TextStats, threshold: float = SEQUENCE_RATIO) -> dict[str, Any]:
    """The model for data with these statistics, and why (the record kept in config.json)."""
    model = SEQUENCE_MODEL if stats.ratio >= threshold else NGRAM_MODEL
    relation = ">=" if stats.ratio >= threshold else "<"
    return {"rule": "samples / median words per sample", "samples": stats.samples,
            "median_words": stats.median_words, "ratio": round(stats.ratio, 1), "threshold": threshold,
            "model": model,
            "reason": f"{stats.samples:,} samples / {stats.median_words:g} median words = {stats.ratio:,.0f} "
                      f"{relation} {threshold:,} → {model}"}


def choose_for_data(data: Any, seed: int) -> dict[str, Any]:
    """Load the training split of `data` (a DataConfig) and choose a model for it."""
    from textclf.data.sources import load_train_eval

    train, _ = load_train_eval(data, seed)
    return choose_model(text_stats(train.texts))
