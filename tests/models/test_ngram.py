"""n-gram models: TF-IDF equal to scikit-learn's, CLI train/evaluate/predict/export, `auto`, data-derived lengths."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ag_rows, assert_one_line_error, cli, write_csv
from textclf._tf import keras, tf
from textclf.models.ngram.params import NgramParams
from textclf.models.ngram.model import build_ngram

TEXTS = np.array(["stocks rally as oil falls", "oil prices fall as stocks rally again", "team wins the cup final",
                  "the cup final goes to extra time", "new chip doubles battery life", "chip makers rally"],
                 dtype=object)


def test_sparse_dense_layer_equals_sparse_dense_matmul_and_its_gradient():
    """SparseDense's own product: same output and kernel gradient as tf.sparse, with empty rows (also the last ones)."""
    from textclf.models.ngram.model import _sparse_matmul

    rng = np.random.default_rng(0)
    kernel = tf.Variable(rng.normal(size=(50, 8)).astype(np.float32))
    indices = np.array([[0, 3], [0, 41], [2, 3], [2, 7], [2, 49], [3, 0]], np.int64)  # rows 1, 4, 5 empty
    sp = tf.SparseTensor(indices, rng.random(len(indices)).astype(np.float32), [6, 50])
    weights = tf.constant(rng.normal(size=(6, 8)).astype(np.float32))
    with tf.GradientTape(persistent=True) as tape:
        ours = _sparse_matmul(sp.indices, sp.values, sp.dense_shape, kernel)
        theirs = tf.sparse.sparse_dense_matmul(sp, kernel)
        loss_ours, loss_theirs = tf.reduce_sum(ours * weights), tf.reduce_sum(theirs * weights)
    assert ours.shape == (6, 8)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6)
    assert not ours.numpy()[[1, 4, 5]].any()
    np.testing.assert_allclose(tape.gradient(loss_ours, kernel).numpy(), tape.gradient(loss_theirs, kernel).numpy(),
                               rtol=1e-6, atol=1e-6)
    empty = tf.SparseTensor(np.zeros((0, 2), np.int64), np.zeros(0, np.float32), [3, 50])
    none = _sparse_matmul(empty.indices, empty.values, empty.dense_shape, kernel).numpy()
    assert none.shape == (3, 8) and not none.any()


def _built(**kw):
    keras.utils.set_random_seed(0)
    return build_ngram(NgramParams(**kw), num_classes=3, train_texts=TEXTS)


def _reference(char_ngrams: int):
    """scikit-learn's version of the features: TF-IDF of word 1-2-grams stacked on TF-IDF of char_wb n-grams."""
    import re

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    from textclf.textrules import PUNCTUATION

    def words(text: str) -> list[str]:
        tokens = re.sub(PUNCTUATION, " ", text.lower()).split()
        return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]

    parts = [TfidfVectorizer(analyzer=words, sublinear_tf=True)]
    if char_ngrams:
        parts.append(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, char_ngrams), sublinear_tf=True))
    return make_union(*parts)


@pytest.mark.parametrize("char_ngrams", [0, 4])
def test_tfidf_rows_equal_scikit_learn_sublinear_tfidf(char_ngrams):
    built = _built(char_ngrams=char_ngrams, char_min_df=1)
    # no word shorter than 3 letters: scikit-learn's char_wb also keeps a short word whole
    queries = ["Oil, oil; oil rally!", "the cup the cup final", "nothing known here", "chip rally chip", "zzz"]
    ours = tf.sparse.to_dense(built.features(built.text_to_ids(tf.constant(list(TEXTS) + queries)))).numpy()
    theirs = _reference(char_ngrams).fit(list(TEXTS)).transform(list(TEXTS) + queries).toarray()
    assert ours.shape[1] - 2 == theirs.shape[1]  # the same vocabulary size (+ padding and unknown ids)
    # The same rows up to the order of the columns: equal sorted weights and equal inner products
    # between every pair of rows (so each n-gram lands in the same column for every text).
    np.testing.assert_allclose(np.sort(ours, axis=1)[:, 2:], np.sort(theirs, axis=1), atol=1e-6)
    np.testing.assert_allclose(ours @ ours.T, theirs @ theirs.T, atol=1e-5)
    if not char_ngrams:
        assert not ours[len(TEXTS) + 2].any()  # no known n-gram: an all-zero row, not NaN


def _key(gram: str):
    """NgramKeys' key of a word n-gram (the last key of the text made of its words)."""
    from textclf.models.ngram.model import NgramKeys

    return int(NgramKeys(len(gram.split()), 0)(tf.constant([gram]))[0, -1])


def test_vocabulary_cap_min_df_and_padding_do_not_change_rows():
    capped = _built(vocab_size=5, char_ngrams=0)
    assert capped.text_to_ids.get_layer("ngram_ids").vocab_size == 5
    common = _built(min_df=2, char_ngrams=0)
    kept = set(common.text_to_ids.get_layer("ngram_ids").keys.numpy().tolist())
    assert {_key("rally"), _key("stocks rally")} <= kept and _key("battery") not in kept  # battery: one text
    with_chars = _built(char_ngrams=3)  # character n-grams in at least 2 texts (char_min_df) come on top
    assert with_chars.text_to_ids.get_layer("ngram_ids").vocab_size > _built(char_ngrams=0).text_to_ids.get_layer(
        "ngram_ids").vocab_size
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
    if model == "ngram-linear":  # C chosen on 10% of the training data, never the eval data; then all of it
        assert metrics["validation_examples"] == 24 and metrics["train_examples"] == 240
        assert (
            metrics["solver"] == "liblinear"
            and metrics["c_tried"] == [0.1, 0.3, 1.0]
            and metrics["c"] in [0.1, 0.3, 1.0]
        )
        history = json.loads((latest / "history.json").read_text())
        assert len(history["val_accuracy"]) == 3 and history["c"] == [0.1, 0.3, 1.0]
    else:  # early stopping watched 10% of the training data, never the eval data
        assert metrics["validation_examples"] == 24 and metrics["train_examples"] == 216
    config = json.loads((latest / "config.json").read_text())
    assert config["model"] == model and config["training"]["validation_fraction"] == 0.1
    evaluated = cli("evaluate", "--json", "--runs-root", runs)
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout)["accuracy"] == metrics["accuracy"]
    predicted = cli("predict", "--json", "--runs-root", runs, "stocks profit shares", "goal match striker")
    assert [json.loads(line)["label"] for line in predicted.stdout.splitlines()] == ["Business", "Sports"]
    # In a fresh process: ngram-linear's run holds its model as arrays (no model.keras), and its Keras
    # form is built from them; ngram-mlp's model.keras loads with Keras alone.
    load = (
        f"from textclf.models.saving import load_model\nm = load_model({str(latest.resolve())!r})\n"
        if model == "ngram-linear"
        else "import textclf.models.ngram.model\n"
        f"m = keras.models.load_model({str(latest / 'model.keras')!r}, compile=False)\n"
    )
    code = ("from textclf._tf import keras, tf\n" + load +
            "print(m(tf.constant(['stocks profit shares'])).numpy().argmax())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-1] == "2"  # Business


@pytest.mark.parametrize("loss", ["squared_hinge", "crossentropy"])
def test_saved_model_export_serves_raw_strings_and_tflite_says_why_not(tmp_path, loss):
    """ngram-linear's run holds arrays; export builds the Keras model from them (either loss: scores, then
    the fitted temperature), and the SavedModel answers as predict does."""
    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(30, seed=1))
    runs = tmp_path / "runs"
    assert cli("train", "--model", "ngram-linear", "--data", f"csv:{train}", "--runs-root", runs,
               "--set", f"model_params.loss={loss}").exit_code == 0
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
    assert_one_line_error(result, "TFLite", "no TFLite built-in kernel", "saved_model")
    assert not (tmp_path / "tfl").exists()


def test_refit_trains_a_fresh_head_on_all_training_data(tmp_path):
    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(30, seed=1))
    runs = tmp_path / "runs"
    result = cli("train", "--model", "ngram-linear", "--data", f"csv:{train}", "--set", "training.refit=true",
                 "--set", "model_params.solver=adam", "--epochs", "4", "--patience", "0", "--runs-root", runs)
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
    from textclf.models.ngram.model import one_vs_rest_squared_hinge

    scores = tf.constant([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]])
    # row 1, label 0: class 0 margin 2 -> 0; class 1: max(0, 1 - 1)^2 = 0; class 2: (1 + 0.5)^2 = 2.25
    # row 2, label 2: every class at 0 -> 1 each
    np.testing.assert_allclose(one_vs_rest_squared_hinge(tf.constant([0, 2]), scores).numpy(), [2.25, 3.0])
    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(30, seed=1))
    runs = tmp_path / "runs"
    result = cli(
        "train",
        "--model",
        "ngram-linear",
        "--data",
        f"csv:{train}",
        "--set",
        "model_params.loss=squared_hinge",
        "--set",
        "model_params.c=1",
        "--runs-root",
        runs,
    )
    assert result.exit_code == 0, result.output
    predicted = cli("predict", "--json", "--top-k", "4", "--runs-root", runs, "stocks profit shares")
    row = json.loads(predicted.stdout)
    assert row["label"] == "Business" and abs(sum(t["probability"] for t in row["top_k"]) - 1) < 1e-5


@pytest.mark.parametrize("model", [["--model", "ngram-mlp"], ["--set", "model_params.char_ngrams=0"]])
def test_training_texts_without_words_fail_in_one_line(tmp_path, model):
    data = tmp_path / "p.csv"
    data.write_text(
        "text,label\n" + "".join(f'"{p}",{"ab"[i % 2]}\n' for i, p in enumerate(["!!!", "??", "...", "--"] * 3))
    )
    # words only (ngram-linear's character n-grams would still see the punctuation); the default trains
    # without TensorFlow and must refuse as the Keras path does, before any run directory exists
    result = cli("train", *model, "--data", f"csv:{data}", "--runs-root", tmp_path / "runs")
    assert_one_line_error(result, "the training texts have no words", "nothing to learn from")
    assert not (tmp_path / "runs").exists()


def test_numpy_features_are_the_keras_layers_and_the_fit_is_linearsvc():
    """ngram-linear trains without TensorFlow: its keys and TF-IDF rows (models/ngram/features.py) must be
    the Keras layers' own (export builds the Keras model from the arrays), and its fit LinearSVC's."""
    from sklearn.svm import LinearSVC

    from textclf.twins import Twin
    from textclf.models.ngram import features as nf
    from textclf.models.ngram.params import NgramParams
    from textclf.models.ngram.solver import fit_linear
    from textclf.models.ngram.model import NgramKeys, keras_from_twin

    rng = np.random.default_rng(0)
    alphabet = list("abcdefgh  ,.-'!ÉéßİΣς\u00a0\t\n\x1c\x1f\x85") + ["\x00", "\u2c2f", "日本"]
    fuzzed = ["".join(rng.choice(alphabet, size=int(rng.integers(0, 60)))) for _ in range(300)]
    texts = list(TEXTS) + fuzzed
    # ASCII-only texts take str.split's fast path (a chunk of them, alone), which must still split only at
    # the whitespace TensorFlow splits at (not at \x1c-\x1f)
    ascii_texts = [
        "".join(rng.choice(list("abc ,.-\t\n\x0b\x1c\x1f"), size=int(rng.integers(0, 40)))) for _ in range(100)
    ]
    for group in (texts, ascii_texts, ascii_texts[:50] + ["Unicode \u00e9 \x1c"]):
        keys = NgramKeys(2, 5)(tf.constant(group))
        ours, rows = nf.text_keys(group, 2, 5, nf.WordHashes())
        assert sorted(zip(keys.value_rowids().numpy().tolist(), keys.flat_values.numpy().tolist())) == \
            sorted(zip(rows.tolist(), ours.tolist()))
    labels = np.array([i % 3 for i in range(len(texts))])
    params = NgramParams(c=0.5, solver="liblinear", loss="squared_hinge", tol=1e-6, max_iter=100000)
    solved = fit_linear(params, np.array(texts, dtype=object), labels, 3, None)
    assert solved["c"] == 0.5 and solved["train_examples"] == len(texts)
    vocab, x = nf.fit_vocabulary(texts, ngrams=2, char_ngrams=5, min_df=1, max_tokens=0, char_min_df=2,
                                 char_max_tokens=0)
    svc = LinearSVC(C=0.5, tol=1e-6, max_iter=100000).fit(x, labels)
    np.testing.assert_allclose(solved["arrays"]["kernel_0"], svc.coef_.T, atol=1e-5)
    # the Keras model built from the arrays (what export saves) gives the arrays' probabilities
    twin = Twin(solved["arrays"]).probabilities(texts)
    keras_probs = keras_from_twin(solved["arrays"], params)(tf.constant(texts)).numpy()
    np.testing.assert_allclose(keras_probs, twin, atol=1e-5)
