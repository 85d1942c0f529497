"""Multi-label data: read from JSONL lists and separated CSV labels, trained with sigmoid outputs,
thresholds tuned per label, scored with micro/macro/sample F1, predicted, exported and served."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, WORDS, ag_rows, assert_one_line_error, cli

from textclf.data.sources import holdout_split, load_examples
from textclf.evaluation import multilabel_report, tune_thresholds

NAMES = {1: "World", 2: "Sports", 3: "Business", 4: "Sci/Tech"}


def pairs_jsonl(path: Path, n_per_class: int, seed: int) -> Path:
    """Synthetic multi-label JSONL: each row one AG-style text, or two of different classes joined with both labels."""
    rng = random.Random(seed)
    rows = ag_rows(n_per_class, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for label, title, desc in rows:
            record = {"text": f"{title}. {desc}", "labels": [NAMES[int(label)]]}
            if rng.random() < 0.5:
                other = rng.choice([r for r in rows if r[0] != label])
                record = {"text": f"{title}. {desc} {other[1]}. {other[2]}", "labels": [NAMES[int(label)],
                                                                                      NAMES[int(other[0])]]}
            fh.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pairs")
    return pairs_jsonl(d / "train.jsonl", 40, 1), pairs_jsonl(d / "eval.jsonl", 10, 2)


# ----------------------------------------------------------------------------- reading


def test_jsonl_lists_are_multi_hot_and_single_labels_become_sets(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a b", "label": ["x", "y"]}\n{"text": "c", "label": "y"}\n'
                    '{"text": "d", "label": []}\n{"text": "e", "label": ["z", "x", "x"]}\n')
    ex = load_examples(f"jsonl:{path}")
    assert ex.multilabel and ex.label_names == ("x", "y", "z")
    assert ex.labels.tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 1]]
    assert ex.label_sets() == [["x", "y"], ["y"], [], ["x", "z"]]
    assert ex.class_counts().tolist() == [2, 2, 1]


def test_csv_separator_header_and_ag_layout(tmp_path):
    headered = tmp_path / "h.csv"
    headered.write_text("text,label\nfirst,Sports|World\nsecond,World\n")
    ex = load_examples(f"csv:{headered}")
    assert ex.multilabel and ex.label_names == ("Sports", "World") and ex.labels.tolist() == [[1, 1], [0, 1]]
    # --label-separator "": the field is one label, whatever it holds
    single = load_examples(f"csv:{headered}", label_separator="")
    assert not single.multilabel and single.label_names == ("Sports|World", "World")
    semi = tmp_path / "s.tsv"
    semi.write_text("text\tlabel\nfirst\ta;b\nsecond\tb\n")
    assert load_examples(f"tsv:{semi}", label_separator=";").labels.tolist() == [[1, 1], [0, 1]]
    ag = tmp_path / "ag" / "train.csv"
    ag.parent.mkdir()
    ag.write_text('"1|3","Title one","desc"\n"2","Title two","desc"\n')
    (ag.parent / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    ex = load_examples(f"csv:{ag}")
    assert ex.label_names == ("World", "Sports", "Business", "Sci/Tech")
    assert ex.labels.tolist() == [[1, 0, 1, 0], [0, 1, 0, 0]]


def test_a_multi_label_run_reads_single_labels_and_a_single_label_run_refuses_sets(tmp_path):
    single = tmp_path / "single.jsonl"
    single.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')
    assert load_examples(f"jsonl:{single}", label_names=("x", "y"), multilabel=True).labels.tolist() == [[1, 0], [0, 1]]
    multi = tmp_path / "multi.jsonl"
    multi.write_text('{"text": "a", "label": ["x", "y"]}\n')
    with pytest.raises(Exception, match="line 1: 2 labels .* but the run is single-label"):
        load_examples(f"jsonl:{multi}", label_names=("x", "y"), multilabel=False)


@pytest.mark.parametrize("line, fragment", [
    ('{"text": "a", "label": [true]}', "a label list holds strings or integers"),
    ('{"text": "a", "label": ["x", " "]}', "empty label"),
    ('{"text": "a", "label": {"x": 1}}', "a string, an integer or a list of them"),
])
def test_bad_label_lists_are_one_line(tmp_path, line, fragment):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "b", "label": ["x"]}\n' + line + "\n")
    result = cli("data", "stats", f"jsonl:{path}")
    assert_one_line_error(result, "line 2", fragment)


def test_a_stray_empty_label_list_in_single_label_data_is_one_line(tmp_path):
    """One `[]` among single labels is a missing label, not multi-label data; among label lists it is a text
    with none of the classes."""
    path = tmp_path / "stray.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n{"text": "c", "label": []}\n')
    assert_one_line_error(cli("data", "stats", f"jsonl:{path}"), "line 3: no label (an empty set)", "every other text")
    path.write_text('{"text": "a", "label": ["x"]}\n{"text": "b", "label": "y"}\n{"text": "c", "label": []}\n')
    assert load_examples(f"jsonl:{path}").labels.tolist() == [[1, 0], [0, 1], [0, 0]]


def test_holdout_is_stratified_by_first_label(pair_files):
    ex = load_examples(f"jsonl:{pair_files[0]}", label_field="labels")
    fit, held = holdout_split(ex, 0.25, seed=3)
    assert len(fit) + len(held) == len(ex) and held.multilabel
    share = np.bincount(held.strata, minlength=4) / np.bincount(ex.strata, minlength=4)
    assert np.allclose(share, 0.25, atol=0.05)


def test_data_stats_counts_each_label(pair_files):
    result = cli("data", "stats", f"jsonl:{pair_files[0]}", "--label-field", "labels", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    rows = [json.loads(line) for line in pair_files[0].read_text().splitlines()]
    expected = {name: sum(name in r["labels"] for r in rows) for name in NAMES.values()}
    assert stats["multilabel"] is True
    assert {c["label"]: c["count"] for c in stats["classes"]} == expected
    assert stats["labels_per_example"]["max"] == 2


# ----------------------------------------------------------------------------- metrics


def test_multilabel_report_matches_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_recall_fscore_support

    rng = np.random.default_rng(0)
    y = (rng.random((300, 5)) < 0.3).astype(np.uint8)
    y[:, 4] = 0  # a label absent from the data: left out of macro-F1
    p = np.where(rng.random((300, 5)) < 0.8, y, 1 - y).astype(np.uint8)
    report = multilabel_report(y, p, list("abcde"))
    assert report.micro_f1 == pytest.approx(f1_score(y, p, average="micro"))
    assert report.macro_f1 == pytest.approx(f1_score(y[:, :4], p[:, :4], average="macro"))
    assert report.samples_f1 == pytest.approx(f1_score(y, p, average="samples", zero_division=1))
    assert report.accuracy == pytest.approx(accuracy_score(y, p))
    assert report.hamming_loss == pytest.approx(hamming_loss(y, p))
    precision, recall, f1, support = precision_recall_fscore_support(y, p, zero_division=0)
    assert [r["f1"] for r in report.per_class] == pytest.approx(f1.tolist())
    assert [r["support"] for r in report.per_class] == support.tolist()


def test_thresholds_maximise_each_labels_f1():
    rng = np.random.default_rng(1)
    y = (rng.random((400, 3)) < 0.4).astype(np.uint8)
    probs = np.clip(0.25 * y + rng.random((400, 3)) * 0.6, 0, 1)  # positives around 0.25 higher
    probs[:, 2] = rng.random(400)
    y[:, 2] = 0  # no positives: nothing to tune, 0.5 stays
    chosen = tune_thresholds(y, probs)
    assert chosen[2] == 0.5
    for j in range(2):
        f1 = lambda t: 2 * np.sum((probs[:, j] >= t) & (y[:, j] == 1)) / (np.sum(probs[:, j] >= t) + y[:, j].sum())
        best = max(f1(t) for t in np.round(np.arange(0.05, 0.951, 0.01), 2))
        assert f1(chosen[j]) == pytest.approx(best)
        assert chosen[j] < 0.5  # shifted scores: the 0.5 default would be wrong


# ----------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("model_args", [
    ["--model", "ngram-linear"],
    [*TINY, "--epochs", "3", "--learning-rate", "3e-3"],
], ids=["ngram-linear", "transformer"])  # ngram-mlp: test_compare_tests_two_multilabel_runs; BERT: models/test_bert.py
def test_trains_evaluates_predicts_exports_and_serves(tmp_path, pair_files, model_args):
    train, evaluation = pair_files
    runs = tmp_path / "runs"
    result = cli("train", "--data", f"jsonl:{train}", "--eval-data", f"jsonl:{evaluation}", "--label-field", "labels",
                 "--runs-root", runs, *model_args)
    assert result.exit_code == 0, result.output
    assert "multi-label data: 1.5" in result.output or "multi-label data: 1.4" in result.output \
        or "multi-label data: 1.6" in result.output
    run = (runs / "latest").resolve()
    metrics = json.loads((run / "metrics.json").read_text())
    thresholds = json.loads((run / "thresholds.json").read_text())["thresholds"]
    assert metrics["multilabel"] and set(thresholds) == set(NAMES.values())
    assert metrics["validation_examples"] > 0  # thresholds tuned on a validation part, never on the eval data
    floor = 0.5 if "transformer" in model_args else 0.8
    assert metrics["micro_f1"] > floor and metrics["macro_f1"] > floor - 0.1
    saved = np.load(run / "predictions.npz")
    assert saved["labels"].shape == saved["predicted"].shape == (40, 4)

    report = json.loads(cli("evaluate", "--json", "--runs-root", runs).stdout)
    assert report["micro_f1"] == pytest.approx(metrics["micro_f1"], abs=1e-6)
    assert [r["threshold"] for r in report["per_class"]] == [thresholds[n] for n in report["labels"]]
    loose = json.loads(cli("evaluate", "--json", "--threshold", "0.05", "--runs-root", runs).stdout)
    assert sum(r["predicted"] for r in loose["per_class"]) >= sum(r["predicted"] for r in report["per_class"])

    text = " ".join(WORDS[2][:5] + WORDS[4][:5])  # sports words and sci/tech words
    out = cli("predict", text, "--json", "--runs-root", runs)
    assert out.exit_code == 0, out.output
    answer = json.loads(out.stdout)
    probs = {t["label"]: t["probability"] for t in answer["top_k"]}
    assert set(answer["labels"]) <= set(probs)  # every answer comes with its probability
    assert answer["labels"] == sorted([n for n in probs if probs[n] >= thresholds[n]], key=lambda n: -probs[n])
    if "transformer" not in model_args:  # several labels for a text of two topics
        assert {"Sports", "Sci/Tech"} <= set(answer["labels"])
    lines = tmp_path / "texts.txt"
    lines.write_text(f"{text}\n\n")
    rows = [json.loads(r) for r in cli("predict", "--file", lines, "--json", "--runs-root", runs).stdout.splitlines()]
    assert rows[0]["labels"] == answer["labels"] and rows[1] == {"text": "", "labels": [], "top_k": []}
    everything = json.loads(cli("predict", text, "--json", "--threshold", "0", "--runs-root", runs).stdout)
    assert len(everything["labels"]) == 4
    # `predict` answered with the run's TensorFlow-free twin: one sigmoid per label, as the Keras model
    from textclf import twins
    from textclf.prediction import Predictor

    twin = twins.load(run)
    assert twin is not None and twin.kind == ("transformer" if "transformer" in model_args else "ngram")
    from textclf.textrules import nul_as_space

    texts = [text, *twins.CHECK_TEXTS]  # (the predictor reads a NUL as a space, as every entry of texts does)
    assert np.abs(twin.probabilities([nul_as_space(t) for t in texts]) - Predictor(run).probabilities(texts)).max() \
        <= twins.TOLERANCE

    exported = tmp_path / "export"
    assert cli("export", "--out", exported, "--runs-root", runs).exit_code == 0
    meta = json.loads((exported / "textclf-export.json").read_text())
    assert meta["multilabel"] and meta["thresholds"] == thresholds and "predicted" in meta["outputs"]
    from textclf._tf import tf

    served = tf.saved_model.load(str(exported)).signatures["serving_default"](text=tf.constant([text, "goal match"]))
    p, predicted = served["probabilities"].numpy(), served["predicted"].numpy()
    cut = np.array([thresholds[n] for n in meta["labels"]], dtype=np.float32)
    assert predicted.tolist() == (p >= cut).astype(int).tolist()
    every = {t["label"]: t["probability"] for t in everything["top_k"]}
    assert p[0] == pytest.approx([every[n] for n in meta["labels"]], abs=1e-5)

    if "transformer" in model_args:
        return  # one served run is enough: the server's multi-label answers do not depend on the model
    import subprocess
    import sys
    from serve_load import free_port
    from test_serve import _post

    port = free_port()
    proc = subprocess.Popen([str(Path(sys.executable).with_name("textclf")), "serve", str(run), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert f"on http://127.0.0.1:{port}" in proc.stderr.readline()
        status, body = _post(port, "/predict", json.dumps({"text": text}).encode())
        assert status == 200 and body["predictions"][0]["labels"] == answer["labels"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_compare_tests_two_multilabel_runs(tmp_path, pair_files):
    train, evaluation = pair_files
    runs = tmp_path / "runs"
    for model in ("ngram-linear", "ngram-mlp"):
        assert cli("train", "--model", model, "--data", f"jsonl:{train}", "--eval-data", f"jsonl:{evaluation}",
                   "--label-field", "labels", "--epochs", "4", "--run-dir", runs / model,
                   "--runs-root", runs).exit_code == 0
    result = cli("runs", "compare", runs / "ngram-linear", runs / "ngram-mlp", "--json", "--runs-root", runs)
    assert result.exit_code == 0, result.output
    compared = json.loads(result.stdout)
    assert compared["comparable"] and {"accuracy", "macro_f1"} <= set(compared["tests"])


def test_a_multi_label_and_a_single_label_run_of_one_file_are_not_ranked(tmp_path):
    """One CSV read with `|` as a label separator and without: the same spec, other labels. compare and
    report say why nothing is ranked (no broadcast error between label sets and class indices)."""
    data = tmp_path / "d.csv"
    data.write_text("text,label\n" + "".join(f"world and sports news {i},World|Sports\nmarkets story {i},Business\n"
                                             for i in range(40)))
    runs = tmp_path / "runs"
    for name, extra in (("multi", []), ("single", ["--label-separator", ""])):
        result = cli("train", "--model", "ngram-linear", "--data", f"csv:{data}", "--run-dir", runs / name,
                     "--runs-root", runs, *extra)
        assert result.exit_code == 0, result.output
    compared = cli("runs", "compare", runs / "multi", runs / "single", "--json", "--runs-root", runs)
    assert compared.exit_code == 0, compared.output
    why = json.loads(compared.stdout)["not_comparable"]
    assert "read as multi-label by one and single-label by another" in why and not json.loads(compared.stdout)["tests"]
    assert cli("report", runs / "multi", runs / "single", "--out", tmp_path / "r.html").exit_code == 0
    assert "single-label by another" in (tmp_path / "r.html").read_text()


def test_class_weights_are_refused_for_multilabel_data(tmp_path, pair_files):
    result = cli("train", "--model", "ngram-linear", "--data", f"jsonl:{pair_files[0]}", "--label-field", "labels",
                 "--class-weight", "balanced", "--runs-root", tmp_path / "runs")
    assert_one_line_error(result, "class weights are for single-label data")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


SHARED_AG = Path(__file__).resolve().parents[2] / "shared" / "data" / "ag_news" / "test.csv.gz"


@pytest.mark.skipif(not SHARED_AG.exists(), reason=f"needs the shared AG News file {SHARED_AG}")
def test_agpairs_is_a_real_multilabel_set_built_from_ag7600(tmp_path):
    from multilabel import write_agpairs

    train, evaluation = write_agpairs(tmp_path)
    for path, n in ((train, 6000), (evaluation, 1600)):
        ex = load_examples(f"jsonl:{path}", label_field="labels")
        per_text = ex.labels.sum(axis=1)
        assert len(ex) == n and ex.multilabel and set(per_text.tolist()) == {1, 2}
        assert 0.45 < np.mean(per_text == 2) < 0.55  # half the texts carry two classes
        assert ex.label_names == ("Business", "Sci/Tech", "Sports", "World")
    # each eval text is one of ag7600's eval rows, or two of them joined: nothing from the training rows
    import csv

    rows = {
        ". ".join(x.strip() for x in r[1:] if x.strip()) for r in csv.reader((tmp_path / "ag7600" / "eval.csv").open())
    }
    for line in evaluation.read_text().splitlines()[:300]:
        text = json.loads(line)["text"]
        assert text in rows or any(text.startswith(r + " ") and text[len(r) + 1:] in rows for r in rows), text[:80]
