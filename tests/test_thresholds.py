"""Confidence thresholds: predict abstains, evaluate reports coverage, the threshold for a target accuracy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import cli, train_tiny

PROBS = np.array([[0.95, 0.05], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9], [0.55, 0.45]])
LABELS = np.array([0, 1, 1, 1, 0])  # the 0.6 answer is wrong


def test_selective_accuracy_and_coverage():
    from textclf.evaluation import selective

    s = selective(LABELS, PROBS, 0.7)
    assert (s["answered"], s["abstained"], s["coverage"]) == (3, 2, 0.6)
    assert s["accuracy_answered"] == 1.0 and s["accuracy_all"] == 0.8
    assert selective(LABELS, PROBS, 0.99)["accuracy_answered"] is None


def test_the_threshold_for_a_target_accuracy_keeps_the_most_answers():
    from textclf.evaluation import threshold_for

    chosen = threshold_for(LABELS, PROBS, 1.0)
    assert chosen["threshold"] == pytest.approx(0.7) and chosen["coverage"] == 0.6
    assert threshold_for(LABELS, PROBS, 0.8)["coverage"] == 1.0
    assert threshold_for(np.array([1]), np.array([[0.9, 0.1]]), 1.0) is None  # never right


def test_the_threshold_keeps_its_promise_when_confidences_tie_at_the_cut():
    """A threshold answers every text at least as confident: ties at the cut are all answered, so the cut
    may only fall after the last of them, and the answers' accuracy is what was asked."""
    from textclf.evaluation import threshold_for

    labels = np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 0])
    probs = np.array([[0.9, 0.1]] * 3 + [[0.7, 0.3]] * 6 + [[0.6, 0.4]])  # 6 tied at 0.7, 3 of them wrong
    chosen = threshold_for(labels, probs, 0.9)
    assert chosen["threshold"] == 0.9 and chosen["answered"] == 3 and chosen["accuracy_answered"] == 1.0
    for target in np.linspace(0.5, 1.0, 11):
        found = threshold_for(labels, probs, float(target))
        assert found is None or found["accuracy_answered"] >= target


def test_threshold_and_target_accuracy_together_are_refused(tmp_path):
    from textclf.errors import ConfigError
    from textclf.evaluation import evaluate

    with pytest.raises(ConfigError, match="give one"):
        evaluate(tmp_path, threshold=0.5, target_accuracy=0.9)


def test_coverage_curve_ends_at_full_coverage_and_has_pr_for_two_classes():
    from textclf.evaluation import coverage_curve

    curve = coverage_curve(LABELS, PROBS)
    assert curve["coverage"][-1] == 1.0 and curve["accuracy"][-1] == pytest.approx(0.8)
    assert curve["accuracy"][0] == 1.0 and "pr" in curve and curve["pr"]["recall"][-1] == 1.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("thresholds")
    train_tiny(root, 20, epochs=1)
    return Path(os.path.realpath(root / "runs" / "latest"))


def test_predict_abstains_below_the_threshold(trained):
    rows = [json.loads(line) for line in cli("predict", "stocks bank", "goal match", "--run", trained, "--json",
                                             "--threshold", 0.99).stdout.splitlines()]
    assert all(r["label"] is None and r["abstained"] and r["top_k"] for r in rows)  # a 1-epoch model is unsure
    rows = [json.loads(line) for line in cli("predict", "stocks bank", "--run", trained, "--json",
                                             "--threshold", 0.0).stdout.splitlines()]
    assert rows[0]["label"] is not None and "abstained" not in rows[0]


def test_evaluate_reports_coverage_and_writes_the_curve(trained, tmp_path):
    curve = tmp_path / "curve.png"
    result = cli("evaluate", trained, "--threshold", 0.3, "--curve", curve, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    a = data["abstention"]
    assert a["threshold"] == 0.3 and 0 <= a["coverage"] <= 1 and a["answered"] + a["abstained"] == data["examples"]
    assert curve.read_bytes().startswith(b"\x89PNG") and data["curve"]["coverage"][-1] == 1.0
    table = cli("evaluate", trained, "--target-accuracy", 0.5)
    assert "the lowest reaching accuracy 50.00%" in table.stdout or "no threshold reaches" in table.stdout
