"""`--model auto` (the rule on synthetic statistics, the CLI's record of it), lengths from the data, groups."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ag_rows, assert_one_line_error, cli, write_csv
from textclf.models.base import length_from_data
from textclf.selection import NGRAM_MODEL, SEQUENCE_MODEL, SEQUENCE_RATIO, TextStats, choose_model, text_stats


def test_text_stats_counts_samples_and_median_words():
    stats = text_stats(["a b c", "a", "a b c d e", "", "x y"])
    assert (stats.samples, stats.median_words) == (5, 2.0)
    assert stats.ratio == 2.5
    assert text_stats([""]).ratio == 1.0  # no words: the ratio does not divide by zero


@pytest.mark.parametrize("samples, words, expected", [
    (6000, 37, NGRAM_MODEL),            # ag7600 headlines: 162
    (67349, 7, NGRAM_MODEL),            # SST-2 phrases: 9,621
    (5452, 10, NGRAM_MODEL),            # short questions
    (2000, 400, NGRAM_MODEL),           # long articles
    (SEQUENCE_RATIO * 10, 10, SEQUENCE_MODEL),  # many short texts
    (SEQUENCE_RATIO, 1, SEQUENCE_MODEL),        # the threshold itself goes to the sequence model
    (SEQUENCE_RATIO - 1, 1, NGRAM_MODEL),
])
def test_auto_rule_on_synthetic_statistics(samples, words, expected):
    choice = choose_model(TextStats(samples, words))
    assert choice["model"] == expected
    assert choice["samples"] == samples and choice["median_words"] == words and choice["threshold"] == SEQUENCE_RATIO
    assert expected in choice["reason"] and f"{samples:,}" in choice["reason"]


def test_train_without_a_model_chooses_prints_and_records(tmp_path):
    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(30, seed=1))
    result = cli("train", "--data", f"csv:{train}", "--epochs", "2", "--runs-root", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("model auto:")]
    assert len(lines) == 1 and "108 samples / 14 median words = 8 < 15,000 → ngram-linear" in lines[0]
    config = json.loads((tmp_path / "runs" / "latest" / "config.json").read_text())
    assert config["model"] == "ngram-linear"
    assert config["selection"]["model"] == "ngram-linear" and config["selection"]["samples"] == 108
    assert config["selection"]["ratio"] == pytest.approx(108 / 14, abs=0.1)


def test_auto_with_options_of_another_model_says_what_it_chose(tmp_path):
    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(10, seed=1))
    result = cli("train", "--data", f"csv:{train}", "--embed-dim", "8", "--runs-root", tmp_path / "runs")
    assert_one_line_error(result, "model_params.embed_dim: unknown key", "--model auto chose ngram-linear")
    assert not (tmp_path / "runs").exists()


def test_length_from_data_percentile_rounding_floor_and_cap():
    assert length_from_data(np.arange(1, 101), cap=512) == 104  # p99 = 99.01 -> next multiple of 8
    assert length_from_data(np.full(50, 3), cap=512) == 8  # floor
    assert length_from_data(np.full(50, 3000), cap=512) == 512  # cap
    assert length_from_data(np.array([], int), cap=512) == 8


def test_transformer_takes_max_length_from_the_training_texts(tmp_path):
    from textclf._tf import tf
    from textclf.models.transformer.params import TransformerParams
    from textclf.models.transformer.model import build_transformer

    texts = np.array(["a b c d e f g h i j"] * 200 + ["long " * 300], dtype=object)
    built = build_transformer(TransformerParams(vocab_size=50, embed_dim=8, ff_dim=8), num_classes=2, train_texts=texts)
    assert built.params.max_length == 16  # the 99th percentile is 10 tokens: the one long text does not count
    assert "max_length 16" in built.notes[0]
    assert built.encode(tf.constant(["long " * 300])).row_lengths().numpy()[0] == 16
    fixed = build_transformer(TransformerParams(vocab_size=50, max_length=7, embed_dim=8, ff_dim=8), num_classes=2,
                              train_texts=texts)
    assert fixed.params.max_length == 7 and not fixed.notes


def test_cli_records_the_length_it_chose(tmp_path):
    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(20, seed=1))
    result = cli("train", "--model", "transformer", "--data", f"csv:{train}", "--epochs", "1", "--embed-dim", "8",
                 "--num-heads", "1", "--ff-dim", "8", "--runs-root", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "runs" / "latest" / "config.json").read_text())
    # ag_rows texts: 3 title words + 8 description words + "#39;s \\$1 i" -> 11-14 tokens; p99 -> 16
    assert config["model_params"]["max_length"] == 16
    assert "max_length 16: 99th percentile" in result.stderr


def test_experiment_groups_expand_in_order_and_are_validated(tmp_path):
    from textclf.errors import ConfigError
    from textclf.experiments import load_experiments

    shipped = load_experiments("experiments.yaml")
    assert shipped.expand(["baselines"]) == ["ngram-linear", "ngram-mlp", "transformer-tuned"]
    assert shipped.expand(["ngram-mlp", "baselines"]) == ["ngram-mlp", "ngram-linear", "transformer-tuned"]
    bad = tmp_path / "e.yaml"
    bad.write_text("experiments:\n  a: {model: ngram-linear}\ngroups:\n  g: [a, b]\n")
    with pytest.raises(ConfigError, match="groups.g: unknown experiment 'b'"):
        load_experiments(bad)
    bad.write_text("experiments:\n  a: {model: ngram-linear}\ngroups:\n  a: [a]\n")
    with pytest.raises(ConfigError, match="an experiment has this name"):
        load_experiments(bad)
    with pytest.raises(ConfigError, match="groups: baselines"):
        shipped.expand(["nope"])
