"""The TensorFlow-free twins of n-gram and transformer runs (textclf/twins.py): same probabilities
as the Keras model on any text, and `predict` answers with them without importing TensorFlow."""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, WORDS, ag_rows, assert_one_line_error, cli, write_csv

from textclf import textrules, twins
from textclf.runs import TWIN_FILE

# Characters a user's text may hold: ASCII, punctuation, every kind of space, accents, Greek
# (final sigma), Turkish dotted I, CJK, emoji, the letters TensorFlow's ICU does not lower, NUL.
POOL = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
    + [" "] * 12
    + ["\t", "\n", "\r", "\v", "\f", "\u00a0", "\u2009", "\u3000", "\x1c", "\u0085"]
    + list("éÉàÀçÇüÜßẞøØñÑ")
    + list("ΑΣΟΔσςπ")
    + ["\u0130", "\u0131"]
    + list("日本語中文")
    + ["😀", "👍🏽"]
    + [chr(c) for c in sorted(textrules.LOWER_KEPT)][:6]
    + ["\x00"]
)


def fuzz_texts(n: int, seed: int = 0) -> list[str]:
    """Random texts mixing the training words (so known n-grams occur) with any characters."""
    rng = random.Random(seed)
    words = [w for ws in WORDS.values() for w in ws]
    texts = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 12)):
            if rng.random() < 0.5:
                word = rng.choice(words)
                parts.append(word.upper() if rng.random() < 0.2 else word)
            else:
                parts.append("".join(rng.choice(POOL) for _ in range(rng.randint(1, 6))))
            parts.append(rng.choice([" ", " ", "-", ", ", "\u00a0", "\t"]))
        texts.append("".join(parts))
    return texts + twins.CHECK_TEXTS


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An ngram-linear (words + characters), an ngram-mlp and a tiny transformer run on AG-like rows
    with accents and symbols in them."""
    root = tmp_path_factory.mktemp("lite")
    rows = ag_rows(40, seed=1)
    for i, row in enumerate(rows[::7]):
        row[2] += [" Café déjà-vu", " ΟΔΟΣ naïve", " 日本 😀", " Ⱟ\u00a0x"][i % 4]
    train = write_csv(root / "ag" / "train.csv", rows)
    made = {}
    for name, args in {
        "ngram-linear": ["--model", "ngram-linear"],
        "ngram-mlp": ["--model", "ngram-mlp", "--epochs", "3"],
        "transformer": [*TINY, "--epochs", "2"],
    }.items():
        result = cli("train", "--data", f"csv:{train}", "--run-dir", root / name, "--runs-root", root / "runs", *args)
        assert result.exit_code == 0, result.output
        made[name] = root / name
    return made


def test_lowercasing_matches_tensorflow_on_every_code_point():
    from textclf._tf import tf

    chars = [chr(c) for c in range(1, 0x110000) if not 0xD800 <= c < 0xE000]
    lowered = tf.strings.lower(tf.constant([c.encode("utf-8") for c in chars]), encoding="utf-8").numpy()
    differ = [hex(ord(c)) for c, t in zip(chars, lowered) if textrules.lower_like_tensorflow(c) != t.decode("utf-8")]
    assert differ == []
    for text in ["ΟΔΟΣ ΣΑΣ Σ", "\u0130stanbul", "a\x00b C", "\u2c2fX\u2c2f\u00c9", ""]:
        assert textrules.lower_like_tensorflow(text) == tf.strings.lower(text, encoding="utf-8").numpy().decode("utf-8")
    # the kept letters really are kept by TensorFlow and lowered by Python: the list is not padded
    assert all(chr(c).lower() != chr(c) for c in textrules.LOWER_KEPT)


@pytest.mark.parametrize("name", ["ngram-linear", "ngram-mlp", "transformer"])
def test_twin_gives_the_keras_models_probabilities_on_any_text(runs, name):
    from textclf._tf import tf
    from textclf.models.saving import load_model

    run = runs[name]
    assert (run / TWIN_FILE).is_file()
    twin = twins.load(run)
    assert twin is not None and twin.kind == ("transformer" if name == "transformer" else "ngram")
    texts = fuzz_texts(600)
    expected = load_model(run)(tf.constant(texts), training=False).numpy()
    got = twin.probabilities(texts, batch_size=64)
    assert got.shape == expected.shape and got.dtype == np.float32
    assert np.abs(got - expected).max() <= twins.TOLERANCE
    assert (got.argmax(1) == expected.argmax(1)).mean() > 0.99  # (ties between equal scores may flip)
    assert np.allclose(got.sum(1), 1.0, atol=1e-5)


def test_predict_answers_without_importing_tensorflow(runs, tmp_path):
    run = runs["ngram-linear"]
    texts = tmp_path / "texts.txt"
    texts.write_text("stocks profit shares bank\n\ngoal match striker coach\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "textclf", "predict", "--file", str(texts),
                           "--run", str(run), "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "numpy" in imported and not {m for m in imported if m.split(".")[0] in ("tensorflow", "tf_keras")}
    answers = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [a["label"] for a in answers] == ["Business", None, "Sports"]
    # the same answers as the Keras model (the run trained without TensorFlow: its model built from the arrays)
    from textclf.models.saving import load_model

    given = [t for t in texts.read_text(encoding="utf-8").splitlines() if t]
    probs = np.asarray(load_model(run)(np.array(given, dtype=object), training=False))
    labels = json.loads((run / "labels.json").read_text())
    shown = [a for a in answers if a["label"] is not None]
    for a, p in zip(shown, probs):
        assert a["label"] == labels[int(p.argmax())] and abs(a["probability"] - float(p.max())) < 1e-4


def test_a_damaged_twin_falls_back_to_the_keras_model_and_a_foreign_one_is_refused(runs, tmp_path):
    run = runs["transformer"]
    saved = (run / TWIN_FILE).read_bytes()
    expected = json.loads(cli("predict", "goal match", "--run", run, "--json").stdout)
    try:
        (run / TWIN_FILE).write_bytes(saved[: len(saved) // 2])  # cut short: not a readable npz
        assert twins.load(run) is None
        result = cli("predict", "goal match", "--run", run, "--json")
        assert result.exit_code == 0 and json.loads(result.stdout)["label"] == expected["label"]
        # a twin with an output too many for labels.json: one line, as the Keras model's own check says
        with np.load(io.BytesIO(saved)) as data:
            arrays = {k: data[k] for k in data.files}
        ngram = dict(np.load(runs["ngram-linear"] / TWIN_FILE))
        last = int(ngram["layers"]) - 1
        ngram[f"kernel_{last}"] = np.pad(ngram[f"kernel_{last}"], [(0, 0), (0, 1)])
        ngram[f"bias_{last}"] = np.pad(ngram[f"bias_{last}"], [(0, 1)])
        ngram["model"] = arrays["model"]  # bound to this run's model.keras, as if written with it
        np.savez(run / TWIN_FILE, **ngram)
        result = cli("predict", "goal match", "--run", run)
        assert result.exit_code != 0 and "5 outputs but labels.json names 4 classes" in result.stderr
        assert "Traceback" not in result.output
        arrays["format"] = np.array("textclf-lite-999")  # a later textclf's twin: ignored
        np.savez(run / TWIN_FILE, **arrays)
        assert twins.load(run) is None
        # a twin made from another model.keras than the run's (another run's twin copied in) is ignored
        (run / TWIN_FILE).write_bytes((runs["ngram-linear"] / TWIN_FILE).read_bytes())
        assert twins.load(run) is None and twins.load(runs["ngram-linear"]) is not None
    finally:
        (run / TWIN_FILE).write_bytes(saved)
    assert twins.load(run) is not None


def test_text_that_is_not_utf8_is_one_line_with_and_without_a_twin(runs, tmp_path):
    run = runs["ngram-linear"]
    bad = "caf\udcff match"  # how Python hands over a command-line argument holding byte 0xff
    assert_one_line_error(cli("predict", "goal", bad, "--run", run), "text 2 is not valid UTF-8 (at character 4)")
    keras_run = runs["transformer"]  # the Keras path: a run whose twin is set aside
    (keras_run / TWIN_FILE).rename(tmp_path / "twin.npz")
    try:
        assert_one_line_error(cli("predict", bad, "--run", keras_run), "text 1 is not valid UTF-8")
    finally:
        (tmp_path / "twin.npz").rename(keras_run / TWIN_FILE)


def test_a_model_without_a_twin_gets_none():
    from textclf._tf import keras, tf

    texts = keras.Input(shape=(), dtype=tf.string)
    lengths = keras.layers.Lambda(lambda t: tf.cast(tf.strings.length(t), tf.float32)[:, None])(texts)
    model = keras.Model(texts, keras.layers.Dense(2, activation="softmax")(lengths))
    assert twins.twin_arrays(model, ["a", "bb"], family="toy") is None  # a family without twins
    assert twins.twin_arrays(model, ["a", "bb"], family="transformer") is None  # not made: it lacks the parts


def test_twins_and_export_know_a_model_by_its_family_not_its_layer_names():
    from textclf.models.catalog import MODELS

    families = {name: MODELS.get(name).family for name in ("ngram-linear", "ngram-mlp", "transformer", "bert-tiny")}
    assert families == {"ngram-linear": "ngram", "ngram-mlp": "ngram", "transformer": "transformer",
                        "bert-tiny": "bert"}
    for module in ("twins", "export"):  # both dispatch through the run's family, never its layers
        source = (Path(twins.__file__).parent / f"{module}.py").read_text(encoding="utf-8")
        assert "get_layer(" not in source and "in layers" not in source and "layers[-1]" not in source


def test_a_model_damaged_inside_a_member_is_not_hidden_by_its_twin(runs, tmp_path):
    """Random bytes inside model.keras's weights leave the zip directory (names, sizes, CRCs) as it was:
    the twin is bound to the file's bytes, so it is not used, and the Keras path says what is wrong."""
    import shutil
    import zipfile

    run = tmp_path / "run"
    shutil.copytree(runs["ngram-mlp"], run)
    model = run / "model.keras"
    with zipfile.ZipFile(model) as archive:
        member = max(archive.infolist(), key=lambda i: i.compress_size)
        before = [(i.filename, i.file_size, i.CRC) for i in archive.infolist()]
    data = bytearray(model.read_bytes())
    start = member.header_offset + 30 + len(member.filename.encode()) + len(member.extra) + member.compress_size // 2
    data[start:start + 64] = bytes(range(64))
    model.write_bytes(bytes(data))
    with zipfile.ZipFile(model) as archive:
        assert [(i.filename, i.file_size, i.CRC) for i in archive.infolist()] == before  # the directory looks fine
    assert twins.load(run) is None and twins.load(runs["ngram-mlp"]) is not None
    assert_one_line_error(cli("predict", "goal match", "--run", run), "cannot load the model", code=1)


def test_a_twin_of_an_older_run_bound_to_the_zip_directory_is_still_used(runs, tmp_path):
    """Runs saved before the SHA-256 binding name their model by the zip directory: still their twin."""
    import shutil

    from textclf.runs import zip_signature

    run = tmp_path / "run"
    shutil.copytree(runs["ngram-mlp"], run)
    arrays = dict(np.load(run / TWIN_FILE))
    assert str(arrays["model"]).startswith("sha256:")
    arrays["model"] = np.array(zip_signature(run / "model.keras"))
    np.savez(run / TWIN_FILE, **arrays)
    assert twins.load(run) is not None
    arrays["model"] = np.array(zip_signature(runs["transformer"] / "model.keras"))  # another model's
    np.savez(run / TWIN_FILE, **arrays)
    assert twins.load(run) is None


def test_tflite_export_of_a_model_without_a_tflite_family_fails_before_tensorflow(runs, tmp_path):
    """The run's family (ngram) says there is no TFLite form: one line, no TensorFlow loaded first."""
    code = ("import sys; sys.argv = ['textclf', 'export', sys.argv[1], '--format', 'tflite', '--out', sys.argv[2]]\n"
            "from textclf.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    print('tensorflow' in sys.modules, e.code)")
    done = subprocess.run([sys.executable, "-c", code, str(runs["ngram-mlp"]), str(tmp_path / "t")],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[-2:] == ["False", "1"], done.stdout + done.stderr
    assert "no TFLite built-in kernel" in done.stderr and not (tmp_path / "t").exists()
