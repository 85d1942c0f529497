"""The model-family harness, in the style of keras-hub's `run_backbone_test`: one call checks that a
family does everything a run needs.

`run_family_test(family, preset, tiny_params, tmp_path)`:
1. build: the builder's BuiltModel has a training mode and the string-in model gives probabilities;
2. one step: one optimizer step of its training mode changes the model's answers;
3. save and reload: model.keras (the family's layers registered by importing its builder) gives the
   same probabilities;
4. twin: when the family declares one, its arrays answer as the Keras model does (textclf.twins' check);
5. through the CLI as a user runs it: train, evaluate (the number the run recorded), predict (answered
   by the twin when the family has one, with the Keras model's probabilities), export to a SavedModel
   that serves raw strings (and to TFLite when the family declares it; refused when not).
"""

from __future__ import annotations

import json

import numpy as np

from conftest import ag_split, cli


def run_family_test(family, preset: str, tiny_params: dict, tmp_path, epochs: int = 2) -> None:
    from textclf.models.catalog import MODELS

    entry = MODELS.get(preset)
    assert entry.family == family.name and entry.params_cls is family.params
    train, evaluation = ag_split(tmp_path, 30, 8)
    texts, labels = _read(train)
    model = _unit_checks(entry, tiny_params, texts, labels, tmp_path)
    if family.twin:
        _twin_agrees(model, texts, family)
    _cli_checks(family, preset, tiny_params, train, evaluation, tmp_path / "runs", epochs)


def _read(path) -> tuple[list[str], np.ndarray]:
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return [f"{r[1]} {r[2]}" for r in rows], np.array([int(r[0]) - 1 for r in rows])


def _probabilities(model, texts) -> np.ndarray:
    from textclf._tf import tf

    return np.asarray(model(tf.constant(texts), training=False), np.float32)


def _unit_checks(entry, tiny_params: dict, texts, labels, tmp_path):
    """Build, one step, save and reload: the string-in model after the step."""
    from textclf._tf import keras
    from textclf.models.base import MODES

    params = entry.params_cls(**{**entry.param_defaults, **tiny_params})
    built = entry.load_builder()(params, num_classes=4, train_texts=np.array(texts, dtype=object))
    assert built.mode in MODES
    model = built.inference_model()
    before = _probabilities(model, texts)
    assert before.shape == (len(texts), 4)
    np.testing.assert_allclose(before.sum(axis=1), 1.0, atol=1e-4)
    _one_step(built, texts, labels)
    after = _probabilities(model, texts)
    assert not np.allclose(before, after, atol=1e-6), "one training step left the model's answers unchanged"
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path, compile=False, safe_mode=False)
    np.testing.assert_allclose(_probabilities(reloaded, texts), after, atol=1e-6)
    return model


def _one_step(built, texts, labels) -> None:
    """One step of the built model's training mode (models/base.py): every weight, or the head on its features."""
    from textclf import task
    from textclf._tf import keras, tf
    from textclf.data.pipeline import sparse_rows
    from textclf.models.base import END_TO_END, FEATURE_ROWS

    if built.mode == END_TO_END:
        trained, x = built.model, built.encode(tf.constant(texts)).to_tensor(0)
    elif built.mode == FEATURE_ROWS:
        rows = sparse_rows(built.feature_rows(texts))
        trained, x = built.head, rows.rows(tf.range(len(texts)))
    else:
        trained, x = built.head, built.features(built.encode(tf.constant(texts)).to_tensor(0))
    trained.compile(optimizer=keras.optimizers.Adam(0.1), loss=built.loss or task.loss(False))
    trained.train_on_batch(x, labels)


def _twin_agrees(model, texts, family) -> None:
    from textclf import twins

    arrays = twins.twin_arrays(model, texts, family.name)
    assert arrays is not None, f"family {family.name}: no twin, or one that disagrees with the Keras model"
    assert str(arrays["kind"]) in family.runners
    got = twins.Twin(arrays).probabilities(texts + twins.CHECK_TEXTS)
    np.testing.assert_allclose(got, _probabilities(model, texts + twins.CHECK_TEXTS), atol=twins.TOLERANCE)


def _cli_checks(family, preset, tiny_params, train, evaluation, root, epochs: int) -> None:
    sets = [arg for name, value in tiny_params.items() for arg in ("--set", f"model_params.{name}={value}")]
    done = cli("train", "--model", preset, "--data", f"csv:{train}", "--eval-data", f"csv:{evaluation}",
               "--epochs", epochs, "--runs-root", root, *sets)
    assert done.exit_code == 0, done.output
    run = (root / "latest").resolve()
    assert json.loads((run / "run.json").read_text())["status"] == "complete"
    recorded = json.loads((run / "metrics.json").read_text())
    evaluated = cli("evaluate", "--json", "--runs-root", root)
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["accuracy"] == recorded["accuracy"]
    _predict_agrees(family, run, root)
    _exports(family, run, root)


def _predict_agrees(family, run, root) -> None:
    from textclf.models.saving import load_model
    from textclf.prediction import Predictor

    texts = ["Stocks rally as oil falls", "Striker scores twice as champions win the cup", "caf\u00e9 ?!"]
    predicted = cli("predict", *texts, "--runs-root", root, "--json", "--top-k", "4")
    assert predicted.exit_code == 0, predicted.output
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    labels = json.loads((run / "labels.json").read_text())
    got = np.array([[next(t["probability"] for t in r["top_k"] if t["label"] == lab) for lab in labels] for r in rows])
    assert (Predictor(run, use_twin=True).twin is not None) == bool(family.twin)
    # the Keras model (a run trained without TensorFlow: built from its arrays, as export does)
    np.testing.assert_allclose(got, _probabilities(load_model(run), texts), atol=1e-4)


def _exports(family, run, root) -> None:
    from textclf._tf import tf

    out = root.parent / "export"
    done = cli("export", "--runs-root", root, "--format", "saved_model", "--out", out)
    assert done.exit_code == 0, done.output
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    answer = serve(text=tf.constant(["Stocks rally as oil falls"]))
    assert answer["probabilities"].shape == (1, 4) and answer["label"].dtype == tf.string
    lite = cli("export", "--runs-root", root, "--format", "tflite", "--out", root.parent / "lite")
    if family.tflite:
        assert lite.exit_code == 0, lite.output
        assert (root.parent / "lite" / "model.tflite").stat().st_size > 0
    else:
        assert lite.exit_code != 0 and "TFLite" in lite.output and not (root.parent / "lite").exists()
