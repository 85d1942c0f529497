"""BERT family: Hugging Face import (numerics vs NumPy), hub loading, frozen/fine-tuned runs, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from typer.testing import CliRunner

from bert_numpy import bert_forward
from conftest import SHARED, WORDS, ag_rows, write_csv
from test_cli import assert_one_line_error
from textclf.cli import app
from textclf.models.saving import load_model

runner = CliRunner()
SENTENCES = ["Stocks rally as oil prices fall", "The striker scored twice!", "unaffable", "a"]


def make_vocab() -> list[str]:
    words = sorted({w for ws in WORDS.values() for w in ws} | {"the", "a", "as", "oil", "rally", "stocks", "fall"})
    pieces = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "!", ",", ".", "'", "$", "#", ";", "\\"] + pieces
              + [f"##{p}" for p in pieces] + words + ["un", "##aff", "##able", "##s", "##ed"]
              + [str(d) for d in range(10)] + [f"##{d}" for d in range(10)])
    return list(dict.fromkeys(tokens))


def make_checkpoint(d: Path, hidden=32, layers=2, heads=2, inner=48, seed=0) -> Path:
    """A tiny random BERT in Hugging Face layout (config.json, model.safetensors, vocab.txt)."""
    vocab = make_vocab()
    d.mkdir(parents=True, exist_ok=True)
    config = dict(model_type="bert", vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                  num_attention_heads=heads, intermediate_size=inner, hidden_act="gelu",
                  max_position_embeddings=64, type_vocab_size=2, layer_norm_eps=1e-12)
    (d / "config.json").write_text(json.dumps(config))
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n")
    rng = np.random.default_rng(seed)
    r = lambda *shape: (rng.standard_normal(shape) * 0.2).astype(np.float32)  # noqa: E731
    w = {
        "embeddings.word_embeddings.weight": r(len(vocab), hidden),
        "embeddings.position_embeddings.weight": r(64, hidden),
        "embeddings.token_type_embeddings.weight": r(2, hidden),
        "embeddings.LayerNorm.weight": 1 + r(hidden),
        "embeddings.LayerNorm.bias": r(hidden),
        "pooler.dense.weight": r(hidden, hidden),
        "pooler.dense.bias": r(hidden),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            w[f"{p}{name}.weight"], w[f"{p}{name}.bias"] = r(hidden, hidden), r(hidden)
        w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"] = r(inner, hidden), r(inner)
        w[p + "output.dense.weight"], w[p + "output.dense.bias"] = r(hidden, inner), r(hidden)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"{p}{name}.weight"], w[f"{p}{name}.bias"] = 1 + r(hidden), r(hidden)
    save_file({f"bert.{k}": v for k, v in w.items()}, str(d / "model.safetensors"))  # BertFor* prefix
    return d


def wordpiece(text: str, vocab: list[str]) -> list[int]:
    """Reference BERT tokenization: lower-case, split on spaces/punctuation, greedy longest-match."""
    index = {t: i for i, t in enumerate(vocab)}
    words = []
    for chunk in text.lower().split():
        word = ""
        for ch in chunk:
            if not ch.isalnum():
                words += [word, ch] if word else [ch]
                word = ""
            else:
                word += ch
        if word:
            words.append(word)
    ids = []
    for word in words:
        start, pieces = 0, []
        while start < len(word):
            end = len(word)
            while end > start and ((("##" if start else "") + word[start:end]) not in index):
                end -= 1
            if end == start:
                pieces = [index["[UNK]"]]
                break
            pieces.append(index[("##" if start else "") + word[start:end]])
            start = end
        ids += pieces
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """TEXTCLF_HOME with the tiny checkpoint imported as `tiny-bert` through the CLI."""
    root = tmp_path_factory.mktemp("bert")
    mp = pytest.MonkeyPatch()
    mp.setenv("TEXTCLF_HOME", str(root / "home"))
    ckpt = make_checkpoint(root / "hf")
    result = runner.invoke(app, ["models", "import-hf", str(ckpt), "--name", "tiny-bert"])
    assert result.exit_code == 0, result.output
    steps = [line for line in result.stderr.splitlines() if line.endswith("…")]  # each step named as it starts
    assert steps == [f"reading the weights in {ckpt}…", "building the encoder and copying its weights…",
                     "exporting the encoder as a SavedModel…", "exporting the preprocessing model…"]
    yield root, ckpt
    mp.undo()


def test_import_exports_tfhub_format_with_matching_numerics_and_token_ids(store):
    root, ckpt = store
    import tensorflow_hub as hub

    from textclf._tf import tf

    folder = root / "home" / "models" / "tiny-bert"
    assert json.loads((folder / "textclf-model.json").read_text())["num_layers"] == 2
    preprocess = hub.KerasLayer(str(folder / "preprocess"))
    encoder = hub.KerasLayer(str(folder / "encoder"))
    inputs = preprocess(tf.constant(SENTENCES))
    vocab = (ckpt / "vocab.txt").read_text().splitlines()
    for row, text in zip(inputs["input_word_ids"].numpy(), SENTENCES):
        expected = [vocab.index("[CLS]")] + wordpiece(text, vocab) + [vocab.index("[SEP]")]
        assert row[: len(expected)].tolist() == expected and not row[len(expected):].any()
    seq = encoder(inputs)["sequence_output"].numpy()
    ids, mask = inputs["input_word_ids"].numpy(), inputs["input_mask"].numpy()
    n = int(mask.sum(1).max())
    config = json.loads((ckpt / "config.json").read_text())
    reference = bert_forward(load_file(str(ckpt / "model.safetensors")), config, ids[:, :n], mask[:, :n])
    assert np.abs((seq[:, :n] - reference) * mask[:, :n, None]).max() < 1e-4


def test_dynamic_packing_equals_the_hub_preprocessor(store):
    root, _ = store
    import tensorflow_hub as hub

    from textclf._tf import tf
    from textclf.models.bert.model import build_bert
    from textclf.models.bert.params import BertParams

    built = build_bert(BertParams(encoder="tiny-bert", max_length=8), num_classes=2)
    ours = built.text_to_ids(tf.constant(SENTENCES)).numpy()
    ref = hub.load(str(root / "home" / "models" / "tiny-bert" / "preprocess"))
    packed = hub.KerasLayer(ref.bert_pack_inputs, arguments={"seq_length": 8})([ref.tokenize(tf.constant(SENTENCES))])
    expected = packed["input_word_ids"].numpy()
    assert expected.shape[1] == 8 and ours.shape[1] <= 8
    np.testing.assert_array_equal(ours, expected[:, : ours.shape[1]])
    assert not expected[:, ours.shape[1]:].any()  # only padding was left out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("bertdata")
    return write_csv(d / "train.csv", ag_rows(16, seed=1)), write_csv(d / "eval.csv", ag_rows(4, seed=2))


def _encoder_weights(run_dir: Path):
    model = load_model(run_dir)
    return [w.numpy() for w in model.get_layer("bert_classifier").get_layer("bert_features").get_layer("bert").weights]


@pytest.mark.parametrize("command, frozen", [("train-bert-frozen", True), ("finetune-bert-adamw", False)])
def test_frozen_and_finetuned_runs(store, data, tmp_path, command, frozen, monkeypatch):
    from textclf.cli._render import ProgressListener

    monkeypatch.setattr(ProgressListener, "WORK_EVERY", 0.0)  # a progress line per batch of a long step
    root, _ = store
    train, evaluation = data
    runs = tmp_path / "runs"
    result = runner.invoke(app, [command, "--model", "tiny-bert", "--data", f"csv:{train}", "--eval-data",
                                 f"csv:{evaluation}", "--epochs", "1", "--batch-size", "16", "--learning-rate", "1e-2",
                                 "--max-length", "24", "--runs-root", str(runs)])
    assert result.exit_code == 0, result.output
    config = json.loads((runs / "latest" / "config.json").read_text())
    assert config["model_params"]["trainable"] is (not frozen)
    assert config["training"]["optimizer"] == ("adam" if frozen else "adamw")
    metrics = json.loads((runs / "latest" / "metrics.json").read_text())
    assert metrics["frozen_features_cached"] is frozen
    # two runs of one encoder are told apart by name
    assert (runs / "latest").resolve().name.endswith("-tiny-bert-frozen" if frozen else "-tiny-bert-finetune")
    progress = [ln for ln in result.output.splitlines() if ln.startswith("computing the frozen features: ")]
    if frozen:  # the encoder's pass over every text (train, validation, eval) reports how far it is
        total = metrics["train_examples"] + metrics["validation_examples"] + metrics["examples"]
        assert progress and progress[-1].startswith(f"computing the frozen features: {total:,}/{total:,} (100%)")
    else:
        assert not progress
    from textclf.runtime import cpu_bf16_features

    precision = json.loads((runs / "latest" / "run.json").read_text())["runtime"]["precision"]
    assert precision == ("mixed_bfloat16" if cpu_bf16_features() else "float32")  # --precision auto
    import tensorflow_hub as hub

    original = [w.numpy() for w in hub.KerasLayer(str(root / "home" / "models" / "tiny-bert" / "encoder")).weights]
    trained = _encoder_weights(runs / "latest")
    same = all(np.array_equal(a, b) for a, b in zip(sorted(original, key=np.size), sorted(trained, key=np.size)))
    assert same is frozen
    from textclf._tf import keras

    plain = keras.models.load_model(runs / "latest" / "model.keras", compile=False)  # Keras's own loader
    fast = load_model(runs / "latest")  # textclf's: the weights copied out of the zip first
    assert [w.name for w in fast.weights] == [w.name for w in plain.weights]
    assert all(np.array_equal(a, b) for a, b in zip(fast.get_weights(), plain.get_weights()))
    predicted = runner.invoke(app, ["predict", "goal match striker", "--json", "--runs-root", str(runs)])
    assert predicted.exit_code == 0 and json.loads(predicted.stdout)["label"] in (
        "World",
        "Sports",
        "Business",
        "Sci/Tech",
    )
    # `predict` answered with the run's frozen-graph twin, which gives the Keras model's probabilities
    from textclf import twins
    from textclf.prediction import Predictor

    run_dir = (runs / "latest").resolve()
    twin = twins.load(run_dir)
    assert twin is not None and twin.kind == "graph"
    texts = ["goal match striker", *twins.CHECK_TEXTS]
    assert np.abs(twin.probabilities(texts) - Predictor(run_dir).probabilities(texts)).max() <= twins.TOLERANCE
    # a BERT run predicts in batches of about 1,024 tokens (predict_tokens), each text at most its max_length:
    # cut finer or not at all, the same answers
    fine = Predictor(run_dir, use_twin=True)
    assert (fine.batch_tokens, fine.longest) == (1024, json.loads((run_dir / "config.json").read_text())[
        "model_params"]["max_length"]) and fine.longest > 0
    many = [f"goal {'match ' * (i % 9)}striker {i}" for i in range(40)]
    whole = fine.probabilities(many)
    fine.batch_tokens = 8
    np.testing.assert_allclose(fine.probabilities(many), whole, atol=1e-6)
    # a run away from its imported model's store keeps its batches: run.json names the family
    from textclf.models.catalog import family_of

    assert json.loads((run_dir / "run.json").read_text())["family"] == "bert"
    with monkeypatch.context() as away_from_store:
        away_from_store.setenv("TEXTCLF_HOME", str(tmp_path / "elsewhere"))
        assert family_of("tiny-bert") is None  # the model is unknown here
        away = Predictor(run_dir, use_twin=True)
        assert (away.batch_tokens, away.longest) == (1024, fine.longest)
        np.testing.assert_allclose(away.probabilities(many), whole, atol=1e-6)
    report = runner.invoke(app, ["evaluate", "--json", "--runs-root", str(runs)])
    assert json.loads(report.stdout)["examples"] == 16
    # the reloaded run (its encoder's own checkpoint not read, every weight from model.keras)
    # predicts what the trained model did
    assert json.loads(report.stdout)["accuracy"] == pytest.approx(metrics["accuracy"])


def _corrupt(ckpt: Path, kind: str) -> None:
    if kind == "missing":
        (ckpt / "model.safetensors").unlink()
    elif kind == "shape":
        w = load_file(str(ckpt / "model.safetensors"))
        w["bert.encoder.layer.1.intermediate.dense.weight"] = w["bert.encoder.layer.1.intermediate.dense.weight"][:10]
        save_file(w, str(ckpt / "model.safetensors"))
    elif kind == "roberta":
        cfg = json.loads((ckpt / "config.json").read_text())
        (ckpt / "config.json").write_text(json.dumps({**cfg, "model_type": "roberta"}))


@pytest.mark.parametrize("kind, fragment", [
    ("missing", "missing model.safetensors"),
    ("shape", "encoder.layer.1.intermediate.dense.weight has shape (10, 32), config.json implies (48, 32)"),
    ("roberta", "model_type is 'roberta'; only BERT checkpoints"),
])
def test_bad_checkpoints_leave_nothing_in_the_store(tmp_path, monkeypatch, kind, fragment):
    monkeypatch.setenv("TEXTCLF_HOME", str(tmp_path / "home"))
    ckpt = make_checkpoint(tmp_path / "hf")
    _corrupt(ckpt, kind)
    assert_one_line_error(runner.invoke(app, ["models", "import-hf", str(ckpt), "--name", "broken"]), fragment, code=1)
    models = tmp_path / "home" / "models"
    assert not models.exists() or not any(models.iterdir())


def test_import_keeps_only_the_first_layers_asked_for(tmp_path, monkeypatch, store):
    import tensorflow_hub as hub

    from textclf._tf import tf

    monkeypatch.setenv("TEXTCLF_HOME", str(tmp_path / "home"))
    ckpt = store[1]
    assert_one_line_error(runner.invoke(app, ["models", "import-hf", str(ckpt), "--name", "deep", "--layers", "3"]),
                          "--layers 3: ", "has 2 layers", code=1)
    assert_one_line_error(runner.invoke(app, ["models", "import-hf", str(ckpt), "--name", "none", "--layers", "0"]),
                          "--layers must be at least 1", code=1)
    assert_one_line_error(runner.invoke(app, ["models", "import-hf", str(ckpt), "--name", "n" * 101]),
                          "bad model name 'nnn", "at most 100", code=1)  # a folder name, not an OSError
    assert not (tmp_path / "home" / "models").exists() or not any((tmp_path / "home" / "models").iterdir())
    result = runner.invoke(app, ["models", "import-hf", str(ckpt), "--name", "tiny-bert-l1", "--layers", "1"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "home" / "models" / "tiny-bert-l1"
    meta = json.loads((folder / "textclf-model.json").read_text())
    assert meta["num_layers"] == 1 and meta["source_layers"] == 2
    inputs = hub.KerasLayer(str(folder / "preprocess"))(tf.constant(SENTENCES))
    seq = hub.KerasLayer(str(folder / "encoder"))(inputs)["sequence_output"].numpy()
    ids, mask = inputs["input_word_ids"].numpy(), inputs["input_mask"].numpy()
    n = int(mask.sum(1).max())
    config = {**json.loads((ckpt / "config.json").read_text()), "num_hidden_layers": 1}
    reference = bert_forward(load_file(str(ckpt / "model.safetensors")), config, ids[:, :n], mask[:, :n])
    assert np.abs((seq[:, :n] - reference) * mask[:, :n, None]).max() < 1e-4
    two = {**config, "num_hidden_layers": 2}  # and not the whole encoder's output
    whole = bert_forward(load_file(str(ckpt / "model.safetensors")), two, ids[:, :n], mask[:, :n])
    assert np.abs((seq[:, :n] - whole) * mask[:, :n, None]).max() > 1e-2


def test_import_errors_for_names_and_folders(tmp_path, monkeypatch, store):
    monkeypatch.setenv("TEXTCLF_HOME", str(tmp_path / "home"))
    assert_one_line_error(runner.invoke(app, ["models", "import-hf", str(tmp_path / "nope"), "--name", "x"]),
                          "checkpoint directory not found")
    assert_one_line_error(runner.invoke(app, ["models", "import-hf", str(store[1]), "--name", "transformer"]),
                          "is a built-in model name")


def test_unreachable_hub_handle_is_one_line(tmp_path, data):
    train, _ = data
    result = runner.invoke(app, ["train-bert-frozen", "--model", "bert", "--encoder", "https://tfhub.invalid/x/1",
                                 "--data", f"csv:{train}", "--runs-root", str(tmp_path / "runs")])
    assert_one_line_error(result, "cannot fetch TF Hub encoder https://tfhub.invalid/x/1",
                          "textclf models import-hf", code=1)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.skipif(not (SHARED / "models/all-MiniLM-L6-v2/model.safetensors").exists(),
                    reason="../shared MiniLM checkpoint absent")
def test_real_minilm_import_matches_numpy(tmp_path, monkeypatch):
    monkeypatch.setenv("TEXTCLF_HOME", str(tmp_path / "home"))
    src = SHARED / "models/all-MiniLM-L6-v2"
    result = runner.invoke(app, ["models", "import-hf", str(src), "--name", "minilm"])
    assert result.exit_code == 0, result.output
    import tensorflow_hub as hub

    from textclf._tf import tf

    folder = tmp_path / "home" / "models" / "minilm"
    inputs = hub.KerasLayer(str(folder / "preprocess"))(tf.constant(["I love transformers", "Oil prices jump"]))
    assert inputs["input_word_ids"].numpy()[0][:5].tolist() == [101, 1045, 2293, 19081, 102]  # as in the lesson
    seq = hub.KerasLayer(str(folder / "encoder"))(inputs)["sequence_output"].numpy()
    mask = inputs["input_mask"].numpy()
    n = int(mask.sum(1).max())
    ref = bert_forward(load_file(str(src / "model.safetensors")), json.loads((src / "config.json").read_text()),
                       inputs["input_word_ids"].numpy()[:, :n], mask[:, :n])
    assert np.abs((seq[:, :n] - ref) * mask[:, :n, None]).max() < 1e-4


def test_relative_textclf_home_is_recorded_absolute(tmp_path, monkeypatch):
    """Runs record model folders; a relative TEXTCLF_HOME must not tie them to the cwd."""
    from textclf.models import store

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTCLF_HOME", "rel/home")
    assert store.models_dir() == tmp_path / "rel" / "home" / "models"


def _shared_texts() -> list[str]:
    """Every labelled text of the shared data sets: AG News test (7,600) and SST-2 train + dev (68,221)."""
    from textclf.data.sources import load_examples

    specs = [f"csv:{SHARED / 'data/ag_news/test.csv.gz'}", f"tsv:{SHARED / 'data/sst2/train.tsv.gz'}",
             f"tsv:{SHARED / 'data/sst2/dev.tsv'}"]
    return [t for spec in specs for t in load_examples(spec).texts.astype(str).tolist()]


def _ids(layer, texts: list[str]) -> list[list[int]]:
    from textclf._tf import tf

    return [row for i in range(0, len(texts), 4096) for row in layer(tf.constant(texts[i:i + 4096])).to_list()]


@pytest.mark.skipif(not (SHARED / "models/bert_en_uncased_preprocess_3").exists()
                    or not (SHARED / "data/sst2/train.tsv.gz").exists(), reason="../shared data/models absent")
def test_fast_tokenizer_equals_the_lesson_preprocessor_on_all_shared_data():
    """FastBertTokenizer on bert_en_uncased_preprocess/3's vocab gives its `tokenize` ids, text for text."""
    from textclf.models.bert.model import wordpiece_layer

    preprocess = str(SHARED / "models/bert_en_uncased_preprocess_3")
    fast, hub_tok = wordpiece_layer(preprocess, "fast"), wordpiece_layer(preprocess, "hub")
    assert fast.lower_case
    texts = _shared_texts()
    assert len(texts) == 7600 + 67349 + 872
    fast_ids, hub_ids = _ids(fast, texts), _ids(hub_tok, texts)
    mismatched = [t for t, a, b in zip(texts, fast_ids, hub_ids) if a != b]
    assert not mismatched, mismatched[:3]


def test_fast_tokenizer_follows_a_cased_preprocessor(tmp_path):
    """A cased preprocessing model (do_lower_case=False) is detected and matched, accents and all."""
    from official.nlp.tools import export_tfhub_lib

    from textclf.models.bert.model import wordpiece_layer

    vocab = make_vocab() + ["Stocks", "Oil", "café", "##é"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    export_tfhub_lib.export_preprocessing(str(tmp_path / "cased"), vocab_file=str(tmp_path / "vocab.txt"),
                                          do_lower_case=False, tokenize_with_offsets=False, default_seq_length=16)
    fast = wordpiece_layer(str(tmp_path / "cased"), "fast")
    assert not fast.lower_case
    texts = SENTENCES + ["Stocks and OIL, café Café", "ÉCOLE naïve", "  ", "Oil!!! #1 $5"]
    assert _ids(fast, texts) == _ids(wordpiece_layer(str(tmp_path / "cased"), "hub"), texts)
    assert _ids(fast, ["Stocks stocks"])[0][0] != _ids(fast, ["Stocks stocks"])[0][1]


@pytest.mark.parametrize("command", ["train-bert-frozen", "finetune-bert-adamw"])
def test_multilabel_frozen_and_finetuned(store, tmp_path, command):
    """BERT heads become a sigmoid per label on multi-label data, with thresholds saved and exported."""
    from test_multilabel import pairs_jsonl

    train, evaluation = pairs_jsonl(tmp_path / "train.jsonl", 16, 1), pairs_jsonl(tmp_path / "eval.jsonl", 4, 2)
    runs = tmp_path / "runs"
    result = runner.invoke(app, [command, "--model", "tiny-bert", "--data", f"jsonl:{train}", "--eval-data",
                                 f"jsonl:{evaluation}", "--label-field", "labels", "--epochs", "1", "--batch-size",
                                 "16", "--learning-rate", "1e-2", "--max-length", "24", "--runs-root", str(runs)])
    assert result.exit_code == 0, result.output
    run = (runs / "latest").resolve()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["multilabel"] and 0 <= metrics["micro_f1"] <= 1 and metrics["validation_examples"] > 0
    model = load_model(run)
    assert model.get_layer("bert_classifier").get_layer("head").layers[-1].get_config()["activation"] == "sigmoid"
    probs = model(tf_constant(["goal match striker", "stocks profit"])).numpy()
    assert probs.shape == (2, 4) and not np.allclose(probs.sum(axis=1), 1.0)  # independent per label
    answer = json.loads(runner.invoke(app, ["predict", "goal match", "--json", "--runs-root", str(runs)]).stdout)
    assert isinstance(answer["labels"], list)
    out = tmp_path / "export"
    assert runner.invoke(app, ["export", "--out", str(out), "--runs-root", str(runs)]).exit_code == 0
    assert json.loads((out / "textclf-export.json").read_text())["multilabel"] is True


def tf_constant(texts):
    from textclf._tf import tf

    return tf.constant(texts)


def test_word_vectors_are_the_mean_of_each_words_wordpiece_rows(store):
    from textclf.models.bert.model import word_vectors
    from textclf.models.bert.params import BertParams

    _, ckpt = store
    vocab = (ckpt / "vocab.txt").read_text().splitlines()
    table = load_file(str(ckpt / "model.safetensors"))["bert.embeddings.word_embeddings.weight"]
    words = ["stocks", "unaffable", "striker", "", "€"]  # "€": [UNK] only
    vectors = word_vectors(BertParams(encoder="tiny-bert"), words)
    for word, row in zip(words[:3], vectors):
        assert np.allclose(row, table[wordpiece(word, vocab)].mean(axis=0), atol=1e-6)
    assert len(wordpiece("unaffable", vocab)) == 3  # a word of several pieces averages them
    assert np.isnan(vectors[3:]).all()


def test_a_students_word_embeddings_start_from_its_bert_teachers(store, data, tmp_path):
    """The student's token embedding rows are the teacher's word vectors projected on their principal components
    (checked on a student trained at a negligible learning rate, so its saved rows are its first ones)."""
    from textclf.distillation import project
    from textclf.models.bert.model import word_vectors
    from textclf.models.bert.params import BertParams

    train, evaluation = data
    runs = tmp_path / "runs"
    assert runner.invoke(app, ["train-bert-frozen", "--model", "tiny-bert", "--data", f"csv:{train}", "--eval-data",
                               f"csv:{evaluation}", "--epochs", "1", "--max-length", "24",
                               "--runs-root", str(runs)]).exit_code == 0
    tiny = ["--set", "model_params.embed_dim=8", "--set", "model_params.num_heads=1",
            "--set", "model_params.ff_dim=8", "--set", "model_params.max_length=16", "--epochs", "1",
            "--set", "training.learning_rate=1e-12", "--augment", "0"]
    result = runner.invoke(app, ["distill", "latest", "--student", "transformer", *tiny, "--embeddings", "teacher",
                                 "--runs-root", str(runs), "--run-dir", str(tmp_path / "teacher")])
    assert result.exit_code == 0, result.output
    notes = [ln for ln in result.output.splitlines() if ln.startswith("word embeddings:")]
    model = load_model(tmp_path / "teacher")
    vocabulary = model.get_layer("text_to_ids").get_layer("vectorizer").get_vocabulary()
    saved = model.get_layer("transformer").get_layer("embedding").token_emb.embeddings.numpy()
    vectors = word_vectors(BertParams(encoder="tiny-bert"), ["", ""] + vocabulary[2:])
    known = ~np.isnan(vectors).any(axis=1)
    assert notes == [f"word embeddings: {known.sum():,} of {len(vocabulary):,} words start from the teacher's "
                     "(tiny-bert)"]
    expected = project(vectors, np.random.default_rng(0).uniform(-1, 1, saved.shape))  # the same rows up to the scale
    cosine = np.sum(saved[known] * expected[known], axis=1) / (
        np.linalg.norm(saved[known], axis=1) * np.linalg.norm(expected[known], axis=1))
    assert known.sum() > 20 and cosine.min() > 0.999
    # the BERT teacher's imported model gone from the store: loading the run says so in one line
    home = Path(os.environ["TEXTCLF_HOME"]) / "models"
    (home / "tiny-bert").rename(home.parent / "tiny-bert.away")
    try:
        assert_one_line_error(runner.invoke(app, ["evaluate", str((runs / "latest").resolve())]),
                              "built on the imported model 'tiny-bert', which is not in this model store", "import-hf",
                              code=1)
    finally:
        (home.parent / "tiny-bert.away").rename(home / "tiny-bert")
