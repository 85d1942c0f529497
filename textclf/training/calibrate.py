"""The calibration step of a run: a temperature fitted on the validation part, and how calibrated the eval
probabilities are before and after it (textclf.calibration)."""

from __future__ import annotations

from typing import Any

import numpy as np

from textclf.training.hooks import _Hooks

MIN_VALIDATION = 100  # fewer validation texts than this fit no temperature: it would follow a handful of texts


def calibrate(setting: str, val_probs, validation, probs: np.ndarray, evaluation, hooks: _Hooks,
              apply=None, scores: bool = False, train=None) -> tuple[Any, np.ndarray, Any, dict]:
    """(temperature or None, eval probabilities, validation probabilities, metrics) after the run's
    `setting` (training.calibration): temperature fits T on `val_probs` (of phrase data, its sentences:
    fitted_rows; `train`: the training data `validation` was held out of); `apply(probs, T)` gives the
    probabilities at T as the saved model computes them (default: textclf.calibration.scale); `scores`:
    the probabilities are a softmax of scores (textclf.calibration.fit_temperature)."""
    from textclf import calibration

    multilabel = evaluation.labels.ndim == 2
    before = calibration.measures(probs, evaluation.labels)
    temperature, why = None, None
    if setting != "temperature":
        why = "training.calibration none"
    elif val_probs is None:
        why = "no validation part (set training.validation_fraction, e.g. 0.1, to calibrate)"
    elif len(validation) < MIN_VALIDATION:
        why = f"the validation part has {len(validation)} texts (a temperature needs >= {MIN_VALIDATION})"
    if why is not None:
        if setting == "temperature":
            hooks.on_note(f"probabilities not calibrated: {why}")
        return None, probs, val_probs, {**before, "calibration": {"method": "none", "why": why}}
    rows, fitted_on = fitted_rows(validation, train)
    temperature = calibration.fit_temperature(val_probs[rows], validation.labels[rows], scores=scores)
    if temperature is None:
        why = (f"{calibration.errors(val_probs[rows], validation.labels[rows])} of the {fitted_on} are "
               f"answered wrong (a temperature needs >= {calibration.MIN_ERRORS}): the model's own probabilities")
        hooks.on_note(f"probabilities not calibrated: {why}")
        return None, probs, val_probs, {**before, "calibration": {"method": "none", "why": why}}
    apply = apply or (lambda p, t: calibration.scale(p, t, multilabel))
    probs, val_probs = apply(probs, temperature), apply(val_probs, temperature)
    after = calibration.measures(probs, evaluation.labels)
    shown = f"{temperature:.3g}" if not multilabel else f"{np.median(temperature):.3g} (median of the labels')"
    hooks.on_note(f"temperature {shown} fitted on the {fitted_on}: eval ECE "
                  f"{before['ece']:.3f} -> {after['ece']:.3f}")
    return temperature, probs, val_probs, {**after, "calibration": {
        "method": "temperature", "temperature": temperature, "validation_examples": len(validation),
        "fitted_examples": len(rows), "before": before}}


def fitted_rows(validation, train=None) -> tuple[np.ndarray, str]:
    """The validation rows a temperature is fitted on, and what they are. Of phrase data (textclf.data.phrases:
    SST-2's training file; as the split found it in `train`), its sentences — the validation texts that are
    their group's sentence in `train`, copies included: the phrases are labelled pieces of them, far surer to
    the model than whole sentences, and the texts a model of such data classifies (SST-2's dev and test sets)
    are sentences; fitted on the mix, SST-2's temperature sharpened the default's dev probabilities (ECE 0.035
    -> 0.043). Otherwise (or with fewer than MIN_VALIDATION sentences) every validation text."""
    from textclf.data.phrases import phrase_groups

    everything = np.arange(len(validation)), f"{len(validation)} validation texts"
    groups = phrase_groups(train.texts) if train is not None else None  # the split's own (cached) detection
    if groups is None:
        return everything
    sentences = set(train.texts[groups == np.arange(len(groups))].tolist())
    rows = np.flatnonzero([text in sentences for text in validation.texts.tolist()])
    if len(rows) < MIN_VALIDATION:
        return everything
    return rows, f"{len(rows)} sentences of the {len(validation)} validation texts (phrase data)"


def in_tensorflow(multilabel: bool):
    """`apply` for a Keras run: the saved model's own TemperatureScaling layer, so the recorded probabilities
    are the ones `evaluate` computes from the saved model."""

    def apply(probs, temperature):
        from textclf.models.base import TemperatureScaling

        return np.asarray(TemperatureScaling(temperature, multilabel)(probs.astype(np.float32)))

    return apply
