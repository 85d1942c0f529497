"""The transformer's twin and its TFLite export.

The twin: its classifier as a TFLite flatbuffer on token ids, run by LiteRT (`ai-edge-litert`, 0.1 s
to import), no TensorFlow; TextVectorization's tokenization in Python (ASCII-only lower-casing, its
punctuation deleted, split on ASCII whitespace, the vocabulary, the cut). The export: the same
flatbuffer with a signature, its vocabulary and the tokenization rules (TFLite has no string ops).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from textclf.textrules import vectorizer_tokens
from textclf.twins import quiet_stderr


def twin_arrays(model, train_texts: Sequence[str]) -> dict | None:
    """The arrays of a transformer's twin (its classifier as TFLite, its vocabulary), or None."""
    from textclf._tf import keras
    from textclf.twins import FORMAT, all_layers, tflite_flatbuffer

    layers = all_layers(model)
    vectorizer = layers["vectorizer"]
    if not isinstance(vectorizer, keras.layers.TextVectorization):
        return None
    config = vectorizer.get_config()
    lengths = [layer for layer in layers["text_to_ids"].layers if hasattr(layer, "max_length")]
    strip = getattr(sys.modules[type(vectorizer).__module__], "DEFAULT_STRIP_REGEX", None)
    if config.get("standardize") != "lower_and_strip_punctuation" or config.get("split") != "whitespace" \
            or config.get("output_mode") != "int" or config.get("ngrams") or len(lengths) != 1 \
            or not isinstance(strip, str):
        return None
    flatbuffer = tflite_flatbuffer(model.layers[-1], "transformer", signature=False)
    vocab = vectorizer.get_vocabulary()
    return {"punctuation": np.array(strip), "format": np.array(FORMAT), "kind": np.array("transformer"),
            "tflite": np.frombuffer(flatbuffer, np.uint8),
            "vocab": np.frombuffer("\n".join(vocab).encode("utf-8"), np.uint8),
            "max_length": np.array(int(lengths[0].max_length))}


class TransformerTwin:
    """TextVectorization + SequenceIds in Python, the classifier in LiteRT."""

    def __init__(self, a: dict) -> None:
        from ai_edge_litert.interpreter import Interpreter

        with quiet_stderr():  # LiteRT announces its XNNPACK delegate on stderr
            self.interpreter = Interpreter(model_content=bytes(a["tflite"]))
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.output = self.interpreter.get_output_details()[0]["index"]
        vocab = bytes(a["vocab"]).decode("utf-8").split("\n")
        self.vocab = {token: i for i, token in enumerate(vocab) if i > 1}  # 0 padding, 1 unknown
        self.max_length = int(a["max_length"])
        self.punctuation = re.compile(str(a["punctuation"]))  # deleted after lower-casing ASCII letters
        self.shape = None

    def ids(self, text: str) -> list[int]:
        ids = [self.vocab.get(token, 1) for token in vectorizer_tokens(text, self.punctuation)]
        return ids[: self.max_length] or [1]

    def __call__(self, texts: list[str]) -> np.ndarray:
        rows = [self.ids(t) for t in texts]
        batch = np.zeros((len(rows), max(len(r) for r in rows)), np.int32)
        for i, r in enumerate(rows):
            batch[i, : len(r)] = r
        if self.shape != batch.shape:
            self.interpreter.resize_tensor_input(self.input, batch.shape)
            with quiet_stderr():
                self.interpreter.allocate_tensors()
            self.shape = batch.shape
        self.interpreter.set_tensor(self.input, batch)
        self.interpreter.invoke()
        return np.array(self.interpreter.get_tensor(self.output), np.float32)


def write_tflite(model, labels: list[str], staging: Path, model_name: str) -> dict:
    """model.tflite on token ids with built-in ops only, plus vocab.txt and labels.txt.

    TFLite has no built-in string ops (lower-casing, splitting, lookup), so the exported
    graph starts at token ids; the app tokenizes with vocab.txt and the rules written
    to textclf-export.json (as TFLite's own text-classification apps do).
    """
    from textclf._tf import keras, tf
    from textclf.errors import ModelError
    from textclf.textrules import TOKENIZER_RULES
    from textclf.twins import tflite_flatbuffer

    try:
        text_to_ids = model.get_layer("text_to_ids")
    except ValueError:
        text_to_ids = None
    vectorizer = next((layer for layer in getattr(text_to_ids, "layers", [])
                       if isinstance(layer, keras.layers.TextVectorization)), None)
    if vectorizer is None:
        raise ModelError(f"TFLite export needs a model that tokenizes with TextVectorization (transformer); "
                         f"the {model_name or 'run'} model's tokenizer uses ops with no TFLite built-in kernel — "
                         "export it with --format saved_model instead")
    classifier = model.layers[-1]
    lengths = [layer for layer in text_to_ids.layers if hasattr(layer, "max_length")]
    max_length = int(lengths[0].max_length) if lengths else None

    flatbuffer = tflite_flatbuffer(classifier, model_name)
    (staging / "model.tflite").write_bytes(flatbuffer)
    (staging / "vocab.txt").write_text("\n".join(vectorizer.get_vocabulary()) + "\n", encoding="utf-8")
    (staging / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    cfg = vectorizer.get_config()
    ids = text_to_ids(tf.constant(TEST_TEXTS)).numpy()
    vectors = [{"text": text, "token_ids": [int(i) for i in row if i != 0] or [1]}
               for text, row in zip(TEST_TEXTS, ids)]
    return {"inputs": {"token_ids": "int32[batch, time], 0 = padding"},
            "outputs": {"probabilities": f"float32[batch, {len(labels)}]"},
            "tokenizer": {"vocab": "vocab.txt (line i = id i; 0 padding, 1 unknown)",
                          "standardize": cfg.get("standardize"), "split": cfg.get("split"),
                          "rules": TOKENIZER_RULES if cfg.get("standardize") == "lower_and_strip_punctuation"
                          and cfg.get("split") == "whitespace" else None,
                          "max_length": max_length, "empty_text": "one unknown id [1]",
                          "test_vectors": vectors}}


TEST_TEXTS = ["Stocks RALLY as oil falls!", "caf\u00e9 \u00c9COLE d\u00e9j\u00e0-vu",
              "no\u00a0break\u00a0spaces here", "tabs\tand\nnewlines", ""]
