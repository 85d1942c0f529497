"""n-gram models: TF-IDF equal to scikit-learn's, CLI train/evaluate/predict/export, `auto`, data-derived lengths."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ag_rows, assert_one_line_error, cli, write_csv
from textclf._tf import keras, tf
from textclf.models.catalog import NgramParams
from textclf.models.ngram import build_ngram

TEXTS = np.array(["stocks rally as oil falls", "oil prices fall as stocks rally again", "team wins the cup final",
                  "the cup final goes to extra time", "new chip doubles battery life", "chip makers rally"],
                 dtype=object)


def _built(**kw):
    keras.utils.set_random_seed(0)
    return build_ngram(NgramParams(**kw), num_classes=3, train_texts=TEXTS)


def test_tfidf_rows_equal_scikit_learn_sublinear_tfidf():
    from sklearn.feature_extraction.text import TfidfVectorizer

    built = _built()
    vocab = built.text_to_ids.get_layer("vectorizer").get_vocabulary()
    queries = ["oil oil oil rally", "the cup the cup final", "nothing known here", "chip rally chip"]
    ids = built.text_to_ids(tf.constant(queries))
    ours = tf.sparse.to_dense(built.features(ids)).numpy()[:, 2:]
    reference = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, vocabulary=vocab[2:],
                                token_pattern=r"\S+").fit(list(TEXTS))
    np.testing.assert_allclose(ours, reference.transform(queries).toarray(), atol=1e-6)
    assert not ours[2].any()  # no known n-gram: an all-zero row, not NaN


def test_vocabulary_cap_min_df_and_padding_do_not_change_rows():
    capped = _built(vocab_size=5)
    assert len(capped.text_to_ids.get_layer("vectorizer").get_vocabulary()) == 5 + 2
    common = _built(min_df=2)
    kept = common.text_to_ids.get_layer("vectorizer").get_vocabulary()[2:]
    assert "rally" in kept and "stocks rally" in kept and "battery" not in kept  # battery: one text
    model = _built().inference_model()
    alone = model(tf.constant(["stocks rally"])).numpy()
    padded = model(tf.constant(["stocks rally", "the cup final goes to extra time again and again"])).numpy()
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-6)


@pytest.mark.parametrize("model", ["ngram-linear", "ngram-mlp"])
def test_cli_trains_evaluates_predicts_and_reloads(tmp_path, model):
    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(60, seed=1))
    evaluation = write_csv(tmp_path / "ag" / "eval.csv", ag_rows(15, seed=2))
    runs = tmp_path / "runs"
    result = cli("train", "--model", model, "--data", f"csv:{train}", "--eval-data", f"csv:{evaluation}",
                 "--runs-root", runs)
    assert result.exit_code == 0, result.output
    latest = runs / "latest"
    metrics = json.loads((latest / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.9  # class words are disjoint: a bag of words separates them
    # early stopping watched 10% of the training data, never the eval data
    assert metrics["validation_examples"] == 24 and metrics["train_examples"] == 216
    config = json.loads((latest / "config.json").read_text())
    assert config["model"] == model and config["training"]["validation_fraction"] == 0.1
    evaluated = cli("evaluate", "--json", "--runs-root", runs)
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout)["accuracy"] == metrics["accuracy"]
    predicted = cli("predict", "--json", "--runs-root", runs, "stocks profit shares", "goal match striker")
    assert [json.loads(line)["label"] for line in predicted.stdout.splitlines()] == ["Business", "Sports"]
    code = ("import textclf.models.ngram\nfrom textclf._tf import keras, tf\n"
            f"m = keras.models.load_model({str(latest / 'model.keras')!r}, compile=False)\n"
            "print(m(tf.constant(['stocks profit shares'])).numpy().argmax())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-1] == "2"  # Business


def test_saved_model_export_serves_raw_strings_and_tflite_says_why_not(tmp_path):
    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(30, seed=1))
    runs = tmp_path / "runs"
    assert cli("train", "--model", "ngram-linear", "--data", f"csv:{train}", "--runs-root", runs).exit_code == 0
    texts = ["stocks profit shares", "goal match striker", ""]
    predicted = cli("predict", "--json", "--top-k", "4", "--runs-root", runs, *texts[:2])
    expected = [{t["label"]: t["probability"] for t in json.loads(line)["top_k"]}
                for line in predicted.stdout.splitlines()]
    out = tmp_path / "sm"
    assert cli("export", "--runs-root", runs, "--format", "saved_model", "--out", out).exit_code == 0
    script = (
        "import json, tensorflow as tf\n"
        f"f = tf.saved_model.load({str(out)!r}).signatures['serving_default']\n"
        f"r = f(text=tf.constant({texts!r}))\n"
        "print(json.dumps(r['probabilities'].numpy().tolist()))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    labels = json.loads((runs / "latest" / "labels.json").read_text())
    for row, want in zip(served, expected):
        np.testing.assert_allclose(row, [want[label] for label in labels], atol=1e-5)
    assert abs(sum(served[2]) - 1) < 1e-5  # an empty text still gets a distribution (the bias)
    result = cli("export", "--runs-root", runs, "--format", "tflite", "--out", tmp_path / "tfl")
    assert_one_line_error(result, "TFLite", "no TFLite built-in kernel for", "saved_model")
    assert not (tmp_path / "tfl").exists()


def test_refit_trains_a_fresh_head_on_all_training_data(tmp_path):
    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(30, seed=1))
    runs = tmp_path / "runs"
    result = cli("train", "--model", "ngram-linear", "--data", f"csv:{train}", "--set", "training.refit=true",
                 "--epochs", "4", "--patience", "0", "--runs-root", runs)
    assert result.exit_code == 0, result.output
    metrics = json.loads((runs / "latest" / "metrics.json").read_text())
    assert metrics["refit_epochs"] == metrics["best_epoch"] >= 1
    assert metrics["train_examples"] == 108 and metrics["validation_examples"] == 12  # all 108 training rows
    predicted = cli("predict", "--json", "--runs-root", runs, "stocks profit shares")
    assert json.loads(predicted.stdout)["label"] == "Business"  # the saved model is the refitted head
    result = cli("train", "--model", "transformer", "--data", f"csv:{train}", "--set", "training.refit=true",
                 "--set", "training.validation_fraction=0.1", "--epochs", "1", "--embed-dim", "8",
                 "--runs-root", tmp_path / "runs2")
    assert_one_line_error(result, "training.refit needs a model whose features are computed once")


def test_squared_hinge_is_linearsvc_loss_and_serves_probabilities(tmp_path):
    from textclf.models.ngram import one_vs_rest_squared_hinge

    scores = tf.constant([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    # row 1, label 0: class 0 margin 2 -> 0; class 1: max(0, 1 - 1)^2 = 0; class 2: (1 + 0.5)^2 = 2.25
    # row 2, label 2: every class at 0 -> 1 each
    np.testing.assert_allclose(one_vs_rest_squared_hinge(tf.constant([0, 2]), scores).numpy(), [2.25, 3.0])
    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(30, seed=1))
    runs = tmp_path / "runs"
    result = cli("train", "--model", "ngram-linear", "--data", f"csv:{train}", "--set", "model_params.loss=squared_hinge",
                 "--set", "model_params.c=1", "--runs-root", runs)
    assert result.exit_code == 0, result.output
    predicted = cli("predict", "--json", "--top-k", "4", "--runs-root", runs, "stocks profit shares")
    row = json.loads(predicted.stdout)
    assert row["label"] == "Business" and abs(sum(t["probability"] for t in row["top_k"]) - 1) < 1e-5


def test_training_texts_without_words_fail_in_one_line(tmp_path):
    data = tmp_path / "p.csv"
    data.write_text("text,label\n" + "".join(f'"{p}",{"ab"[i % 2]}\n' for i, p in enumerate(["!!!", "??", "...", "--"] * 3)))
    result = cli("train", "--model", "ngram-linear", "--data", f"csv:{data}", "--runs-root", tmp_path / "runs")
    assert_one_line_error(result, "the training texts have no words", "nothing to learn from")
    assert not (tmp_path / "runs").exists()
