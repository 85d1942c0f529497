"""Classification metrics for a run on labelled data (numbers only; the CLI renders them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Report:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""

    accuracy: float
    macro_f1: float
    per_class: list[dict]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class
    labels: list[str]
    examples: int
    data: str

    def to_dict(self) -> dict:
        return asdict(self)


def report_from_predictions(
    y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str], data: str = ""
) -> Report:
    """Compute the report from integer true/predicted class ids."""
    k = len(labels)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    tp = np.diag(cm).astype(float)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    per_class = [
        {"label": labels[i], "precision": float(precision[i]), "recall": float(recall[i]),
         "f1": float(f1[i]), "support": int(support[i])}
        for i in range(k)
    ]
    present = support > 0  # macro-F1 over classes that occur in the data
    total = int(cm.sum())
    return Report(
        accuracy=float(tp.sum() / total) if total else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        per_class=per_class,
        confusion_matrix=cm.tolist(),
        labels=list(labels),
        examples=total,
        data=data,
    )


def evaluate(run_dir: str | Path | None = None, data: str | None = None) -> Report:
    """Evaluate a complete run (default: the latest) on `data` (default: the run's eval data)."""
    from textclf.config import DataConfig, from_dict
    from textclf.data.sources import load_eval
    from textclf.prediction import load_predictor
    from textclf.runs import Run

    predictor = load_predictor(run_dir)
    cfg = Run(predictor.run_dir).config
    data_cfg = from_dict(DataConfig, cfg.get("data", {}), "data")
    seed = int(cfg.get("training", {}).get("seed", 0))
    examples = load_eval(data_cfg, seed, predictor.labels, data)
    probs = predictor.probabilities(examples.texts)
    return report_from_predictions(examples.labels, probs.argmax(axis=1), predictor.labels, examples.source)
