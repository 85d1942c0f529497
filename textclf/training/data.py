"""A run's examples: the training data, its fit and validation parts, the eval data, class weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from textclf import runs
from textclf.config import RunConfig
from textclf.errors import ConfigError, TextclfError
from textclf.training.hooks import _Hooks


@dataclass
class _Data:
    """The examples of a run: all training data, its fit and validation parts, the eval data."""

    train: Any
    fit: Any
    validation: Any
    evaluation: Any
    class_weight: np.ndarray | None = None  # per class, from training.class_weight
    # A distilled student (textclf.distillation): `fit` is the transfer set, its first `labelled` texts the
    # training texts; `targets` its packed targets (the teacher's probabilities, gold labels), set once the
    # run directory (which caches the teacher's answers) exists.
    labelled: int | None = None
    targets: np.ndarray | None = None
    transfer: dict | None = None  # the transfer set's make-up (metrics.json)
    distill: Any = None  # the student's DistillConfig

    def fit_targets(self) -> np.ndarray:
        """What the fit part trains towards: its labels, or a student's packed targets."""
        return self.fit.labels if self.targets is None else self.targets


def _load_data(config: RunConfig, hooks: _Hooks, split: bool = True, preload: bool = True) -> _Data:
    from textclf.data.sources import VALIDATION_PART, holdout_split, load_train_eval
    from textclf.reports import preload_plotting

    t = config.training
    if preload:
        preload_plotting()
    hooks.on_status("loading data")
    train, evaluation = load_train_eval(config.data, t.seed)
    if train.multilabel and t.class_weight != "none":
        raise ConfigError(f"training.class_weight {t.class_weight}: class weights are for single-label data; "
                          "multi-label runs tune a threshold per label on the validation part instead")
    # Early stopping must never look at the eval data: it watches a part of the training data. Multi-label
    # runs always have one: their per-label thresholds are tuned on it.
    if train.multilabel:
        per_text = train.labels.sum(axis=1)
        hooks.on_note(f"multi-label data: {per_text.mean():.2f} labels per text on average (0-{per_text.max()}), "
                      f"{len(train.label_names)} labels; a sigmoid per label")
    fraction = _validation_fraction(t, train)
    if fraction and not t.validation_fraction:
        hooks.on_note(f"multi-label data: {fraction:g} of the training data is held out to tune a threshold "
                      "per label (training.validation_fraction)")
    fit, validation = (holdout_split(train, fraction, t.seed, VALIDATION_PART) if fraction and split
                       else (train, None))
    data = _Data(train, fit, validation, evaluation, class_weights(t.class_weight, fit.labels, train.label_names))
    if config.distill.teacher:
        from textclf.distillation import extend_fit

        data = extend_fit(config, data, hooks)
    return data


MULTILABEL_VALIDATION = 0.1  # the validation part of a multi-label run without training.validation_fraction


def _validation_fraction(t, train) -> float:
    """The part of the training data held out for validation: training.validation_fraction, or for
    multi-label data without one MULTILABEL_VALIDATION (its thresholds are tuned there)."""
    return t.validation_fraction or (MULTILABEL_VALIDATION if train.multilabel else 0.0)


def class_weights(setting: str, labels: np.ndarray, names: Sequence[str]) -> np.ndarray | None:
    """training.class_weight as one weight per class: none -> None; balanced -> n / (classes × count_c)
    (scikit-learn's rule); a JSON file {"label": weight} -> those weights (1 for labels it leaves out)."""
    if setting == "none":
        return None
    k = len(names)
    if setting == "balanced":
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        return np.where(counts > 0, len(labels) / (k * np.maximum(counts, 1)), 1.0)

    from textclf.errors import DataError
    from textclf.textfiles import loads, read_text

    try:
        given = loads(read_text(setting, what="class weight file"))
    except DataError as err:
        raise DataError(f"{err} (training.class_weight is none, balanced or a JSON file of label weights)") from None
    except ValueError as err:
        raise DataError(f"class weight file {setting}: not valid JSON ({err})") from None
    if not isinstance(given, dict):
        raise DataError(f"class weight file {setting}: expected a JSON object of label: weight")
    unknown = sorted(set(map(str, given)) - set(names))
    if unknown:
        raise DataError(f"class weight file {setting}: unknown label {unknown[0]!r} (classes: {', '.join(names)})")
    weights = np.ones(k)
    for i, name in enumerate(names):
        value = given.get(name, 1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_CLASS_WEIGHT:
            raise DataError(f"class weight file {setting}: weight of {name!r} must be a number in (0, "
                            f"{MAX_CLASS_WEIGHT:g}], got {value!r}")
        weights[i] = float(value)
    return weights


# A larger weight (or Infinity, which JSON files may hold) makes the loss overflow: a model that answers
# one class for every text, written as complete.
MAX_CLASS_WEIGHT = 1e6


def _check_resumed_labels(resume: bool, run_dir, data) -> None:
    if resume and runs.Run(run_dir).labels != list(data.train.label_names):
        raise TextclfError(f"cannot resume {run_dir}: its labels differ from the data's labels now")
