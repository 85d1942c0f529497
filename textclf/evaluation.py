"""Classification metrics for a run on labelled data (numbers only; the CLI renders them)."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from textclf import task


@dataclass(frozen=True)
class Report:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Multi-label data (`multilabel`): accuracy is subset accuracy (every label right), macro-F1 the
    mean of the labels' F1, with micro-F1, sample-averaged F1 and hamming loss; per-class rows are
    per label (with its threshold) and there is no confusion matrix.
    """

    accuracy: float
    macro_f1: float
    per_class: list[dict]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class
    labels: list[str]
    examples: int
    data: str
    # With a confidence threshold: coverage (share answered) and the accuracy on the answered.
    abstention: dict | None = None
    # Accuracy vs coverage as the threshold rises (and, for two classes, precision/recall of the second).
    curve: dict | None = None
    multilabel: bool = False
    micro_f1: float | None = None
    samples_f1: float | None = None
    hamming_loss: float | None = None
    # How calibrated the probabilities are (textclf.calibration: ece, adaptive_ece, brier, nll); with
    # evaluate(calibration=True) also "temperature" (the run's) and "before": the measures without it.
    calibration: dict | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        if not self.multilabel:
            for key in ("multilabel", "micro_f1", "samples_f1", "hamming_loss"):
                out.pop(key)
        return out


# Thresholds tried per label (multi-label runs), on the validation part's probabilities.
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


def tune_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per label, the threshold in THRESHOLD_GRID with the best F1 on these examples (ties: the one
    nearest 0.5); 0.5 for a label with no positive example among them (nothing to tune on)."""
    truth = labels.astype(bool)
    chosen = np.full(labels.shape[1], 0.5)
    preference = np.argsort(np.abs(THRESHOLD_GRID - 0.5), kind="stable")  # nearest 0.5 first
    for j in range(labels.shape[1]):
        positives = int(truth[:, j].sum())
        if not positives:
            continue
        predicted = probs[:, j][:, None] >= THRESHOLD_GRID[None, :]  # (examples, thresholds)
        tp = (predicted & truth[:, j][:, None]).sum(axis=0)
        f1 = 2 * tp / (predicted.sum(axis=0) + positives)
        chosen[j] = THRESHOLD_GRID[preference[np.argmax(f1[preference])]]
    return chosen


def multilabel_report(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str], data: str = "",
                      thresholds: Sequence[float] | None = None) -> Report:
    """The report of multi-hot true/predicted label rows (examples, labels)."""
    truth, pred = y_true.astype(bool), y_pred.astype(bool)
    tp = (truth & pred).sum(axis=0).astype(float)
    support, predicted = truth.sum(axis=0), pred.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(len(labels)), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(len(labels)), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(len(labels)), where=denom > 0)
    per_class = [{"label": labels[i], "precision": float(precision[i]), "recall": float(recall[i]),
                  "f1": float(f1[i]), "support": int(support[i]), "predicted": int(predicted[i]),
                  **({"threshold": float(thresholds[i])} if thresholds is not None else {})}
                 for i in range(len(labels))]
    present = support > 0
    n = len(truth)
    # Sample F1: per text, F1 of its predicted set against its true set (both empty: 1, as scikit-learn's
    # zero_division=1 would; one empty: 0).
    row_tp, row_sum = (truth & pred).sum(axis=1), truth.sum(axis=1) + pred.sum(axis=1)
    samples = np.where(row_sum > 0, 2 * row_tp / np.maximum(row_sum, 1), 1.0)
    return Report(
        accuracy=float(np.all(truth == pred, axis=1).mean()) if n else 0.0,
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        per_class=per_class, confusion_matrix=[], labels=list(labels), examples=n, data=data, multilabel=True,
        micro_f1=float(2 * tp.sum() / max(support.sum() + predicted.sum(), 1)),
        samples_f1=float(samples.mean()) if n else 0.0,
        hamming_loss=float((truth != pred).mean()) if n else 0.0,
    )


def pr_curve(labels: np.ndarray, probs: np.ndarray, points: int = 101) -> dict:
    """Micro-averaged precision/recall over every (text, label) pair as one threshold rises (multi-label)."""
    score, positive = probs.ravel(), labels.astype(bool).ravel()
    by = np.argsort(-score, kind="stable")
    tp = np.cumsum(positive[by])
    keep = np.unique(np.linspace(0, len(by) - 1, min(points, len(by))).astype(int))
    precision, recall = tp / np.arange(1, len(by) + 1), tp / max(int(positive.sum()), 1)
    return {"pr": {"precision": precision[keep].tolist(), "recall": recall[keep].tolist(),
                   "threshold": score[by][keep].tolist()}}


def selective(labels: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """Answer only when the top probability reaches `threshold`: coverage and accuracy of the answers."""
    top = probs.max(axis=1)
    answered = top >= threshold
    hits = task.decide(probs) == labels
    n = int(answered.sum())
    return {"threshold": float(threshold), "coverage": float(n / max(len(labels), 1)), "answered": n,
            "abstained": int(len(labels) - n), "accuracy_answered": float(hits[answered].mean()) if n else None,
            "accuracy_all": float(hits.mean()) if len(hits) else None}


def coverage_curve(labels: np.ndarray, probs: np.ndarray, points: int = 101) -> dict:
    """Accuracy of the answers vs coverage, thresholds from 0 to the highest confidence."""
    top = probs.max(axis=1)
    hits = task.decide(probs) == labels
    order = np.argsort(-top, kind="stable")
    cum = np.cumsum(hits[order]) / np.arange(1, len(order) + 1)
    keep = np.unique(np.linspace(0, len(order) - 1, min(points, len(order))).astype(int))
    curve = {"coverage": ((keep + 1) / len(order)).tolist(), "accuracy": cum[keep].tolist(),
             "threshold": top[order][keep].tolist()}
    if probs.shape[1] == 2:  # precision/recall of the second class (the positive one)
        score, positive = probs[:, 1], labels == 1
        by = np.argsort(-score, kind="stable")
        tp = np.cumsum(positive[by])
        precision, recall = tp / np.arange(1, len(by) + 1), tp / max(int(positive.sum()), 1)
        curve["pr"] = {"precision": precision[keep].tolist(), "recall": recall[keep].tolist(),
                       "threshold": score[by][keep].tolist()}
    return curve


def threshold_for(labels: np.ndarray, probs: np.ndarray, target: float) -> dict | None:
    """The lowest threshold whose answers reach accuracy `target` on these examples (most coverage), or None."""
    top = probs.max(axis=1)
    hits = task.decide(probs) == labels
    order = np.argsort(-top, kind="stable")
    accuracy = np.cumsum(hits[order]) / np.arange(1, len(order) + 1)
    # A threshold answers every example at least as confident as it: only the last of a run of equal
    # confidences is a place to cut (cutting inside one answered the whole run, ties below the promise).
    ranked = top[order]
    ends = np.append(ranked[1:] < ranked[:-1], True)
    ok = np.flatnonzero((accuracy >= target) & ends)
    if not len(ok):
        return None
    chosen = selective(labels, probs, float(ranked[ok[-1]])) | {"target_accuracy": float(target)}
    if chosen["accuracy_answered"] is None or not chosen["accuracy_answered"] >= target - 1e-12:
        return None  # e.g. NaN probabilities (a diverged model): no threshold keeps the promise
    return chosen


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


def evaluate(run_dir: str | Path | None = None, data: str | None = None, *, threshold: float | None = None,
             target_accuracy: float | None = None, curve: bool = False,
             progress: Callable[[str, int, int], None] | None = None, text_fields: Sequence[str] | None = None,
             label_field: str | None = None, say: Callable[[str], None] = lambda step: None,
             calibration: bool = False) -> Report:
    """Evaluate a complete run (default: the latest) on `data` (default: the run's eval data).

    `threshold`: also coverage and accuracy when answering only at that confidence;
    `target_accuracy`: the lowest threshold reaching it on `data` (choose it on validation data,
    not on the test split); `curve`: accuracy vs coverage (and precision/recall for two classes);
    `progress(what, done, total)`: after each batch of texts; `text_fields`, `label_field`: the columns
    of `data` when they differ from the training data's; `say(step)`: loading the model (after the data
    is read and checked, so a data mistake is found before TensorFlow loads); `calibration`: also the
    measures of the probabilities without the run's temperature (before / after).
    """
    from textclf.errors import ConfigError
    from textclf.prediction import load_predictor
    from textclf.runs import Run, resolve_run

    if (text_fields or label_field) and data is None:
        raise ConfigError("--text-field and --label-field name the columns of --data; give --data too")
    if threshold is not None and target_accuracy is not None:
        raise ConfigError("--threshold and --target-accuracy both set the confidence threshold; give one "
                          "(--target-accuracy finds the threshold, --threshold uses yours)")

    from textclf.errors import RunError
    from textclf.runs import LABELS_FILE

    run = Run(resolve_run(run_dir))
    classes = (run.metrics or {}).get("labels")  # the classes the run was evaluated on when trained
    if isinstance(classes, list) and [str(c) for c in classes] != run.labels:  # before the data: not its fault
        shown = lambda names: ", ".join(map(str, names[:6])) + (", …" if len(names) > 6 else "")  # noqa: E731
        raise RunError(f"{run.path / LABELS_FILE} names {len(run.labels)} classes ({shown(run.labels)}), not the "
                       f"{len(classes)} the run was trained and evaluated on ({shown(classes)}, metrics.json); the "
                       "run is damaged: train it again")
    examples = _examples(run, data, text_fields, label_field)
    recorded = (run.metrics or {}).get("eval_fingerprint")
    if data is None and recorded and recorded != examples.fingerprint():
        raise RunError(f"run {run.path.name}'s eval data is not what it was evaluated on when trained (its file "
                       "changed, or an earlier textclf held it out of the training data otherwise): give the data "
                       "to evaluate on with --data")
    say(f"loading the model of {run.path.name}")
    predictor = load_predictor(run.path)
    what = f"predicting {len(examples.texts):,} texts"
    probs = predictor.probabilities(examples.texts, progress and (lambda done, total: progress(what, done, total)))
    measured = calibration_measures(run, probs, examples, calibration)
    if predictor.multilabel:
        return dataclasses.replace(_evaluate_multilabel(predictor, examples, probs, threshold, target_accuracy, curve),
                                   calibration=measured)
    report = report_from_predictions(examples.labels, task.decide(probs), predictor.labels, examples.source)
    extra = {"calibration": measured}
    if target_accuracy is not None:
        chosen = threshold_for(examples.labels, probs, target_accuracy)
        extra["abstention"] = chosen or {"target_accuracy": float(target_accuracy), "threshold": None,
                                         "reachable": False}
    elif threshold is not None:
        extra["abstention"] = selective(examples.labels, probs, threshold)
    if curve:
        extra["curve"] = coverage_curve(examples.labels, probs)
    return dataclasses.replace(report, **extra)


def calibration_measures(run, probs: np.ndarray, examples, before: bool) -> dict:
    """The calibration measures of `probs`; `before`: also those of the run's model without its temperature."""
    from textclf import calibration
    from textclf.prediction import uncalibrated

    measured = calibration.measures(probs, examples.labels)
    if not before:
        return measured
    temperature = ((run.metrics or {}).get("calibration") or {}).get("temperature")
    own = uncalibrated(run.path).probabilities(examples.texts) if temperature is not None else probs
    return {**measured, "temperature": temperature, "before": calibration.measures(own, examples.labels),
            "ece_floor": calibration.ece_floor(probs, examples.labels.ndim == 2)}


def eval_examples(run_dir: str | Path):
    """The run's own eval data, as `evaluate` reads it."""
    from textclf.runs import Run

    return _examples(Run.open(Path(run_dir)), None, (), None)


def _examples(run, data: str | None, text_fields, label_field):
    """The examples to evaluate `run` on: `data` (read with the run's data options, or these columns), else
    the run's own eval data."""
    from textclf.config import DataConfig, from_dict
    from textclf.data.sources import load_eval

    cfg = run.config
    data_cfg = from_dict(DataConfig, cfg.get("data", {}), "data")
    if text_fields or label_field:
        data_cfg = dataclasses.replace(data_cfg, **({"text_fields": tuple(text_fields)} if text_fields else {}),
                                       **({"label_field": label_field} if label_field else {}))
    seed = int(cfg.get("training", {}).get("seed", 0))
    return load_eval(data_cfg, seed, run.labels, data, multilabel=run.thresholds is not None)


def _evaluate_multilabel(predictor, examples, probs, threshold, target_accuracy, curve) -> Report:
    """A multi-label run's report: its per-label thresholds, or one `threshold` for every label."""
    from textclf.errors import ConfigError

    if target_accuracy is not None:
        raise ConfigError("--target-accuracy chooses one confidence threshold for single-label runs; a "
                          "multi-label run has a threshold per label, tuned when it trained (--threshold P "
                          "sets one for all labels)")
    thresholds = np.full(len(predictor.labels), threshold) if threshold is not None else predictor.thresholds
    report = multilabel_report(examples.labels, task.decide(probs, thresholds), predictor.labels,
                               examples.source, thresholds)
    return dataclasses.replace(report, curve=pr_curve(examples.labels, probs)) if curve else report
