"""Prediction with a finished run: one model load, any number of texts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from textclf.errors import DataError
from textclf.runs import load_labels, load_model, resolve_run

PREDICT_BATCH = 256


@dataclass(frozen=True)
class Prediction:
    """The top label, its probability, and the top-k (label, probability) pairs."""

    text: str
    label: str
    probability: float
    top_k: list[dict]

    def to_dict(self) -> dict:
        return {"text": self.text, "label": self.label, "probability": self.probability, "top_k": self.top_k}


class Predictor:
    """A loaded run: labels plus the string-in, probabilities-out model."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.labels = load_labels(run_dir)
        self.model = load_model(run_dir)

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        from textclf._tf import tf

        texts = np.asarray(list(texts), dtype=object).astype(str)
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        # Sorting by length keeps padding per batch small; results go back in input order.
        order = np.argsort([len(t) for t in texts], kind="stable")
        if len(texts) <= PREDICT_BATCH:
            # One batch: an eager call answers sooner than tracing a graph (cold start).
            probs = self.model(tf.constant(texts[order]), training=False).numpy()
        else:
            ds = tf.data.Dataset.from_tensor_slices(texts[order]).batch(PREDICT_BATCH)
            probs = np.concatenate([self._forward(batch).numpy() for batch in ds])
        out = np.empty_like(probs)
        out[order] = probs
        return out

    @property
    def _forward(self):
        from textclf._tf import tf

        if not hasattr(self, "_fn"):
            self._fn = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        return self._fn

    def predict(self, texts: Sequence[str], top_k: int = 1) -> list[Prediction]:
        texts = list(texts)
        for i, text in enumerate(texts, start=1):
            if not text.strip():
                raise DataError(f"text {i} is empty")
        probs = self.probabilities(texts)
        k = max(1, min(top_k, len(self.labels)))
        results = []
        for text, p in zip(texts, probs):
            best = np.argsort(-p, kind="stable")[:k]
            tops = [{"label": self.labels[j], "probability": float(p[j])} for j in best]
            results.append(Prediction(text, tops[0]["label"], tops[0]["probability"], tops))
        return results


def load_predictor(run: str | Path | None = None, root: str | Path = "runs") -> Predictor:
    """Load a complete run (default: the latest under root)."""
    return Predictor(resolve_run(run, root))


def predict(run: str | Path | None, texts: Sequence[str], top_k: int = 1) -> list[Prediction]:
    """Classify texts with a run (default: the latest)."""
    return load_predictor(run).predict(texts, top_k)
