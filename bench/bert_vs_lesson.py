"""Benchmark: the lesson's BERT recipes as written vs textclf's BERT defaults, on ag7600.

The imported all-MiniLM-L6-v2 (../shared) stands in for the lesson's small_bert; the lesson's
own preprocessing model (bert_en_uncased_preprocess/3, padding to 128) is used for its
recipes. One run trains, on the same files:
  1. lesson frozen:    hub preprocess -> frozen encoder -> pooled_output -> dense; Adam, batch 128, 1 epoch
  2. textclf frozen:   `train-bert-frozen` defaults
  3. lesson fine-tune: the same model, encoder trainable, create_optimizer(3e-5, adamw, warmup 10%
                       of epochs*len(ds_train)), batch 128, 1 epoch (the lesson calls fit once)
  4. textclf fine-tune: `finetune-bert-adamw` defaults
and prints training examples/s (training batches only; for textclf frozen, feature extraction
included) and eval accuracy. Usage:

    .venv/bin/python bench/bert_vs_lesson.py [--only frozen|finetune] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ag7600 import ROOT, SHARED, save_result, write_split  # noqa: E402

from textclf._tf import keras, tf  # noqa: E402
from textclf.training import TrainTimer  # noqa: E402

MINILM = SHARED / "models" / "all-MiniLM-L6-v2"
LESSON_PREPROCESS = SHARED / "models" / "bert_en_uncased_preprocess_3"


def ensure_minilm(home: Path) -> Path:
    os.environ["TEXTCLF_HOME"] = str(home)
    from textclf.models import store
    from textclf.models.hf_import import import_hf

    found = store.find("minilm")
    return found if found is not None else import_hf(MINILM, "minilm")


def read(path: Path):
    ds = tf.data.experimental.CsvDataset(str(path), [tf.int32, tf.string, tf.string])
    return ds.map(lambda label, title, description: {"label": label - 1, "title": title,
                                                     "description": description}).cache()


def lesson_recipes(train_csv: Path, eval_csv: Path, encoder_dir: Path, only: str | None) -> list[dict]:
    """The lesson's cells 7-12, with tfds replaced by the same CSV files."""
    import tensorflow_hub as hub
    import tensorflow_text  # noqa: F401
    from official.nlp import optimization

    keras.utils.set_random_seed(42)
    ds_train, ds_test = read(train_csv), read(eval_csv)
    n_train = 6000

    def tupelize(x):
        return (x["title"] + " " + x["description"], x["label"])

    vectorizer = hub.KerasLayer(str(LESSON_PREPROCESS))
    bert = hub.KerasLayer(str(encoder_dir))
    inp = keras.Input(shape=(), dtype=tf.string)
    x = vectorizer(inp)
    x = bert(x)
    x = keras.layers.Dropout(0.1)(x["pooled_output"])
    out = keras.layers.Dense(4, activation="softmax")(x)
    model = keras.models.Model(inp, out)
    bert.trainable = False
    rows = []
    model.compile(loss="sparse_categorical_crossentropy", metrics=["acc"], optimizer="adam")
    timer = TrainTimer()
    model.fit(ds_train.map(tupelize).batch(128), validation_data=ds_test.map(tupelize).batch(128),
              callbacks=[timer], verbose=0)
    _, acc = model.evaluate(ds_test.map(tupelize).batch(128), verbose=0)
    rows.append({"recipe": "lesson frozen (pad 128, pooled_output, Adam, batch 128, 1 epoch)", "epochs": 1,
                 "train_examples_per_second": n_train / timer.train_seconds, "eval_accuracy": float(acc)})
    if only == "frozen":
        return rows
    bert.trainable = True
    epochs = 3
    opt = optimization.create_optimizer(init_lr=3e-5, num_train_steps=epochs * n_train,
                                        num_warmup_steps=0.1 * epochs * n_train, optimizer_type="adamw")
    model.compile(loss="sparse_categorical_crossentropy", metrics=["acc"], optimizer=opt)
    timer = TrainTimer()
    model.fit(ds_train.map(tupelize).batch(128), validation_data=ds_test.map(tupelize).batch(128),
              callbacks=[timer], verbose=0)
    _, acc = model.evaluate(ds_test.map(tupelize).batch(128), verbose=0)
    rows.append({"recipe": "lesson fine-tune (pad 128, create_optimizer adamw, batch 128, 1 epoch)",
                 "epochs": 1, "train_examples_per_second": n_train / timer.train_seconds, "eval_accuracy": float(acc)})
    return rows


def textclf_recipe(command: str, train_csv: Path, eval_csv: Path, runs_root: Path) -> dict:
    """Run a textclf preset exactly as the CLI does (in process) and read its metrics."""
    from typer.testing import CliRunner

    from textclf.cli import app

    result = CliRunner().invoke(app, [command, "--model", "minilm", "--data", f"csv:{train_csv}",
                                      "--eval-data", f"csv:{eval_csv}", "--runs-root", str(runs_root)])
    if result.exit_code != 0:
        raise SystemExit(f"{command} failed: {result.output[-2000:]}")
    run = (runs_root / "latest").resolve()
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    return {"recipe": f"textclf {command} (defaults)", "epochs": config["training"]["epochs"],
            "train_examples_per_second": metrics["train_examples_per_second"],
            "eval_accuracy": metrics["accuracy"], "run_dir": str(run), "config": config}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["frozen", "finetune"], default=None)
    parser.add_argument("--json", default=str(ROOT / "bench" / "out" / "bert_vs_lesson.json"))
    args = parser.parse_args()
    out = ROOT / "bench" / "out"
    train_csv, eval_csv = write_split(out / "ag7600")
    encoder_dir = ensure_minilm(out / "home") / "encoder"
    rows = []
    if args.only != "finetune":
        rows.append(textclf_recipe("train-bert-frozen", train_csv, eval_csv, out / "runs"))
    if args.only != "frozen":
        rows.append(textclf_recipe("finetune-bert-adamw", train_csv, eval_csv, out / "runs"))
    rows = lesson_recipes(train_csv, eval_csv, encoder_dir, args.only) + rows
    print(f"{'recipe':<74} {'epochs':>6} {'train ex/s':>10} {'eval acc':>9}")
    for r in rows:
        print(f"{r['recipe']:<74} {r['epochs']:>6} {r['train_examples_per_second']:>10,.1f} "
              f"{100 * r['eval_accuracy']:>8.2f}%")
    by = {r["recipe"]: r for r in rows}
    speedups = {}
    for kind, ours in (("frozen", "textclf train-bert-frozen (defaults)"), ("finetune", "textclf finetune-bert-adamw (defaults)")):
        lesson = next((r for r in rows if r["recipe"].startswith(f"lesson {'frozen' if kind == 'frozen' else 'fine-tune'}")), None)
        if lesson and ours in by:
            speedups[kind] = by[ours]["train_examples_per_second"] / lesson["train_examples_per_second"]
            print(f"speed-up {kind} (textclf / lesson): {speedups[kind]:.2f}x")
    save_result(args.json, "ag7600 BERT (imported all-MiniLM-L6-v2)", rows, speedups=speedups)


if __name__ == "__main__":
    main()
