"""Loading a run's saved Keras model: its layers registered first, its weights read at disk speed."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from textclf.errors import ModelError, RunError
from textclf.runs import Run


def load_model(run_dir: Path):
    """Load a run's string-in, probabilities-out Keras model (custom layers auto-registered)."""
    from textclf.models.catalog import MODELS

    run = Run(run_dir)
    info = run.info
    if not run.model_path.exists():  # trained without TensorFlow: the Keras model is built from its arrays
        return _native_model(run)
    try:
        MODELS.get(str(info.get("model", "transformer"))).load_builder()  # registers its layers
    except ModelError:  # e.g. an imported model's store is not set here: the run may not need it
        for builtin in MODELS.builtin_names():
            MODELS.get(builtin).load_builder()
    try:
        model = _load_keras_file(run.model_path)
    except Exception as err:
        missing = _unknown_layers(run.model_path)
        if missing:
            raise RunError(f"cannot load the model in {run_dir}: it uses layer {', '.join(missing)}, which this "
                           f"textclf version does not have (saved by another version); retrain the run") from None
        gone = _gone_import(run)
        if gone:  # its files (e.g. the encoder's vocabulary) went with the imported model
            raise RunError(f"cannot load the model in {run_dir}: it was built on the imported model {gone!r}, which "
                           "is not in this model store (TEXTCLF_HOME); import it again (`textclf models import-hf "
                           f"DIR --name {gone}`) or point TEXTCLF_HOME at the store that holds it") from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunError(f"cannot load the model in {run_dir}: {first[:200]}") from None
    check_outputs(model.output_shape[-1], run)
    return model


def _gone_import(run: Run) -> str | None:
    """The imported model a run's encoder came from (its model's name, or model_params.encoder) when this model
    store does not hold it; None for a run without an encoder or whose models are all here."""
    from textclf.models import store
    from textclf.models.catalog import MODELS

    config = run.config  # (a RunError, one line, when unreadable)
    params = config.get("model_params") if isinstance(config.get("model_params"), dict) else {}
    if "encoder" not in params:
        return None
    for name in (run.info.get("model"), params.get("encoder")):
        if isinstance(name, str) and store.NAME_RE.match(name) and name not in MODELS.builtin_names() \
                and store.find(name) is None:
            return name
    return None


def _native_model(run: Run):
    """The Keras model of a run whose model is its arrays (a family's solver fitted it without TensorFlow),
    built by the family's `from_arrays` hook: checked to give the arrays' probabilities on the run's check
    texts before anything uses it."""
    import numpy as np

    from textclf.config import resolve_config
    from textclf.twins import CHECK_TEXTS, TOLERANCE, Twin, read_arrays
    from textclf.errors import TextclfError
    from textclf.models.catalog import MODELS
    from textclf.registry import load_hook
    from textclf.twins import FORMAT, NATIVE

    arrays = read_arrays(run.path)
    damaged = RunError(f"cannot load the model in {run.path}: its model file is missing or damaged; retrain the run")
    try:
        family = MODELS.get(str(run.info.get("model"))).family_spec()
    except TextclfError:
        raise damaged from None
    if arrays is None or str(arrays.get("format")) != FORMAT or str(arrays.get("model")) != NATIVE \
            or not family.from_arrays or str(arrays.get("kind")) not in family.runners:
        raise damaged
    try:
        model = load_hook(family.from_arrays)(arrays, resolve_config(run.config).model_params)
    except (KeyError, ValueError, TypeError, IndexError):
        raise damaged from None
    expected = Twin(arrays).probabilities(CHECK_TEXTS)
    got = np.asarray(model(np.array(CHECK_TEXTS, dtype=object), training=False))
    if got.shape != expected.shape or not np.all(np.abs(got - expected) <= TOLERANCE):
        raise RunError(f"cannot load the model in {run.path}: its Keras form disagrees with its arrays "
                       f"(by {float(np.max(np.abs(got - expected))) if got.shape == expected.shape else 'shape'}); "
                       "please report this")
    check_outputs(model.output_shape[-1], run)
    return model


def without_temperature(model):
    """The string-in model of a calibrated run without its TemperatureScaling layer (the model's own
    probabilities); `model` itself when it has none."""
    from textclf._tf import keras, tf
    from textclf.models.base import TemperatureScaling

    text_to_ids, classifier = model.layers[1], model.layers[-1]  # texts -> classifier(text_to_ids(texts))
    scaling = [layer for layer in getattr(classifier, "layers", []) if isinstance(layer, TemperatureScaling)]
    if not scaling:
        return model
    inner = keras.Model(classifier.inputs, scaling[0].input)
    texts = keras.Input(shape=(), dtype=tf.string, name="text")
    return keras.Model(texts, inner(text_to_ids(texts)), name="textclf_uncalibrated")


def check_outputs(outputs: int, run: Run) -> None:
    """A model (or its twin) must give one output per class of labels.json: predicting from the
    wrong class list would look like an answer."""
    labels = run.labels
    if outputs != len(labels):
        raise RunError(f"{run.path}: the model has {outputs} outputs but labels.json names {len(labels)} classes; "
                       "the run is damaged (retrain it)")


_KERAS_FILE_PARTS = {"metadata.json", "config.json", "model.weights.h5"}


def _load_keras_file(model_file: Path):
    """`keras.models.load_model(model_file, compile=False)`, reading the weights at disk speed.

    Keras reads the weights through h5py on the zip member, and Python 3.11's zipfile
    re-reads a member from its start on every backward seek: 3 s for MiniLM's 91 MB on
    every `predict`. The member is copied out once, sequentially, and loaded with
    `load_weights` (the same state walk as `load_model`). Files with assets take the
    plain path.
    """
    import shutil
    import zipfile

    from textclf._tf import keras
    from textclf.models.base import WEIGHTS_FOLLOW

    with zipfile.ZipFile(model_file) as archive:
        if set(archive.namelist()) != _KERAS_FILE_PARTS:
            return keras.models.load_model(model_file, compile=False)
        config = json.loads(archive.read("config.json"))
        config["compile_config"] = None
        token = WEIGHTS_FOLLOW.set(True)  # every weight is read from the file just below
        try:
            model = keras.saving.deserialize_keras_object(config)
        finally:
            WEIGHTS_FOLLOW.reset(token)
        with tempfile.TemporaryDirectory(prefix="textclf-load-") as tmp:
            weights = Path(tmp) / "model.weights.h5"
            with archive.open("model.weights.h5") as src, open(weights, "wb") as dst:
                shutil.copyfileobj(src, dst, 16 << 20)
            model.load_weights(weights)
    return model


def _unknown_layers(model_file: Path) -> list[str]:
    """textclf layers named in a saved model's config that are not registered in this version."""
    import re
    import zipfile

    from textclf._tf import keras

    try:
        with zipfile.ZipFile(model_file) as archive:
            config = archive.read("config.json").decode("utf-8", errors="replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return []
    names = sorted(set(re.findall(r'"registered_name": "(textclf>[^"]+)"', config)))
    return [n for n in names if keras.saving.get_registered_object(n) is None]
