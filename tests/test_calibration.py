"""Calibration (textclf.calibration): the measures against hand computations, temperature scaling fitted on
the validation part and carried by every way a run answers (Keras, twin, SavedModel, serve), per label for
multi-label runs, and `evaluate --calibration`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ag_split, cli

from textclf import calibration


def test_the_measures_against_hand_computations():
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.55, 0.45]])
    labels = np.array([0, 1, 1, 1])
    # top-label confidences 0.9 (right), 0.6 (wrong), 0.8 (right), 0.55 (wrong); 15 bins: each its own bin
    assert calibration.ece(probs, labels) == pytest.approx((0.1 + 0.6 + 0.2 + 0.55) / 4)
    # 2 equal-mass bins: {0.55, 0.6} (0 right) and {0.8, 0.9} (2 right)
    assert calibration.ece(probs, labels, bins=2, adaptive=True) == pytest.approx((0.575 + 0.15) / 2)
    brier = np.mean([(0.1 ** 2) * 2, 0.6 ** 2 * 2, 0.2 ** 2 * 2, 0.55 ** 2 * 2])
    assert calibration.brier(probs, labels) == pytest.approx(brier)
    assert calibration.nll(probs, labels) == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.45])))
    multi = np.array([[0.9, 0.2], [0.3, 0.7]])
    hot = np.array([[1, 0], [0, 0]])
    assert calibration.ece(multi, hot) == pytest.approx((0.1 + 0.2 + 0.3 + 0.7) / 4)
    assert calibration.brier(multi, hot) == pytest.approx(np.mean([0.01, 0.04, 0.09, 0.49]))


def test_a_validation_part_without_errors_fits_no_temperature():
    """An all-right validation part's NLL falls without end as T -> 0: no fit, the model's own probabilities
    (per label: T 1); scores (ngram-linear's) still get a bounded scale."""
    probs = np.array([[0.5, 0.3, 0.2]] * 150)
    labels = np.zeros(150, int)
    assert calibration.fit_temperature(probs, labels) is None
    assert calibration.fit_temperature(probs, labels, scores=True) < 2 * calibration.SCORE_RANGE[0]  # its bound
    multi = np.array([[0.6, 0.2]] * 150)
    assert calibration.fit_temperature(multi, np.tile([1, 0], (150, 1))) == [1.0, 1.0]


def test_a_temperature_is_recovered_and_never_changes_the_answer():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (6000, 4))
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in true])
    overconfident = np.exp(3 * logits) / np.exp(3 * logits).sum(axis=1, keepdims=True)
    t = calibration.fit_temperature(overconfident, labels)
    assert t == pytest.approx(3.0, rel=0.08)
    fixed = calibration.scale(overconfident, t, False)
    assert (fixed.argmax(axis=1) == overconfident.argmax(axis=1)).all()
    assert calibration.ece(fixed, labels) < calibration.ece(overconfident, labels) / 3
    np.testing.assert_allclose(calibration.scale(fixed, 1 / t, False), overconfident, atol=1e-5)  # undone
    per_label = calibration.fit_temperature(np.stack([true[:, 0], overconfident[:, 1]], 1),
                                            np.stack([labels == 0, labels == 1], 1).astype(int))
    assert len(per_label) == 2 and per_label[0] < per_label[1]


def noisy_split(root, n_train: int, n_eval: int, share: float = 0.15):
    """ag_split with `share` of the training labels drawn at random: the models make mistakes (a validation
    part without any fits no temperature)."""
    import random

    from conftest import ag_rows, write_csv

    rows = ag_rows(n_train, seed=1)
    rng = random.Random(0)
    for row in rng.sample(rows, int(share * len(rows))):
        row[0] = str(rng.randint(1, 4))
    return write_csv(root / "ag" / "train.csv", rows), write_csv(root / "ag" / "eval.csv", ag_rows(n_eval, seed=2))


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """An ngram-mlp run with a validation part of 120 texts and mistakes in it: calibrated."""
    root = tmp_path_factory.mktemp("calibrated")
    train, evaluation = noisy_split(root, 300, 30)
    done = cli("train", "--model", "ngram-mlp", "--data", f"csv:{train}", "--eval-data", f"csv:{evaluation}",
               "--runs-root", root / "runs", "--set", "model_params.hidden_dim=8")
    assert done.exit_code == 0, done.output
    return root, (root / "runs" / "latest").resolve()


def test_every_way_a_run_answers_gives_the_calibrated_probabilities(calibrated):
    from textclf._tf import tf
    from textclf.models.saving import load_model
    from textclf.prediction import Predictor

    root, run = calibrated
    metrics = json.loads((run / "metrics.json").read_text())
    t = metrics["calibration"]["temperature"]
    assert metrics["calibration"]["validation_examples"] == 120 and abs(t - 1) > 0.02
    assert (run / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    texts = ["Stocks rally as oil falls", "Striker scores twice as champions win the cup", "space chip virus"]
    keras = np.asarray(load_model(run)(tf.constant(texts), training=False))
    twin = Predictor(run, use_twin=True)
    assert twin.twin is not None
    np.testing.assert_allclose(twin.probabilities(texts), keras, atol=1e-5)
    exported = cli("export", run, "--format", "saved_model", "--out", root / "sm")
    assert exported.exit_code == 0, exported.output
    served = tf.saved_model.load(str(root / "sm")).signatures["serving_default"](text=tf.constant(texts))
    np.testing.assert_allclose(served["probabilities"].numpy(), keras, atol=1e-5)
    import asyncio

    from textclf.prediction import load_predictor
    from textclf.serving import Batcher

    batcher = Batcher(load_predictor(run))  # what create_app answers with, in batches

    async def ask():
        await batcher.start()
        try:
            return await batcher.predict(texts)
        finally:
            await batcher.stop()

    np.testing.assert_allclose(asyncio.run(ask()), keras, atol=1e-5)
    # and they are not the model's own: undoing the temperature gives other numbers, the same answers
    own = calibration.scale(keras, 1 / t, False)
    assert np.abs(own - keras).max() > 1e-3 and (own.argmax(1) == keras.argmax(1)).all()


def test_evaluate_shows_calibration_before_and_after_as_the_run_recorded(calibrated):
    root, run = calibrated
    done = cli("evaluate", run, "--calibration", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)["calibration"]
    recorded = json.loads((run / "metrics.json").read_text())
    for key in ("ece", "adaptive_ece", "brier", "nll"):
        assert report[key] == pytest.approx(recorded[key], abs=1e-6)
        assert report["before"][key] == pytest.approx(recorded["calibration"]["before"][key], abs=1e-4)
    assert 0 < report["ece_floor"] < 1
    table = cli("evaluate", run, "--calibration")
    assert "without temperature" in table.output and "ECE" in table.output
    assert f"would show an ECE of {report['ece_floor']:.4f}" in " ".join(table.output.split())
    # bench/calibration.py's bounds: the same floor as evaluate, from the same probabilities
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "calibration.py"
    spec = importlib.util.spec_from_file_location("bench_calibration", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    floor, fitted, best = bench.bounds(run)
    assert floor == pytest.approx(report["ece_floor"]) and 0 <= fitted < 1
    assert 0 <= best <= report["ece"] + 1e-9  # T 1 (the run's own) is among the temperatures tried


def test_the_ece_floor_is_what_calibrated_probabilities_show_and_shrinks_with_more_texts():
    rng = np.random.default_rng(1)
    for multilabel in (False, True):
        floors = []
        for n in (300, 3000):
            probs = rng.dirichlet([0.5, 0.5, 0.5], n) if not multilabel else rng.random((n, 3))
            floor = calibration.ece_floor(probs, multilabel, draws=100)
            # labels truly drawn from the probabilities: their ECE scatters around the floor
            cumulative = np.cumsum(probs, axis=1)
            seen = [calibration.ece(probs, (rng.random(probs.shape) < probs).astype(np.uint8) if multilabel else
                                    np.minimum((cumulative < rng.random((n, 1))).sum(axis=1), 2)) for _ in range(40)]
            assert np.mean(seen) == pytest.approx(floor, rel=0.15)
            floors.append(floor)
        assert floors[1] < floors[0] / 2  # ~1/sqrt(n): 10x the texts, ~3x smaller
    sure = np.eye(3)[[0, 1, 2, 0]]  # certain probabilities: any draw is right, no error at all
    assert calibration.ece_floor(sure, False) == 0.0 and calibration.ece_floor(np.zeros((0, 3)), False) == 0.0


def test_the_default_model_is_calibrated_and_small_validation_parts_are_said(tmp_path):
    train, evaluation = noisy_split(tmp_path, 300, 30)
    done = cli("train", "--data", f"csv:{train}", "--eval-data", f"csv:{evaluation}", "--runs-root", tmp_path / "r")
    assert done.exit_code == 0, done.output
    run = (tmp_path / "r" / "latest").resolve()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["calibration"]["method"] == "temperature" and "calibration" in done.output
    assert json.loads((run / "run.json").read_text())["family"] == "ngram"  # the solver's runs name it too
    from textclf.models.saving import load_model
    from textclf.prediction import Predictor
    from textclf._tf import tf

    texts = ["Stocks rally as oil falls", "goal match"]
    np.testing.assert_allclose(Predictor(run).probabilities(texts),
                               np.asarray(load_model(run)(tf.constant(texts))), atol=1e-5)  # export's Keras form
    small, _ = ag_split(tmp_path / "small", 40, 10)
    done = cli("train", "--data", f"csv:{small}", "--eval-data", f"csv:{evaluation}", "--runs-root", tmp_path / "s")
    assert done.exit_code == 0 and "probabilities not calibrated: the validation part has 16 texts" in done.output
    none = cli("train", "--data", f"csv:{train}", "--eval-data", f"csv:{evaluation}", "--runs-root", tmp_path / "n",
               "--calibration", "none")
    assert none.exit_code == 0, none.output
    assert json.loads(((tmp_path / "n" / "latest") / "metrics.json").read_text())["calibration"]["method"] == "none"


def test_multilabel_runs_get_a_temperature_per_label(tmp_path):
    from test_multilabel import pairs_jsonl

    from textclf.prediction import Predictor

    train, evaluation = pairs_jsonl(tmp_path / "train.jsonl", 300, 1), pairs_jsonl(tmp_path / "eval.jsonl", 20, 2)
    lines = [json.loads(line) for line in train.read_text().splitlines()]
    for i in range(0, len(lines), 6):  # a sixth of the texts lose a label: mistakes to calibrate on
        lines[i]["labels"] = lines[i]["labels"][1:] or ["World"]
    train.write_text("".join(json.dumps(r) + "\n" for r in lines))
    for model in ("ngram-mlp", "ngram-linear"):
        done = cli("train", "--model", model, "--data", f"jsonl:{train}", "--eval-data", f"jsonl:{evaluation}",
                   "--label-field", "labels", "--runs-root", tmp_path / model)
        assert done.exit_code == 0, done.output
        run = (tmp_path / model / "latest").resolve()
        fitted = json.loads((run / "metrics.json").read_text())["calibration"]
        assert fitted["method"] == "temperature" and len(fitted["temperature"]) == 4
        assert any(t != 1.0 for t in fitted["temperature"])  # labels with >= 10 mistakes get their own
        assert Predictor(run, use_twin=True).twin is not None


def test_a_calibrated_transformer_twin_and_tflite_export_carry_the_temperature(tmp_path):
    from conftest import TINY

    from textclf._tf import tf
    from textclf.models.saving import load_model
    from textclf.prediction import Predictor

    train, evaluation = noisy_split(tmp_path, 300, 10)
    done = cli("train", "--data", f"csv:{train}", "--eval-data", f"csv:{evaluation}", *TINY, "--epochs", "2",
               "--set", "training.validation_fraction=0.1", "--runs-root", tmp_path / "r")
    assert done.exit_code == 0, done.output
    run = (tmp_path / "r" / "latest").resolve()
    assert json.loads((run / "metrics.json").read_text())["calibration"]["method"] == "temperature"
    texts = ["Stocks rally as oil falls", "goal match striker"]
    twin = Predictor(run, use_twin=True)
    assert twin.twin is not None and twin.twin.kind == "transformer"  # its TFLite classifier ends in the layer
    np.testing.assert_allclose(twin.probabilities(texts), np.asarray(load_model(run)(tf.constant(texts))), atol=1e-5)
    exported = cli("export", run, "--format", "tflite", "--out", tmp_path / "lite")
    assert exported.exit_code == 0, exported.output
