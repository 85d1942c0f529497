"""The peer side of bench/peers.py; runs in the peers' own venv (no textclf, no TensorFlow).

    PEERS_PYTHON bench/peers_worker.py KIND CONFIG_JSON OUT_JSON

KIND is `svc` (scikit-learn TF-IDF + LinearSVC), `fasttext` (fasttext-wheel) or `hf` (the
Hugging Face Trainer fine-tuning a BERT checkpoint on PyTorch CPU). CONFIG_JSON names the
train and eval files (JSON lines of {"text", "label"}, written by bench/peers.py from
textclf's reader, so both sides see the same examples) and the settings. OUT_JSON gets
accuracy, macro-F1 and the seconds of each stage; the parent measures wall time and peak RSS.
"""

from __future__ import annotations

import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.perf_counter()


def read(path: str) -> tuple[list[str], list[int]]:
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts.append(row["text"])
            labels.append(int(row["label"]))
    return texts, labels


def scores(y_true, y_pred) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
    }


def svc(cfg: dict) -> dict:
    """TF-IDF of word 1-2-grams (sublinear tf) + LinearSVC: the first baseline practitioners try."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    (train_x, train_y), (eval_x, eval_y) = read(cfg["train"]), read(cfg["eval"])
    started = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    model = LinearSVC(random_state=cfg["seed"]).fit(vectorizer.fit_transform(train_x), train_y)
    train_seconds = time.perf_counter() - started
    return {**scores(eval_y, model.predict(vectorizer.transform(eval_x))), "train_seconds": train_seconds,
            "train_examples": len(train_x)}


_PUNCT = re.compile(r"([.!?,'/()\"])")


def _ft_text(text: str) -> str:
    """The fastText tutorial's preprocessing: punctuation split off, lower case, one line."""
    return " ".join(_PUNCT.sub(r" \1 ", text).lower().split())


def fasttext(cfg: dict) -> dict:
    """fastText supervised with `cfg["params"]`; the training file shuffled with the seed (its SGD reads in order)."""
    import fasttext as ft

    (train_x, train_y), (eval_x, eval_y) = read(cfg["train"]), read(cfg["eval"])
    rows = [f"__label__{y} {_ft_text(x)}" for x, y in zip(train_x, train_y)]
    random.Random(cfg["seed"]).shuffle(rows)
    with tempfile.TemporaryDirectory(prefix="peers-fasttext-") as tmp:
        path = Path(tmp) / "train.txt"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        started = time.perf_counter()
        model = ft.train_supervised(input=str(path), seed=cfg["seed"], thread=cfg.get("threads", 2), verbose=0,
                                    **cfg["params"])
        train_seconds = time.perf_counter() - started
    labels, _ = model.predict([_ft_text(x) for x in eval_x])
    predicted = [int(lab[0].removeprefix("__label__")) for lab in labels]
    return {**scores(eval_y, predicted), "train_seconds": train_seconds, "train_examples": len(train_x)}


def hf(cfg: dict) -> dict:
    """AutoModelForSequenceClassification + Trainer: AdamW, linear warmup then decay, dynamic padding."""
    import torch

    torch.set_num_threads(cfg.get("threads", 2))
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    imported = time.perf_counter()
    (train_x, train_y), (eval_x, eval_y) = read(cfg["train"]), read(cfg["eval"])
    tokenizer = AutoTokenizer.from_pretrained(cfg["model"])
    model = AutoModelForSequenceClassification.from_pretrained(cfg["model"], num_labels=cfg["num_labels"])
    loaded = time.perf_counter()

    def encode(texts, labels):
        enc = tokenizer(texts, truncation=True, max_length=cfg["max_length"])
        return [{"input_ids": i, "attention_mask": m, "token_type_ids": t, "labels": y}
                for i, m, t, y in zip(enc["input_ids"], enc["attention_mask"], enc["token_type_ids"], labels)]

    train_set, eval_set = encode(train_x, train_y), encode(eval_x, eval_y)
    tokenized = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="peers-hf-") as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=cfg["batch_size"], per_device_eval_batch_size=256,
            learning_rate=cfg["learning_rate"], weight_decay=cfg["weight_decay"], num_train_epochs=cfg["epochs"],
            lr_scheduler_type="linear", warmup_steps=cfg["warmup"],  # a float < 1: a fraction of the steps
            seed=cfg["seed"], use_cpu=True, eval_strategy="no", save_strategy="no", logging_strategy="no",
            report_to="none", disable_tqdm=True, dataloader_num_workers=0)
        trainer = Trainer(model=model, args=args, train_dataset=train_set,
                          data_collator=DataCollatorWithPadding(tokenizer))
        train_metrics = trainer.train().metrics
        eval_started = time.perf_counter()
        output = trainer.predict(eval_set)
        eval_seconds = time.perf_counter() - eval_started
    predicted = output.predictions.argmax(axis=-1).tolist()
    return {**scores(eval_y, predicted), "train_seconds": float(train_metrics["train_runtime"]),
            "train_examples": len(train_x) * cfg["epochs"], "import_seconds": imported - STARTED,
            "load_seconds": loaded - imported, "tokenize_seconds": tokenized - loaded, "eval_seconds": eval_seconds,
            "torch": torch.__version__, "transformers": __import__("transformers").__version__,
            "head": "BertForSequenceClassification (pooled output)", "precision": "float32"}


def main() -> None:
    kind, config, out = sys.argv[1:4]
    cfg = json.loads(Path(config).read_text(encoding="utf-8"))
    result = {"svc": svc, "fasttext": fasttext, "hf": hf}[kind](cfg)
    result["train_examples_per_second"] = result["train_examples"] / max(result["train_seconds"], 1e-9)
    Path(out).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    main()
