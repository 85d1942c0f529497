"""The default model without TensorFlow: numpy features chunk by chunk, LIBLINEAR fits that repeat exactly,
and a `textclf train` that never imports TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import ag_rows, write_csv

TEXTS = ["Stocks rally as oil falls", "caf\u00e9 \u00c9COLE d\u00e9j\u00e0-vu", "nul\x00 ends it", "mark \x01 inside",
         "\u039f\u0394\u039f\u03a3 \u03a3\u0391\u03a3", "tabs\tand\nnewlines", "?!...", "a " * 300, "x"] * 7


def _fit(texts, budget):
    from textclf.models.ngram import features as nf

    return nf.fit_vocabulary(texts, ngrams=2, char_ngrams=5, min_df=1, max_tokens=0, char_min_df=2,
                             char_max_tokens=0, budget=budget)


def test_rows_are_the_same_whatever_the_chunk_size():
    """Memory is bounded by chunks of text; the rows must not depend on where the chunks are cut (one text
    per chunk, a few, all), nor on a chunk holding a NUL or the marker the joined path uses."""
    from textclf.models.ngram import features as nf

    texts = TEXTS + [" ".join(row[1:]) for row in ag_rows(20)]
    vocab, rows = _fit(texts, budget=1 << 30)
    for budget in (1, 50, 700):
        v, r = _fit(texts, budget)
        assert np.array_equal(v.keys, vocab.keys) and np.array_equal(v.idf, vocab.idf)
        assert abs(r - rows).max() == 0 and r.shape == rows.shape == (len(texts), vocab.width)
        assert abs(nf.tfidf_rows(texts, v, budget=budget) - rows).max() < 1e-6
    # rows of texts seen alone equal their rows among others (per-row normalisation, no batch effects)
    alone = nf.tfidf_rows([texts[0]], vocab)
    assert abs(alone - rows[0]).max() < 1e-6


def test_rows_counted_per_distinct_token_equal_rows_counted_per_occurrence():
    """Character n-grams are counted once per distinct token and summed per text (a sparse product); the
    rows must be the ones counted n-gram occurrence by occurrence (text_keys, compared with TensorFlow's
    keys in test_ngram.py)."""
    from textclf.models.ngram import features as nf

    texts = TEXTS + [" ".join(row[1:]) * 3 for row in ag_rows(15)]
    vocab, rows = _fit(texts, budget=1 << 30)
    keys, text_of = nf.text_keys(texts, 2, 5, nf.WordHashes(vocab.hashes.table), only_known_words=True)
    ids = nf._ids(keys, vocab)
    hit = ids >= 0
    expected = nf._csr(text_of[hit], ids[hit], np.ones(int(hit.sum()), np.int32), len(texts), vocab)
    assert rows.nnz == expected.nnz > 0 and abs(rows - expected).max() < 1e-6


def test_a_fit_gives_the_same_weights_every_time():
    """liblinear's solver draws from a generator inside the library; each fit runs in a fresh process so
    one seed gives one model, whatever ran before in this process."""
    from textclf.models.ngram.params import NgramParams
    from textclf.models.ngram.solver import fit_linear

    rows = ag_rows(30, seed=4)
    texts = np.array([f"{t} {d}" for _, t, d in rows], dtype=object)
    labels = np.array([int(lab) - 1 for lab, _, _ in rows])
    held = np.zeros(len(labels), bool)
    held[::10] = True
    params = NgramParams(solver="liblinear", loss="squared_hinge")
    first = fit_linear(params, texts, labels, 4, held)
    second = fit_linear(params, texts, labels, 4, held)
    assert first["c"] == second["c"] and first["history"] == second["history"]
    assert np.array_equal(first["arrays"]["kernel_0"], second["arrays"]["kernel_0"])
    assert first["arrays"]["kernel_0"].shape == (len(first["arrays"]["keys"]) + 2, 4)


def test_the_default_trains_evaluates_and_predicts_without_importing_tensorflow(tmp_path):
    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(40, seed=1))
    evaluation = write_csv(tmp_path / "ag" / "eval.csv", ag_rows(10, seed=2))
    runs = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def textclf(*args):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "textclf", *map(str, args)],
                              capture_output=True, text=True, env=env, timeout=300)
        imported = {ln.rsplit("|", 1)[-1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")}
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert not {m for m in imported if m.split(".")[0] in ("tensorflow", "tf_keras", "keras")}, (
            "TensorFlow imported"
        )
        return proc.stdout

    textclf("train", "--data", f"csv:{train}", "--eval-data", f"csv:{evaluation}", "--runs-root", runs)
    run = (runs / "latest").resolve()
    assert (run / "model-lite.npz").exists() and not (run / "model.keras").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["solver"] == "liblinear" and metrics["accuracy"] > 0.9
    evaluated = json.loads(textclf("evaluate", "--json", "--runs-root", runs))
    assert evaluated["accuracy"] == metrics["accuracy"]  # one number per run and data
    answer = json.loads(textclf("predict", "--json", "--runs-root", runs, "stocks profit shares"))
    assert answer["label"] == "Business"


def test_a_damaged_native_model_is_one_line_everywhere(tmp_path):
    from conftest import assert_one_line_error, cli

    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(20, seed=1))
    runs = tmp_path / "runs"
    assert cli("train", "--data", f"csv:{train}", "--runs-root", runs).exit_code == 0
    model = (runs / "latest").resolve() / "model-lite.npz"
    whole = model.read_bytes()
    model.write_bytes(whole[: len(whole) // 3])  # cut short
    for args in (["evaluate"], ["predict", "stocks"], ["export", "--format", "saved_model", "--out", tmp_path / "x"]):
        assert_one_line_error(cli(*args, "--runs-root", runs), "model file is missing or damaged")
    assert not (tmp_path / "x").exists()


def test_rows_are_laid_out_for_liblinear_as_its_binding_lays_them_out(monkeypatch):
    """_convert makes the binding's own layout (each row's nodes, the bias node, a -1 terminator) with numpy,
    block by block; row by row it must equal the binding's (empty rows and block edges included)."""
    import scipy.sparse
    from liblinear.liblinear import problem

    from textclf.models.ngram import solver as linear

    def nodes(prob, i):
        out, j = [], 0
        while True:
            node = prob.x[i][j]
            out.append((node.index, node.value if node.index != -1 else 0.0))
            if node.index == -1:
                return out
            j += 1

    x = scipy.sparse.random(300, 50, density=0.1, format="csr", random_state=1, dtype=np.float32)
    x = scipy.sparse.vstack([x[:10], scipy.sparse.csr_matrix((2, 50), dtype=np.float32), x[10:]]).tocsr()
    monkeypatch.setattr(linear, "CONVERT_BLOCK", 17)  # many blocks, some cutting inside a row's budget
    ours, theirs = linear._convert(x), problem(np.zeros(x.shape[0]), x, bias=1)
    assert (ours.l, ours.n, ours.bias) == (theirs.l, theirs.n, theirs.bias)
    assert all(nodes(ours, i) == nodes(theirs, i) for i in range(x.shape[0]))
