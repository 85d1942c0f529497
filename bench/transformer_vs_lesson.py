"""Benchmark: the lesson's Transformer recipe as written vs textclf's default transformer.

Both train on the same ag7600 files in one run; the table shows training examples/s
(time spent on training batches only, validation excluded, same measurement for both)
and eval accuracy. Usage:

    .venv/bin/python bench/transformer_vs_lesson.py [--epochs N] [--json bench/out/transformer.json]

The lesson (../shared/docs/seed/transformers-lesson.tr.md) fits for one epoch; by default the
lesson recipe here trains for as many epochs as textclf's default so accuracies compare.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ag7600 import ROOT, save_result, write_split  # noqa: E402

from textclf._tf import keras, tf  # noqa: E402
from textclf.training import TrainTimer  # noqa: E402


# --- the lesson's code, as written (tf.keras there is Keras 2, i.e. tf_keras here) ----------
class TokenAndPositionEmbedding(keras.layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super(TokenAndPositionEmbedding, self).__init__()
        self.token_emb = keras.layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = keras.layers.Embedding(input_dim=maxlen, output_dim=embed_dim)
        self.maxlen = maxlen

    def call(self, x):
        maxlen = self.maxlen
        positions = tf.range(start=0, limit=maxlen, delta=1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions


class TransformerBlock(keras.layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super(TransformerBlock, self).__init__()
        self.att = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim, name="attn")
        self.ffn = keras.Sequential(
            [keras.layers.Dense(ff_dim, activation="relu"), keras.layers.Dense(embed_dim)]
        )
        self.layernorm1 = keras.layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = keras.layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = keras.layers.Dropout(rate)
        self.dropout2 = keras.layers.Dropout(rate)

    def call(self, inputs, training):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output, training=training)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output, training=training)
        return self.layernorm2(out1 + ffn_output)


def lesson_recipe(train_csv: Path, eval_csv: Path, epochs: int, seed: int) -> dict:
    """The lesson's cells 1-5 with tfds replaced by the same CSV files."""
    keras.utils.set_random_seed(seed)
    embed_dim, num_heads, ff_dim, maxlen, vocab_size = 32, 2, 32, 256, 20000

    def read(path):
        ds = tf.data.experimental.CsvDataset(str(path), [tf.int32, tf.string, tf.string])
        return ds.map(lambda label, title, description: {"label": label - 1, "title": title,
                                                         "description": description}).cache()

    ds_train, ds_test = read(train_csv), read(eval_csv)

    def extract_text(x):
        return x["title"] + " " + x["description"]

    def tupelize(x):
        return (extract_text(x), x["label"])

    model = keras.models.Sequential([
        keras.layers.TextVectorization(max_tokens=vocab_size, output_sequence_length=maxlen, input_shape=(1,)),
        TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim),
        TransformerBlock(embed_dim, num_heads, ff_dim),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dropout(0.1),
        keras.layers.Dense(20, activation="relu"),
        keras.layers.Dropout(0.1),
        keras.layers.Dense(4, activation="softmax"),
    ])
    model.layers[0].adapt(ds_train.map(extract_text))
    model.compile(loss="sparse_categorical_crossentropy", metrics=["acc"], optimizer="adam")
    timer = TrainTimer()
    start = time.perf_counter()
    model.fit(ds_train.map(tupelize).batch(128), validation_data=ds_test.map(tupelize).batch(128),
              epochs=epochs, callbacks=[timer], verbose=0)
    wall = time.perf_counter() - start
    _, acc = model.evaluate(ds_test.map(tupelize).batch(128), verbose=0)
    return {"recipe": "lesson transformer (maxlen 256, embed 32, batch 128, Adam)", "epochs": epochs,
            "train_examples_per_second": 6000 * epochs / timer.train_seconds, "eval_accuracy": float(acc),
            "fit_wall_seconds": wall}


def textclf_default(train_csv: Path, eval_csv: Path, runs_root: Path, overrides: dict) -> dict:
    from textclf.config import resolve_config
    from textclf.training import run_training

    config = resolve_config({"model": "transformer",
                             "data": {"train": f"csv:{train_csv}", "eval": f"csv:{eval_csv}"}}, overrides)
    start = time.perf_counter()
    result = run_training(config, runs_root=runs_root)
    return {"recipe": "textclf transformer (defaults)", "epochs": config.training.epochs,
            "train_examples_per_second": result.metrics["train_examples_per_second"],
            "eval_accuracy": result.metrics["accuracy"], "fit_wall_seconds": time.perf_counter() - start,
            "run_dir": str(result.run_dir), "config": config.to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="lesson epochs (default: textclf's)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "out" / "transformer_vs_lesson.json"))
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    train_csv, eval_csv = write_split(ROOT / "bench" / "out" / "ag7600")
    ours = textclf_default(train_csv, eval_csv, ROOT / "bench" / "out" / "runs", {})
    lesson = lesson_recipe(train_csv, eval_csv, args.epochs or ours["epochs"], args.seed)
    rows = [lesson, ours]
    speedup = ours["train_examples_per_second"] / lesson["train_examples_per_second"]
    print(f"{'recipe':<62} {'epochs':>6} {'train ex/s':>11} {'eval acc':>9}")
    for r in rows:
        print(f"{r['recipe']:<62} {r['epochs']:>6} {r['train_examples_per_second']:>11,.0f} "
              f"{100 * r['eval_accuracy']:>8.2f}%")
    print(f"speed-up (textclf / lesson): {speedup:.2f}x")
    save_result(args.json, "ag7600 transformer", rows, speedup=speedup)


if __name__ == "__main__":
    main()
