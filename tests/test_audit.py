"""`textclf data audit`: likely label errors from out-of-fold predictions (cleanlab), conflicting duplicates,
outliers; CSV/JSON out; the data never changed."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import ag_rows, assert_one_line_error, cli, write_csv


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    """Synthetic AG rows (class-specific words) with 20 labels flipped, and one text twice with two labels."""
    root = tmp_path_factory.mktemp("audit")
    rows = ag_rows(100, seed=3)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(rows), 20, replace=False)
    for i in flipped:
        rows[i][0] = str(int(rows[i][0]) % 4 + 1)
    rows.append(list(rows[5]))
    rows[-1][0] = str(int(rows[5][0]) % 4 + 1)
    path = write_csv(root / "noisy.csv", rows)
    return path, {int(i) + 1 for i in flipped}, len(rows)


def test_the_audit_finds_planted_label_errors_and_never_edits_the_data(noisy, tmp_path):
    path, planted, n = noisy
    before = path.read_bytes()
    out = tmp_path / "flagged.csv"
    done = cli("data", "audit", f"csv:{path}", "--out", out)
    assert done.exit_code == 0, done.output
    assert path.read_bytes() == before
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    issues = {int(r["row"]) for r in rows if r["kind"] == "label_issue"}
    # the head of lowest self-confidence with the highest expected F1: most flags are planted ones
    assert len(issues & planted) >= 10 and len(issues & planted) >= 0.8 * len(issues), (issues, planted)
    scores = [float(r["score"]) for r in rows if r["kind"] == "label_issue"]
    assert scores == sorted(scores)  # most suspect first
    assert all(r["given"] != r["suggested"] and r["text"] for r in rows if r["kind"] == "label_issue")
    conflicts = [r for r in rows if r["kind"] == "conflicting_duplicate"]
    assert {int(r["row"]) for r in conflicts} == {6, n} and "/" in conflicts[0]["suggested"]
    assert "likely label errors" in done.output and "out-of-fold accuracy" in done.output


def test_how_many_are_flagged_follows_the_noise_rate_and_the_expected_f1():
    from textclf.audit import best_expected_f1, wrong_chance

    # e/(K-1)·(1-p) / ((1-e)·p + e/(K-1)·(1-p)): p 0.5, e 0.1, K 4 -> (0.1/3·0.5) / (0.45 + 0.1/3·0.5)
    assert wrong_chance(np.array([0.5]), 0.1, 4)[0] == pytest.approx((0.1 / 3 * 0.5) / (0.45 + 0.1 / 3 * 0.5))
    assert wrong_chance(np.array([0.0, 1.0]), 0.1, 2).tolist() == [1.0, 0.0]
    confidence = np.array([0.9, 0.001, 0.5, 0.01, 0.2, 0.95])
    chance = wrong_chance(confidence, 0.2, 2)
    flagged = best_expected_f1(confidence, 0.2, 2)
    # by hand: the expected F1 of each head of the ranking, the best one flagged
    order = np.argsort(-chance)
    f1 = [2 * chance[order[:k]].sum() / (k + chance.sum()) for k in range(1, 7)]
    assert set(np.flatnonzero(flagged)) == set(order[: int(np.argmax(f1)) + 1]) == {1, 3, 4}
    assert not best_expected_f1(confidence, 0.0, 2).any()  # no noise: no label looks wrong
    assert not best_expected_f1(np.ones(5), 0.1, 3).any() and not best_expected_f1(np.zeros(0), 0.1, 3).any()


def test_audit_json_and_its_own_folds(noisy):
    path, planted, n = noisy
    done = cli("data", "audit", f"csv:{path}", "--folds", "3", "--json")
    assert done.exit_code == 0, done.output
    found = json.loads(done.stdout)
    assert found["examples"] == n and found["folds"] == 3 and found["model"] == "ngram-linear"
    assert found["flagged"]["label_issue"] == sum(r["kind"] == "label_issue" for r in found["rows"])
    assert 0.85 < found["out_of_fold_accuracy"] < 0.97  # 20 of 401 labels flipped: at most ~95% agree


def test_the_audit_of_multilabel_data_flags_labels(tmp_path):
    from test_multilabel import pairs_jsonl

    path = pairs_jsonl(tmp_path / "pairs.jsonl", 60, 1)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[0]["labels"] = ["Sports"] if lines[0]["labels"] != ["Sports"] else ["World"]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    done = cli("data", "audit", f"jsonl:{path}", "--label-field", "labels", "--folds", "3", "--json")
    assert done.exit_code == 0, done.output
    found = json.loads(done.stdout)
    assert found["folds"] == 3 and all(r["given"] for r in found["rows"])
    assert 1 in {r["row"] for r in found["rows"] if r["kind"] == "label_issue"}


@pytest.mark.parametrize("args,fragments", [
    (["--out", "x.txt"], ["--out", ".csv or .json"]),
    (["--out", "/no/such/dir/x.csv"], ["does not exist"]),
    (["--folds", "1"], ["--folds 1"]),
    (["--model", "nope"], ["unknown model 'nope'"]),
])
def test_bad_audit_options_are_one_line(noisy, args, fragments):
    path, _, _ = noisy
    assert_one_line_error(cli("data", "audit", f"csv:{path}", *args), *fragments)
