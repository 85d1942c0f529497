"""--class-weight: the weights, and minority recall on a 95/5 split (the L-BFGS and the Keras paths)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from conftest import assert_one_line_error, cli


def _skewed(path, n_major: int, n_minor: int, seed: int) -> str:
    """Texts of 8 common words; a minority text carries one of 8 signal words 60% of the time (majority: 5%)."""
    rng = random.Random(seed)
    common, signal = [f"w{i}" for i in range(60)], [f"s{i}" for i in range(8)]

    def text(minor: bool) -> str:
        words = [rng.choice(common) for _ in range(8)]
        if rng.random() < (0.6 if minor else 0.05):
            words[rng.randrange(8)] = rng.choice(signal)
        return " ".join(words)

    rows = [("major", text(False)) for _ in range(n_major)] + [("minor", text(True)) for _ in range(n_minor)]
    rng.shuffle(rows)
    path.write_text("label,text\n" + "".join(f"{a},{b}\n" for a, b in rows))
    return f"csv:{path}"


def test_balanced_weights_follow_scikit_learns_rule(tmp_path):
    from textclf.errors import DataError
    from textclf.training import class_weights

    labels = np.array([0] * 95 + [1] * 5)
    assert class_weights("none", labels, ("a", "b")) is None
    np.testing.assert_allclose(class_weights("balanced", labels, ("a", "b")), [100 / (2 * 95), 100 / (2 * 5)])
    (tmp_path / "w.json").write_text('{"b": 4}')
    np.testing.assert_allclose(class_weights(str(tmp_path / "w.json"), labels, ("a", "b")), [1, 4])
    (tmp_path / "bad.json").write_text('{"c": 4}')
    with pytest.raises(DataError, match="unknown label 'c'"):
        class_weights(str(tmp_path / "bad.json"), labels, ("a", "b"))
    with pytest.raises(DataError, match="not found"):
        class_weights(str(tmp_path / "none.json"), labels, ("a", "b"))


@pytest.mark.parametrize("model", ["ngram-linear", "ngram-mlp"])
def test_balanced_weights_raise_minority_recall_on_a_95_5_split(tmp_path, model):
    train = _skewed(tmp_path / "train.csv", 950, 50, seed=0)
    evaluation = _skewed(tmp_path / "eval.csv", 200, 200, seed=1)
    recall = {}
    for weight in ("none", "balanced"):
        result = cli("train", "--data", train, "--eval-data", evaluation, "--model", model, "--class-weight", weight,
                     "--runs-root", tmp_path / weight)
        assert result.exit_code == 0, result.output
        metrics = json.loads((tmp_path / weight / "latest" / "metrics.json").read_text())
        recall[weight] = {c["label"]: c["recall"] for c in metrics["per_class"]}["minor"]
        assert "per class (skewed classes)" in result.stdout  # the summary leads with them
    assert recall["balanced"] > recall["none"] + 0.1, recall
    weights = metrics["class_weight"]  # balanced on the examples the model was fitted on
    assert weights["minor"] / weights["major"] == pytest.approx(950 / 50, rel=0.15)


def test_a_missing_weight_file_is_one_line(tmp_path):
    train = _skewed(tmp_path / "train.csv", 50, 10, seed=0)
    result = cli("train", "--data", train, "--model", "ngram-linear", "--class-weight", tmp_path / "none.json",
                 "--runs-root", tmp_path / "runs")
    assert_one_line_error(result, "class weight file not found", code=1)
