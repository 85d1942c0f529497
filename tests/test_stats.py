"""textclf.stats against values computed by hand and by independent formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from textclf import stats


def test_summary_mean_sd_and_t_interval():
    s = stats.summary([1, 2, 3, 4, 5])
    assert s["n"] == 5 and s["mean"] == 3 and s["sd"] == pytest.approx(math.sqrt(2.5))
    half = 2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5)  # t(0.975, 4), from tables
    assert s["ci"] == pytest.approx([3 - half, 3 + half])
    assert stats.summary([0.8])["ci"] is None and stats.summary([0.8])["mean"] == 0.8
    assert stats.summary([])["n"] == 0


def test_mcnemar_exact_by_hand():
    # 10 examples only A gets right, 2 only B: p = 2 * P(X <= 2 | n=12, 1/2) = 2 * (1 + 12 + 66) / 4096
    a = np.array([1] * 10 + [0] * 2 + [1] * 50 + [0] * 8, bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 50 + [0] * 8, bool)
    t = stats.mcnemar(a, b)
    assert (t["only_a_correct"], t["only_b_correct"]) == (10, 2)
    assert t["p_value"] == pytest.approx(158 / 4096)
    assert stats.mcnemar(a, a)["p_value"] == 1.0


def test_groups_enter_mcnemar_run_against_run_with_the_median_p():
    from scipy.stats import binomtest

    rng = np.random.default_rng(5)
    a = rng.random((3, 400)) < 0.9
    b = rng.random((3, 400)) < 0.85
    t = stats.mcnemar(a, b)
    expected = [binomtest(int(np.sum(x & ~y)), int(np.sum(x ^ y)), 0.5).pvalue for x, y in zip(a, b)]
    assert [q["p_value"] for q in t["pairs"]] == pytest.approx(expected)
    assert t["p_value"] == pytest.approx(np.median(expected))
    one = stats.mcnemar(a[0], b)  # a single run against each run of a group
    assert len(one["pairs"]) == 3 and one["pairs"][1]["only_a_correct"] == int(np.sum(a[0] & ~b[1]))


def test_paired_bootstrap_matches_the_normal_approximation():
    rng = np.random.default_rng(3)
    a = rng.random(4000) < 0.88
    b = np.where(rng.random(4000) < 0.9, a, ~a)  # B agrees with A on 90% of the examples
    boot = stats.paired_bootstrap(a, b, samples=4000)
    d = a.astype(float) - b.astype(float)
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert boot["difference"] == pytest.approx(d.mean())
    low, high = boot["interval"]
    assert low == pytest.approx(d.mean() - 1.96 * se, abs=0.25 * se)
    assert high == pytest.approx(d.mean() + 1.96 * se, abs=0.25 * se)
    assert stats.paired_bootstrap(a, b, samples=4000)["interval"] == boot["interval"]  # seeded


def test_seed_noise_widens_a_groups_interval():
    rng = np.random.default_rng(0)
    reference = rng.random(2000) < 0.85
    # Five runs whose accuracies differ by seed (78% .. 92%) vs five identical runs (85%).
    noisy = np.array([rng.random(2000) < level for level in (0.78, 0.82, 0.85, 0.88, 0.92)])
    steady = np.array([rng.random(2000) < 0.85] * 5)
    wide = stats.paired_bootstrap(noisy, reference, samples=2000)["interval"]
    narrow = stats.paired_bootstrap(steady, reference, samples=2000)["interval"]
    assert wide[1] - wide[0] > 1.5 * (narrow[1] - narrow[0])


def test_verdict_needs_both_the_test_and_the_interval():
    a = np.array([1] * 60 + [0] * 40, bool)
    b = np.array([1] * 58 + [0] * 42, bool)
    close = stats.compare_correctness(a, b)
    assert close["leader"] == "a" and not close["significant"]
    far = stats.compare_correctness(np.ones(300, bool), np.r_[np.ones(240, bool), np.zeros(60, bool)])
    assert far["leader"] == "a" and far["significant"] and far["p_value"] < 1e-10
    assert far["interval"][0] > 0
    with pytest.raises(ValueError, match="different lengths"):
        stats.mcnemar(a, b[:50])


def test_macro_f1_matches_the_evaluation_report():
    from textclf.evaluation import report_from_predictions

    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 500)
    y[y == 3] = 2  # a class absent from the data is left out of the mean
    p = np.where(rng.random(500) < 0.7, y, rng.integers(0, 4, 500))
    assert stats.macro_f1(y, p, 4) == pytest.approx(report_from_predictions(y, p, list("abcd")).macro_f1)


def test_f1_bootstrap_interval_and_p():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 1500)
    good = np.where(rng.random(1500) < 0.9, y, rng.integers(0, 3, 1500))
    bad = np.where(rng.random(1500) < 0.6, y, rng.integers(0, 3, 1500))
    far = stats.paired_bootstrap_f1(y, good, bad, 3, samples=500)
    assert far["difference"] == pytest.approx(stats.macro_f1(y, good, 3) - stats.macro_f1(y, bad, 3))
    assert far["interval"][0] > 0 and far["p_value"] < 0.01
    same = stats.paired_bootstrap_f1(y, good, good, 3, samples=200)
    assert same["difference"] == 0 and same["p_value"] == 1.0
