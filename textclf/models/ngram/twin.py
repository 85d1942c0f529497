"""The n-gram family's twin: its TF-IDF features and dense layers in numpy (no TensorFlow to predict).

`twin_arrays` reads the arrays from the Keras model (TensorFlow loaded: when a run finishes);
`NgramTwin` answers texts from them. `tf.strings.lower(encoding="utf-8")` is Python's `str.lower`
except for ICU's kept letters and NUL (textclf.textrules); words are hashed through the FarmHash
fingerprints of the training texts' words, stored in the twin (a word outside them is in no known
n-gram, so it adds nothing).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def twin_arrays(model, train_texts: Sequence[str]) -> dict | None:
    """The arrays of an n-gram model's twin, or None when the model is not one this twin can answer."""
    from textclf._tf import keras, tf
    from textclf.models.base import TemperatureScaling
    from textclf.models.ngram.model import ScaledSoftmax, SparseDense
    from textclf.textrules import PUNCTUATION
    from textclf.twins import FORMAT, all_layers

    layers = all_layers(model)

    keys, lookup, tfidf = layers["NgramKeys"], layers.get("NgramIds"), layers.get("TfidfBag")
    if lookup is None or tfidf is None or keys.ngrams < 1:
        return None
    # The training words, as the model's word hashing sees them (the model's own ops).
    lowered = tf.strings.lower(tf.constant([str(t) for t in train_texts]), encoding="utf-8")
    words = tf.strings.split(tf.strings.regex_replace(lowered, PUNCTUATION, " ")).flat_values
    words, _ = tf.unique(words)
    hashes = tf.strings.to_hash_bucket_fast(words, 1 << 62).numpy()
    words = [w.decode("utf-8") for w in words.numpy()]
    head = layers.get("head")
    if head is None:
        return None
    dense = [layer for layer in head.layers if isinstance(layer, (SparseDense, keras.layers.Dense))]
    if not dense or not isinstance(dense[0], SparseDense) or any(
            isinstance(layer, SparseDense) for layer in dense[1:]):
        return None
    arrays = {"format": np.array(FORMAT), "kind": np.array("ngram"), "ngrams": np.array(keys.ngrams),
              "char_ngrams": np.array(keys.char_ngrams), "punctuation": np.array(PUNCTUATION),
              "keys": lookup.keys.numpy(),
              "idf": tfidf.idf.numpy(), "char_start": np.array(tfidf.char_start),
              "words": np.frombuffer("\n".join(words).encode("utf-8"), np.uint8),
              "word_hashes": hashes.astype(np.int64), "layers": np.array(len(dense))}
    for i, layer in enumerate(dense):
        activation = keras.activations.serialize(layer.activation)
        activation = activation if isinstance(activation, str) else activation.get("config", {}).get("name", "?")
        if activation not in ("linear", "relu", "softmax", "sigmoid"):
            return None
        arrays.update({f"kernel_{i}": layer.kernel.numpy().astype(np.float32),
                       f"bias_{i}": layer.bias.numpy().astype(np.float32), f"activation_{i}": np.array(activation)})
    calibrated = next((layer for layer in layers.values() if isinstance(layer, TemperatureScaling)), None)
    if calibrated is not None:
        arrays["temperature"] = np.array(calibrated.temperature, np.float64)
        arrays["temperature_multilabel"] = np.array(calibrated.multilabel)
    scaled = next((layer for layer in layers.values() if isinstance(layer, ScaledSoftmax)), None)
    if scaled is not None:
        arrays["scale"] = np.array(float(scaled.scale.numpy()), np.float32)
        arrays["scale_output"] = np.array("sigmoid" if scaled.multilabel else "softmax")
    return arrays


class NgramTwin:
    """NgramKeys -> NgramIds -> TfidfBag -> SparseDense [-> Dense]* [-> ScaledSoftmax] in numpy
    (the features by models/ngram/features.py, chunk by chunk: memory grows with the texts' length)."""

    def __init__(self, a: dict) -> None:
        from textclf.models.ngram import features as nf

        words = bytes(a["words"]).decode("utf-8", "surrogatepass").split("\n") if len(a["words"]) else []
        hashes = nf.WordHashes(dict(zip(words, a["word_hashes"].tolist())))
        self.vocab = nf.Vocabulary(a["keys"], a["idf"].astype(np.float32), int(a["char_start"]), int(a["ngrams"]),
                                   int(a["char_ngrams"]), hashes)
        self.layers = [(a[f"kernel_{i}"], a[f"bias_{i}"], str(a[f"activation_{i}"])) for i in range(int(a["layers"]))]
        self.scale = (float(a["scale"]), str(a["scale_output"])) if "scale" in a else None
        # A calibrated run's temperature (textclf.calibration), after everything else.
        self.temperature = (a["temperature"], bool(a["temperature_multilabel"])) if "temperature" in a else None

    def rows(self, texts: Sequence[str]):
        """The texts' TF-IDF rows (a scipy CSR matrix)."""
        from textclf.models.ngram.features import tfidf_rows

        return tfidf_rows(list(texts), self.vocab)

    def from_rows(self, rows) -> np.ndarray:
        """Probabilities from TF-IDF rows."""
        kernel, bias, activation = self.layers[0]
        x = _activate(np.asarray(rows @ kernel, np.float32) + bias, activation)
        for kernel, bias, activation in self.layers[1:]:
            x = _activate(x @ kernel + bias, activation)
        if self.scale is not None:
            x = _activate(np.float32(self.scale[0]) * x, self.scale[1])
        if self.temperature is not None:
            from textclf.calibration import scale

            x = scale(x, self.temperature[0].tolist(), self.temperature[1])
        return np.asarray(x, np.float32)

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.from_rows(self.rows(texts))


def _activate(x: np.ndarray, name: str) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0)
    if name == "sigmoid":
        with np.errstate(over="ignore"):  # exp(-x) = inf for a very negative score: 1 / inf is the 0 wanted
            return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return x
