"""Groups of runs (--seeds, --folds), per-example predictions and the paired tests of `runs compare`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ag_split, cli

TINY_T = ["--embed-dim", "8", "--num-heads", "1", "--ff-dim", "8", "--max-length", "16", "--vocab-size", "200",
          "--batch-size", "16"]


def _json_lines(result):
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_folds_are_stratified_seeded_and_cover_every_example_once():
    from textclf.data.sources import Examples, fold_of, fold_split

    labels = np.array([0] * 23 + [1] * 17 + [2] * 10, np.int32)
    ex = Examples(np.array([f"t{i}" for i in range(50)], object), labels, ("a", "b", "c"), "x")
    folds = fold_of(ex, 5, seed=3)
    assert sorted(np.bincount(folds)) == [10, 10, 10, 10, 10]
    for c in range(3):  # each class spread evenly: counts per fold differ by at most one
        counts = np.bincount(folds[labels == c], minlength=5)
        assert counts.max() - counts.min() <= 1
    assert (fold_of(ex, 5, seed=3) == folds).all() and not (fold_of(ex, 5, seed=4) == folds).all()
    held = [set(fold_split(ex, 5, k, 3)[1].texts) for k in range(5)]
    assert set().union(*held) == set(ex.texts) and sum(map(len, held)) == 50
    for k in range(5):
        rest, part = fold_split(ex, 5, k, 3)
        assert not set(rest.texts) & set(part.texts) and len(rest) + len(part) == 50


def test_folds_and_eval_data_are_refused_together():
    from textclf.config import resolve_config
    from textclf.errors import ConfigError

    with pytest.raises(ConfigError, match="no eval data with folds"):
        resolve_config({"model": "transformer", "data": {"train": "sample", "eval": "sample:eval", "folds": 3}})
    with pytest.raises(ConfigError, match="folds"):
        resolve_config({"model": "transformer", "data": {"train": "sample", "folds": 1}})


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """Two seed groups (transformer 1 epoch, ngram-mlp 8 epochs) on the same eval data, and a folds group."""
    root = tmp_path_factory.mktemp("groups")
    train, evaluation = ag_split(root, 30, 25)
    runs = root / "runs"
    common = ["--data", f"csv:{train}", "--runs-root", runs]
    weak = cli("train", *common, "--eval-data", f"csv:{evaluation}", "--model", "transformer", *TINY_T,
               "--epochs", 1, "--seeds", 2)
    assert weak.exit_code == 0, weak.output
    strong = cli("train", *common, "--eval-data", f"csv:{evaluation}", "--model", "ngram-mlp", "--epochs", 8,
                 "--seeds", 2)
    assert strong.exit_code == 0, strong.output
    folds = cli("train", *common, "--model", "ngram-mlp", "--epochs", 8, "--folds", 3)
    assert folds.exit_code == 0, folds.output
    listed = _json_lines(cli("runs", "list", "--runs-root", runs, "--json"))
    groups = {g["group"]: g for g in listed if g["type"] == "group"}
    ids = sorted(groups, key=lambda g: groups[g]["runs"][0])
    return root, runs, ids, listed, (weak, strong, folds)


def test_a_seeds_group_prints_mean_sd_and_interval_and_records_its_runs(grouped):
    root, runs, ids, listed, (weak, strong, _) = grouped
    assert "group summary (seeds, 2 runs)" in strong.stdout and "95% CI" in strong.stdout
    members = [r for r in listed if r["type"] == "run" and r["group"] == ids[1]]
    assert len(members) == 2
    infos = [json.loads((root / "runs" / m["name"] / "run.json").read_text()) for m in members]
    assert [i["group"]["index"] for i in infos] == [0, 1] and {i["group"]["size"] for i in infos} == {2}
    configs = [json.loads((root / "runs" / m["name"] / "config.json").read_text()) for m in members]
    assert [c["training"]["seed"] for c in configs] == [42, 43]
    group = next(g for g in listed if g.get("group") == ids[1] and g["type"] == "group")
    accs = [m["accuracy"] for m in members]
    assert group["accuracy"]["mean"] == pytest.approx(np.mean(accs))
    assert group["accuracy"]["sd"] == pytest.approx(np.std(accs, ddof=1))


def test_a_folds_group_evaluates_every_training_example_exactly_once(grouped):
    root, runs, ids, listed, _ = grouped
    members = [r for r in listed if r["type"] == "run" and r["group"] == ids[2]]
    assert len(members) == 3
    held = [np.load(root / "runs" / m["name"] / "predictions.npz")["labels"] for m in members]
    assert sum(len(h) for h in held) == 120  # 30 per class × 4 classes, each in one fold
    datas = [json.loads((root / "runs" / m["name"] / "metrics.json").read_text())["data"] for m in members]
    assert sorted(datas) == [f"csv:{root}/ag/train.csv (fold {k} of 3, seed 42)" for k in (1, 2, 3)]


def test_runs_list_shows_a_group_as_one_row_that_expands(grouped):
    _, runs, ids, _, _ = grouped
    collapsed = cli("runs", "list", "--runs-root", runs).stdout
    expanded = cli("runs", "list", "--runs-root", runs, "--expand").stdout
    assert all(i in collapsed for i in ids) and "2/2 complete" in collapsed and "└" not in collapsed
    assert expanded.count("└") == 7


def test_compare_of_two_groups_matches_an_independent_mcnemar_and_bootstrap(grouped):
    from scipy.stats import binomtest

    root, runs, ids, listed, _ = grouped
    result = cli("runs", "compare", ids[0], ids[1], "--runs-root", runs, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["comparable"] and data["n"] == [2, 2]

    def correct(group):  # each run's per-example correctness, from the saved files
        rows = [np.load(root / "runs" / r["name"] / "predictions.npz") for r in listed
                if r["type"] == "run" and r["group"] == group]
        hits = np.array([p["predicted"] == p["labels"] for p in rows])
        return hits, hits.mean()

    (a, acc_a), (b, acc_b) = correct(ids[0]), correct(ids[1])
    leader, other = (ids[1], ids[0]) if acc_b >= acc_a else (ids[0], ids[1])
    test = data["tests"]["accuracy"][0]
    assert data["leader"]["accuracy"] == leader and test["other"] == other
    lead_c, other_c = (b, a) if leader == ids[1] else (a, b)
    expected = []
    for x, y in zip(lead_c, other_c):  # run against run, in seed order
        only_lead, only_other = int(np.sum(x & ~y)), int(np.sum(~x & y))
        expected.append(binomtest(only_lead, only_lead + only_other, 0.5).pvalue if only_lead + only_other else 1.0)
    assert test["p_value"] == pytest.approx(np.median(expected))
    assert test["difference"] == pytest.approx(abs(acc_b - acc_a))
    low, high = test["interval"]
    assert low <= test["difference"] <= high
    assert test["significant"] == (test["p_value"] < 0.05 and (low > 0 or high < 0))
    assert (data["best"].get("accuracy") == leader) == test["significant"]
    assert test["significant"] and leader == ids[1]  # ngram-mlp (~100%) over a 1-epoch tiny transformer (~30%)
    table = cli("runs", "compare", ids[0], ids[1], "--runs-root", runs)
    assert "McNemar" in table.stdout and "95% interval" in table.stdout and "(2 runs)" in table.stdout


def test_runs_on_different_eval_data_are_not_ranked(grouped, tmp_path):
    root, runs, ids, _, _ = grouped
    result = cli("runs", "compare", ids[1], ids[2], "--runs-root", runs, "--json")
    data = json.loads(result.stdout)
    assert not data["comparable"] and data["best"] == {} and data["tests"] == {}
    assert "different eval data" in data["not_comparable"]
    table = cli("runs", "compare", ids[1], ids[2], "--runs-root", runs)
    assert "not comparable" in table.stdout and "nothing is ranked" in table.stdout
    page = tmp_path / "r.html"
    assert cli("report", ids[1], ids[2], "--runs-root", runs, "--out", page).exit_code == 0
    html = page.read_text()
    assert "not comparable" in html and "class='best'" not in html


def test_report_groups_runs_and_shows_the_tests(grouped, tmp_path):
    root, runs, ids, _, _ = grouped
    page = tmp_path / "all.html"
    assert cli("report", ids[0], ids[1], "--runs-root", runs, "--out", page).exit_code == 0
    html = page.read_text()
    assert "McNemar" in html and "±" in html and all(i in html for i in ids[:2])


def test_an_unfinished_group_continues_where_it_stopped(tmp_path):
    from textclf.runs import Run, groups

    train, evaluation = ag_split(tmp_path, 10, 3)
    (tmp_path / "x.yaml").write_text("experiments:\n  e: {model: ngram-mlp, training: {epochs: 2}}\n")
    args = ["experiments", "run", "e", "--seeds", 2, "--experiments-file", tmp_path / "x.yaml",
            "--data", f"csv:{train}", "--eval-data", f"csv:{evaluation}", "--runs-root", tmp_path / "runs"]
    assert cli(*args).exit_code == 0
    (group_id, members), = groups(tmp_path / "runs").items()
    first, second = (Run(m["path"]) for m in members)
    second.mark("failed", error="the machine went away")  # as if its process died
    again = cli(*args)
    assert again.exit_code == 0, again.output
    found = groups(tmp_path / "runs")
    assert list(found) == [group_id]  # the same group, completed
    paths = [m["path"] for m in found[group_id] if m["status"] == "complete"]
    assert str(first.path) in paths and len(paths) == 2
