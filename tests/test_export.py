"""export: a SavedModel reloaded with plain TensorFlow in a fresh process, and TFLite, match predict."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import cli as run, train_tiny

TEXTS = [
    "Stocks RALLY as oil prices fall!",
    "Striker scores; the cup final goes on",
    "NASA's new chip, software & space",
    "zzz unknownword",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    train_tiny(root, 40, epochs=2)
    predicted = run("predict", *TEXTS, "--runs-root", root / "runs", "--json", "--top-k", "4")
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    labels = json.loads((root / "runs" / "latest" / "labels.json").read_text())
    probs = np.array(
        [[next(t["probability"] for t in r["top_k"] if t["label"] == lab) for lab in labels] for r in rows]
    )
    return root, probs, [r["label"] for r in rows]


def test_saved_model_serves_raw_strings_without_textclf(trained):
    root, probs, labels = trained
    out = root / "sm"
    result = run("export", "--runs-root", root / "runs", "--format", "saved_model", "--out", out)
    assert result.exit_code == 0, result.output
    script = (
        "import json, sys, tensorflow as tf\n"
        f"f = tf.saved_model.load({str(out)!r}).signatures['serving_default']\n"
        f"r = f(text=tf.constant({TEXTS!r}))\n"
        "assert not any(m.startswith('textclf') for m in sys.modules)\n"
        "print(json.dumps({'p': r['probabilities'].numpy().tolist(), "
        "'label': [x.decode() for x in r['label'].numpy()], 'id': r['label_id'].numpy().tolist()}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    served = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(served["p"], probs, atol=1e-5)
    assert served["label"] == labels
    meta = json.loads((out / "textclf-export.json").read_text())
    assert meta["signature"] == "serving_default" and meta["labels"][served["id"][0]] == labels[0]


def _tokenize(text: str, vocab: dict[str, int], max_length: int) -> list[int]:
    """The rules written to textclf-export.json: lower-case, strip punctuation, split on spaces."""
    text = re.sub(r"[!\"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~']", "", text.lower())
    ids = [vocab.get(word, 1) for word in text.split()][:max_length]
    return ids or [1]


def test_tflite_matches_predict(trained):
    from ai_edge_litert.interpreter import Interpreter  # LiteRT, TFLite's runtime without TensorFlow

    root, probs, _ = trained
    out = root / "tfl"
    result = run("export", "--runs-root", root / "runs", "--format", "tflite", "--out", out)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "textclf-export.json").read_text())
    tok = meta["tokenizer"]
    assert tok["standardize"] == "lower_and_strip_punctuation" and tok["split"] == "whitespace"
    vocab = {w: i for i, w in enumerate((out / "vocab.txt").read_text().split("\n")[:-1])}
    assert (out / "labels.txt").read_text().split() == meta["labels"]
    runner_ = Interpreter(model_path=str(out / "model.tflite")).get_signature_runner("serving_default")
    for text, expected in zip(TEXTS, probs):
        ids = np.array([_tokenize(text, vocab, tok["max_length"])], np.int32)
        np.testing.assert_allclose(runner_(token_ids=ids)["probabilities"][0], expected, atol=1e-5)


def test_export_refuses_a_non_empty_destination_and_unknown_format(trained):
    root, _, _ = trained
    (root / "busy").mkdir()
    (root / "busy" / "x").write_text("keep")
    result = run("export", "--runs-root", root / "runs", "--out", root / "busy")
    assert result.exit_code == 1 and "not empty" in result.stderr
    assert (root / "busy" / "x").read_text() == "keep"
    result = run("export", "--runs-root", root / "runs", "--format", "onnx", "--out", root / "o")
    assert (
        result.exit_code == 2 and "'saved_model', 'tflite'" in result.stderr and not (root / "o").exists()
    )  # a usage error
