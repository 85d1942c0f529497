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
         "--seed", "7", "--transformer-seeds", "1",
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
        assert row["seeds"] == [7]  # several seeds per side: test_bench_combines_seeds_as_its_table_says
    lesson, ours = result["rows"]
    assert ours["config"]["training"]["seed"] == 7  # the textclf side ran with the bench's seed
    assert lesson["padded_length"] == 256 and ours["mean_tokens"] < 128
    assert result["cli"]["help_imports_tensorflow"] is False and result["cli"]["help_seconds"] > 0
    [pred] = result["cli"]["predict"]
    assert pred["cold_seconds"] > 0 and pred["warm_texts_per_second"] > 0
    assert result["verdicts"][0].startswith("transformer: ")
    md = out_md.read_text()
    assert (
        "| lesson transformer (pad 256, 1 epoch) |" in md
        and "python bench/run.py --recipes transformer" in md
    )
    assert "textclf transformer-tuned" in proc.stdout and "MFU" in proc.stdout


def test_bench_combines_seeds_as_its_table_says():
    bench = _load("run")
    # skewed values, so that a mean taken for a median (or the first run for the max) shows
    runs = [{"train_examples_per_second": s, "train_seconds": 400 / s, "mfu": m, "eval_accuracy": a,
             "wall_seconds": w, "peak_rss_mb": r, "label": "textclf transformer"}
            for s, m, a, w, r in ((100.0, 0.10, 0.80, 10.0, 700.0), (110.0, 0.11, 0.81, 11.0, 900.0),
                                  (400.0, 0.40, 0.90, 40.0, 800.0))]
    row = bench._combine(runs, [7, 8, 9])
    assert row["seeds"] == [7, 8, 9] and row["eval_accuracies"] == [0.80, 0.81, 0.90]
    assert row["eval_accuracy"] == pytest.approx(2.51 / 3) and row["wall_seconds"] == pytest.approx(61 / 3)  # means
    assert (row["train_examples_per_second"], row["mfu"]) == (110.0, 0.11)  # medians
    assert row["train_seconds"] == pytest.approx(400 / 110) and row["peak_rss_mb"] == 900.0  # median; the max
    assert [r["eval_accuracy"] for r in row["runs"]] == [0.80, 0.81, 0.90]
    assert bench._seed_note(row) == "3 seeds (7–9): acc 80.00 / 81.00 / 90.00%, ex/s median"
    failed = bench._combine([runs[0], {"error": "transformer exited with 1"}], [7, 8])
    assert failed["error"] == "transformer exited with 1" and failed["seeds"] == [7, 8]
    assert bench._combine(runs[:1], [7, 8]) == dict(runs[0], seeds=[7])


def test_bench_runs_each_seed_on_both_sides_alternating(monkeypatch, tmp_path):
    """The multi-seed path of bench/run.py end to end, each child replaced by a stub echoing its seed."""
    bench = _load("run")
    calls = []

    def child(side, recipe, args, tmp):
        calls.append((side, args.seed))
        speed = {7: 100.0, 8: 110.0, 9: 400.0}[args.seed]
        return {"train_examples_per_second": speed * (2 if side == "textclf" else 1), "train_seconds": 10.0,
                "train_flops": 1e9, "eval_accuracy": 0.8 + (args.seed - 7) / 100, "wall_seconds": 10.0,
                "peak_rss_mb": 500.0 + args.seed}

    monkeypatch.setattr(bench, "_child", child)
    args = bench._parser().parse_args(["--recipes", "transformer", "--seed", "7", "--transformer-seeds", "3",
                                       "--lesson-epochs", "1"])
    rows = bench._recipe_rows(["transformer"], args, tmp_path, {"float32_gflops": 10.0})
    assert calls == [("lesson", 7), ("textclf", 7), ("lesson", 8), ("textclf", 8), ("lesson", 9), ("textclf", 9)]
    lesson, ours = rows
    assert (lesson["side"], ours["side"]) == ("lesson", "textclf") and ours["seeds"] == [7, 8, 9]
    assert ours["train_examples_per_second"] == 220.0 and ours["eval_accuracy"] == pytest.approx(0.81)
    assert ours["peak_rss_mb"] == 509.0 and ours["mfu"] == pytest.approx(1e9 / 10.0 / 1e10)
    assert bench._verdicts(rows, ["transformer"])[0].startswith("transformer: 2.00× the lesson's examples/s")
    assert "(mean of 3 seeds, lowest 80.00%)" in bench._verdicts(rows, ["transformer"])[0]
    assert "3 seeds (7–9): acc 80.00 / 81.00 / 82.00%" in "\n".join(" | ".join(r) for r in bench._rows_table(rows))


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scale_repeats_sst2_with_seeded_perturbations(tmp_path):
    import gzip

    scale = _load("scale")
    source = tmp_path / "train.tsv.gz"
    rows = ["a fine and moving film about loss\t1", "dull\t0", "not worth the ticket price at all\t0"]
    with gzip.open(source, "wt", encoding="utf-8") as f:
        f.write("sentence\tlabel\n" + "\n".join(rows) + "\n")
    out = scale.write_repeated(source, tmp_path / "x3.tsv", copies=3, seed=7)
    header, *written = out.read_text(encoding="utf-8").splitlines()
    assert header == "sentence\tlabel" and len(written) == 9
    assert written[:3] == rows  # copy 0 is the original
    for k in (1, 2):
        copy = written[3 * k: 3 * k + 3]
        assert [r.rsplit("\t", 1)[1] for r in copy] == ["1", "0", "0"]  # labels kept
        assert copy[1] == "dull\t0"  # under 4 words: unchanged
        for new, old in ((copy[0], rows[0]), (copy[2], rows[2])):
            new_words, old_words = new.rsplit("\t", 1)[0].split(), old.rsplit("\t", 1)[0].split()
            assert len(new_words) == len(old_words) - 1 and set(new_words) <= set(old_words)
    assert written[3:6] != written[6:9]  # each copy its own draw
    again = scale.write_repeated(source, tmp_path / "again.tsv", copies=3, seed=7)
    assert again.read_text() == out.read_text()  # seeded


def test_peers_worker_svc_reads_the_shared_examples_and_scores(tmp_path):
    from conftest import ag_rows

    rows = ag_rows(30, seed=1)
    for name, part in (("train", rows[:80]), ("eval", rows[80:])):
        with open(tmp_path / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for label, title, desc in part:
                f.write(json.dumps({"text": f"{title} {desc}", "label": int(label) - 1}) + "\n")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(
        json.dumps({"train": str(tmp_path / "train.jsonl"), "eval": str(tmp_path / "eval.jsonl"), "seed": 1})
    )
    # scikit-learn is in textclf's environment too (tf-models-official), so the worker's protocol is testable here
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "peers_worker.py"), "svc", str(cfg), str(tmp_path / "out.json")],
        check=True,
    )
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["train_examples"] == 80 and out["accuracy"] > 0.9  # class words separate the synthetic classes
    assert out["train_examples_per_second"] == pytest.approx(80 / out["train_seconds"])
    assert _load("peers_worker")._ft_text("Hello, World!\n(again)") == "hello , world ! ( again )"


def test_peers_verdicts_hold_the_issue_targets():
    peers = _load("peers")
    ours = {"accuracy": 0.905, "train_examples_per_second": 30.0, "wall_seconds": 300.0}
    fast = peers.verdicts_finetune(
        {"textclf": ours, "hf-trainer": {"accuracy": 0.909, "train_examples_per_second": 10.0, "wall_seconds": 600.0}}
    )
    assert [v.rsplit(": ", 1)[1] for v in fast] == ["met)", "met)", "met)"]
    slow = peers.verdicts_finetune({"textclf": ours, "hf-trainer": {"accuracy": 0.92, "train_examples_per_second": 20.0,
                                                                     "wall_seconds": 400.0}})
    assert [v.endswith("MISSED)") for v in slow] == [True, True, True]
    rows = {"textclf default": {"accuracy": 0.88, "wall_seconds": 20.0, "train_examples_per_second": 300.0,
                                "peak_rss_mb": 900.0},
            "tfidf-linearsvc": {"accuracy": 0.881, "wall_seconds": 2.0, "train_examples_per_second": 8000.0}}
    cost, memory, line = peers.verdicts_ngrams(rows)
    assert "-0.10 pt" in line and "MISSED" in line
    assert "10.00×" in cost and cost.endswith("MISSED)") and memory.endswith("met)")
    rows["textclf default"].update(wall_seconds=3.9, peak_rss_mb=2000.0)
    cost, memory, _ = peers.verdicts_ngrams(rows)
    assert cost.endswith("met)") and memory.endswith("MISSED)")
    assert peers.verdicts_ngrams(rows, "sst2x10")[1].endswith("met)")  # 3 GB there


def test_cold_predict_verdicts_judge_bert_by_the_seconds_beyond_the_import_on_a_slow_day():
    cold = _load("cold_predict")

    def rows(tf_import, **predict):
        return [{"command": "import textclf._tf", "median_seconds": tf_import}] + [
            {"command": f"predict, {kind.replace('_', '-')} run", "median_seconds": s} for kind, s in predict.items()]

    fast, slow_met, slow_missed = (cold.verdicts(rows(5.16, transformer=0.52, bert=6.31)),
                                   cold.verdicts(rows(5.16, bert=6.31)), cold.verdicts(rows(5.16, bert=8.8)))
    assert fast[0] == "transformer: 0.52 s (bound ≤ 2.5 s: met)"
    assert "2.3 s + the 1.15 s beyond the import = 3.45 s (met by that estimate)" in slow_met[0]
    assert "= 5.94 s (MISSED by that estimate)" in slow_missed[0]
    # on a day TensorFlow imports as fast as when the bound was set, the measured seconds decide
    assert cold.verdicts(rows(2.0, bert=4.5)) == ["bert: 4.50 s (bound ≤ 4.0 s: MISSED)"]
    assert cold.verdicts(rows(2.0, ngram_linear=2.6)) == ["ngram-linear: 2.60 s (bound ≤ 2.5 s: MISSED)"]
