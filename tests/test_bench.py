"""bench/run.py: one invocation runs lesson and textclf side by side and writes table, JSON, Markdown."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_useful_flops_follow_the_formula():
    from textclf._tf import tf

    bench = _bench_module()
    trained = [tf.Variable(tf.zeros([8, 2, 4]), name="transformer_0/attn/query/kernel"),
               tf.Variable(tf.zeros([8, 16]), name="transformer_0/ffn_1/kernel"),
               tf.Variable(tf.zeros([100, 8]), name="embedding/token/embeddings"),  # lookups: not counted
               tf.Variable(tf.zeros([8, 4]), name="probs/kernel")]  # the head: not counted
    frozen = [tf.Variable(tf.zeros([8, 16]), name="transformer/layer_0/intermediate/kernel")]
    dense, width = 8 * 2 * 4 + 8 * 16, 2 * 4
    lengths = [3, 5]
    expected_trained = sum(6 * dense * t + 12 * width * t * t for t in lengths)
    expected_frozen = sum(2 * 8 * 16 * t for t in lengths)
    assert bench.training_flops(trained, frozen, lengths, 2, 1) == pytest.approx(2 * expected_trained + expected_frozen)


@pytest.mark.skipif(not (SHARED / "data/ag_news/test.csv.gz").exists(), reason="../shared AG News test split absent")
def test_bench_run_writes_table_json_and_markdown(tmp_path):
    out_json, out_md = tmp_path / "bench.json", tmp_path / "BENCHMARKS.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--recipes", "transformer", "--limit", "400",
         "--lesson-epochs", "1", "--set", "training.epochs=1", "--no-pipeline", "--quiet",
         "--seed", "7", "--transformer-seeds", "2",
         "--json", str(out_json), "--markdown", str(out_md)],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out_json.read_text())
    assert result["peak"]["float32_gflops"] > 1
    assert [(r["side"], r["recipe"]) for r in result["rows"]] == [("lesson", "transformer"), ("textclf", "transformer")]
    for row in result["rows"]:
        assert row["train_examples"] == 400 and row["epochs"] == 1
        assert row["train_examples_per_second"] > 0 and 0 <= row["eval_accuracy"] <= 1
        assert row["peak_rss_mb"] > 100 and row["wall_seconds"] > 0
        assert 0 < row["mfu"] < 1
        # two seeds per side: accuracy is their mean, speed their median (of two: the mean)
        assert row["seeds"] == [7, 8] and len(row["eval_accuracies"]) == 2
        assert row["eval_accuracy"] == pytest.approx(sum(row["eval_accuracies"]) / 2)
        speeds = [r["train_examples_per_second"] for r in row["runs"]]
        assert row["train_examples_per_second"] == pytest.approx(sum(speeds) / 2)
    lesson, ours = result["rows"]
    assert ours["config"]["training"]["seed"] == 7  # the textclf side ran with the bench's seed
    assert lesson["padded_length"] == 256 and ours["mean_tokens"] < 128
    assert result["cli"]["help_imports_tensorflow"] is False and result["cli"]["help_seconds"] > 0
    [pred] = result["cli"]["predict"]
    assert pred["cold_seconds"] > 0 and pred["warm_texts_per_second"] > 0
    assert result["verdicts"][0].startswith("transformer: ")
    md = out_md.read_text()
    assert "| lesson transformer (pad 256, 1 epoch) |" in md and "2 seeds (7–8)" in md and "python bench/run.py --recipes transformer" in md
    assert "textclf transformer-tuned" in proc.stdout and "MFU" in proc.stdout
