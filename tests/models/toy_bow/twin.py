"""The toy family's twin: its vocabulary, embedding and dense layer in numpy."""

from __future__ import annotations

import re
import sys

import numpy as np

from textclf.textrules import vectorizer_tokens


def twin_arrays(model, train_texts) -> dict | None:
    from textclf.twins import FORMAT, all_layers

    layers = all_layers(model)
    vectorizer, probs = layers["vectorizer"], layers["probs"]
    activation = "sigmoid" if probs.activation.__name__ == "sigmoid" else "softmax"
    return {"format": np.array(FORMAT), "kind": np.array("toy_bow"),
            "vocab": np.array(vectorizer.get_vocabulary()),
            "punctuation": np.array(getattr(sys.modules[type(vectorizer).__module__], "DEFAULT_STRIP_REGEX")),
            "max_length": np.array(layers["sequence_ids"].max_length),
            "embedding": layers["embedding"].embeddings.numpy(), "kernel": probs.kernel.numpy(),
            "bias": probs.bias.numpy(), "activation": np.array(activation)}


class ToyBowTwin:
    def __init__(self, a: dict) -> None:
        self.vocab = {str(token): i for i, token in enumerate(a["vocab"]) if i > 1}  # 0 padding, 1 unknown
        self.punctuation = re.compile(str(a["punctuation"]))
        self.max_length = int(a["max_length"])
        self.embedding, self.kernel, self.bias = a["embedding"], a["kernel"], a["bias"]
        self.sigmoid = str(a["activation"]) == "sigmoid"

    def __call__(self, texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            ids = [self.vocab.get(t, 1) for t in vectorizer_tokens(text, self.punctuation)][: self.max_length] or [1]
            rows.append(self.embedding[ids].mean(axis=0))
        scores = np.stack(rows) @ self.kernel + self.bias
        if self.sigmoid:
            return (1 / (1 + np.exp(-scores))).astype(np.float32)
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
