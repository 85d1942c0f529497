"""Twins of a run's model that a cold `textclf predict` loads in a fraction of the Keras model's time.

Importing TensorFlow and tf_keras takes ≈ 2.3 s on a 2-core machine (4-7 s on a slow day)
before any model is read: about the whole budget of a one-headline `predict`. So a finished
run also holds `model-lite.npz`, a twin of its model:

- n-gram models: numpy alone (TF-IDF and a few dense layers are array arithmetic), no
  TensorFlow. `tf.strings.lower(encoding="utf-8")` is Python's `str.lower`, except that
  TensorFlow's ICU (Unicode 13) keeps the letters in `LOWER_KEPT` as they are and a string
  ends at a NUL; words are hashed through the FarmHash fingerprints of the training texts'
  words, stored in the twin (a word outside them is in no known n-gram, so it adds nothing);
- the transformer: its TFLite flatbuffer on token ids, run by LiteRT (`ai-edge-litert`,
  0.1 s to import), no TensorFlow; TextVectorization's tokenization in Python (ASCII-only
  lower-casing, its punctuation deleted, split on ASCII whitespace, the vocabulary, the cut);
- BERT models: one frozen GraphDef, weights as constants, in a tf.compat.v1.Session. It
  needs TensorFlow and tensorflow_text, but not Keras deserialization, TF Hub or the
  encoder SavedModel's 81 functions (the Keras path's cost).

A twin is written with the run only when it gives the Keras model's probabilities (within
`TOLERANCE`) on training texts and on awkward ones (`CHECK_TEXTS`); otherwise the run has
none and `predict` loads the Keras model, as it does for runs saved before twins existed.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from textclf.textrules import LOWER_KEPT, lower_like_tensorflow, vectorizer_tokens  # noqa: F401 (tests: LOWER_KEPT)
from textclf.runs import NATIVE  # a twin's "model" when it is the run's only model (no model.keras)
from textclf.errors import RunError

FORMAT = "textclf-lite-1"  # as written since twins began (their first name: lite); kept so they load
TOLERANCE = 1e-4  # largest probability difference from the Keras model that a twin may show
# Texts a twin must agree on besides training texts: accents, ICU's kept letters, a NUL,
# no-break spaces, final sigma, punctuation only, empty.
CHECK_TEXTS = ["Stocks RALLY as oil falls!", "caf\u00e9 \u00c9COLE d\u00e9j\u00e0-vu \u0130stanbul",
               "no\u00a0break\u00a0spaces here", "tabs\tand\nnewlines", "\u039f\u0394\u039f\u03a3 \u03a3\u0391\u03a3",
               "nul\x00 ends it", "\u2c2f\ua7c0 \U00010570x", "?!...", "", "a " * 300]


# --- writing (TensorFlow loaded: called when a run finishes) -----------------------------------------

def twin_arrays(model, train_texts: Sequence[str], family: str) -> dict | None:
    """The arrays of `model`'s twin (a string-in Keras model of model family `family`, see
    ModelEntry.family), or None when its family has none or it disagrees with the model on the check
    texts (tests/test_twins.py sees that every n-gram and transformer run gets one: a twin that cannot
    be made costs speed, never the run)."""
    try:
        return _checked_twin(model, train_texts, family)
    except Exception:
        import os

        if os.environ.get("TEXTCLF_DEBUG"):
            raise
        return None


def _checked_twin(model, train_texts: Sequence[str], family: str) -> dict | None:
    from textclf._tf import tf

    layers = _all_layers(model)
    makers = {"ngram": lambda: _ngram_arrays(layers, train_texts),
              "transformer": lambda: _transformer_arrays(model, layers), "bert": lambda: _graph_arrays(model)}
    if family not in makers:
        return None
    arrays = makers[family]()
    if arrays is None:
        return None
    graph = str(arrays["kind"]) == "graph"
    texts = [str(t) for t in list(train_texts[: 32 if graph else 200])] + CHECK_TEXTS
    # Against the Keras model as a `predict` process runs it: without the oneDNN bfloat16 rewrite
    # a bf16 training run turns on for the process (runtime.setup_runtime), which `predict` never
    # does (the encoder SavedModel stays float32); BERT in a graph, as for more than one batch
    # (the others eagerly: no tracing, and float32 gives the same numbers either way).
    from textclf.runtime import float32_graphs

    with float32_graphs():
        forward = tf.function(lambda t: model(t, training=False)) if graph else (lambda t: model(t, training=False))
        expected = np.asarray(forward(tf.constant(texts)), np.float32)
    try:
        got = Twin(arrays).probabilities(texts)
    except ImportError:  # no LiteRT here: the twin cannot be checked, so it is not written
        return None
    if got.shape != expected.shape or not np.all(np.abs(got - expected) <= TOLERANCE):
        return None
    return arrays


def _all_layers(model) -> dict:
    """Every layer of a model and of the models nested in it, by name and (the first of each class) by
    class name."""
    found = {}
    stack = [model]
    while stack:
        layer = stack.pop()
        found.setdefault(layer.name, layer)
        found.setdefault(type(layer).__name__, layer)
        stack.extend(reversed(getattr(layer, "layers", [])))
    return found


def _ngram_arrays(layers: dict, train_texts: Sequence[str]) -> dict | None:
    from textclf._tf import keras, tf
    from textclf.models.ngram import ScaledSoftmax, SparseDense
    from textclf.textrules import PUNCTUATION

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
    scaled = next((layer for layer in layers.values() if isinstance(layer, ScaledSoftmax)), None)
    if scaled is not None:
        arrays["scale"] = np.array(float(scaled.scale.numpy()), np.float32)
        arrays["scale_output"] = np.array("sigmoid" if scaled.multilabel else "softmax")
    return arrays


def _transformer_arrays(model, layers: dict) -> dict | None:
    from textclf._tf import keras

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


def _graph_arrays(model) -> dict:
    """A BERT model as one frozen GraphDef (strings in, probabilities out; the weights as constants).

    Loading the Keras model rebuilds the encoder from its SavedModel (81 functions turned
    back into graphs) and traces it again for each nested model; a frozen graph has one
    graph and no functions to restore. It still needs TensorFlow and tensorflow_text (the
    WordPiece op), but not hub, Keras deserialization or the model store.
    """
    from textclf._tf import tf
    from textclf.compat import frozen_graph

    function = tf.function(lambda t: model(t, training=False)).get_concrete_function(
        tf.TensorSpec([None], tf.string, name="text"))
    frozen = frozen_graph(function)
    graph = frozen.graph.as_graph_def()
    return {"format": np.array(FORMAT), "kind": np.array("graph"),
            "graph": np.frombuffer(graph.SerializeToString(), np.uint8),
            "input": np.array(frozen.inputs[0].name), "output": np.array(frozen.outputs[0].name)}


def tflite_flatbuffer(classifier, model_name: str, signature: bool = True) -> bytes:
    """A TFLite flatbuffer (built-in ops only) of `classifier`: token_ids int32[batch, time] ->
    probabilities float32[batch, classes], with a `serving_default` signature unless `signature`
    is False. ModelError (one line) when TFLite cannot hold it."""
    from textclf._tf import tf
    from textclf.errors import ModelError

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="token_ids")])
    def serve(token_ids):
        return {"probabilities": tf.cast(classifier(tf.cast(token_ids, tf.int64), training=False), tf.float32)}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], classifier)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    # Without a signature (a twin finds its tensors by index): from the frozen function, not via a
    # SavedModel of the whole Keras model that the converter otherwise writes first — 0.4-0.9 s
    # instead of 2.8-3.2 s for the whole twin of a small transformer.
    converter.experimental_lower_to_saved_model = signature
    try:
        with quiet_stderr():  # the converter prints MLIR diagnostics from C++
            return converter.convert()
    except Exception as err:  # the converter raises ConverterError and friends
        text = str(err).strip()
        missing = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)))
        lines = [ln.strip() for ln in text.splitlines() if "op" in ln.lower() and ln.strip()]
        detail = (f"no TFLite built-in kernel for {', '.join(missing)}" if missing
                  else lines[0] if lines else (text.splitlines()[0] if text else type(err).__name__))
        raise ModelError(f"TFLite cannot represent the {model_name or 'run'} model ({detail[:200]}); "
                         "export it with --format saved_model instead") from None


class quiet_stderr:
    """Silence file descriptor 2 (C++ logging) for the duration of a block."""

    def __enter__(self):
        import os
        import sys

        sys.stderr.flush()
        self._saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        return self

    def __exit__(self, *exc):
        import os

        os.dup2(self._saved, 2)
        os.close(self._saved)
        return False


# --- predicting (no TensorFlow) ----------------------------------------------------------------------

def load(run_dir: Path) -> "Twin | None":
    """The run's twin, or None: no twin file, an unreadable or foreign one, one made from another
    model.keras than the run's (a damaged or replaced model: the Keras path says what is wrong),
    or (transformer) no LiteRT."""
    from textclf.runs import MODEL_FILE, model_signature, zip_signature

    arrays = read_arrays(run_dir)
    if arrays is None:
        return None
    try:
        bound = str(arrays.get("model"))
        model_file = Path(run_dir) / MODEL_FILE
        # "native": the arrays are the run's only model (never a twin copied into a run with a model.keras)
        signature = model_signature if bound.startswith("sha256:") else zip_signature  # older runs: the zip's
        if str(arrays.get("format")) != FORMAT or (
                bound != signature(model_file) if model_file.exists() else bound != NATIVE):
            return None
        return Twin(arrays)
    except Exception:  # no LiteRT (ImportError), a damaged file or model.keras, a graph TensorFlow
        return None    # cannot import...: the Keras model answers (or says what is wrong with the run)


def read_arrays(run_dir: Path) -> dict | None:
    """The arrays of the run's twin file, or None when it is missing or unreadable."""
    from textclf.runs import TWIN_FILE, read_npz

    path = Path(run_dir) / TWIN_FILE
    if not path.is_file():
        return None
    try:
        return read_npz(path)
    except RunError:  # a damaged or truncated file: no twin (the caller says what that means)
        return None


class Twin:
    """texts -> probabilities float32[n, classes], as the run's Keras model gives them."""

    def __init__(self, arrays: dict) -> None:
        self.kind = str(arrays["kind"])
        kinds = {"ngram": _NgramTwin, "transformer": _TransformerTwin, "graph": _GraphTwin}
        self._forward: Callable[[list[str]], np.ndarray] = kinds[self.kind](arrays)

    def probabilities(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        texts = [str(t) for t in texts]
        parts = [self._forward(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


class _NgramTwin:
    """NgramKeys -> NgramIds -> TfidfBag -> SparseDense [-> Dense]* [-> ScaledSoftmax] in numpy
    (the features by models/ngram_features.py, chunk by chunk: memory grows with the texts' length)."""

    def __init__(self, a: dict) -> None:
        from textclf.models import ngram_features as nf

        words = bytes(a["words"]).decode("utf-8", "surrogatepass").split("\n") if len(a["words"]) else []
        hashes = nf.WordHashes(dict(zip(words, a["word_hashes"].tolist())))
        self.vocab = nf.Vocabulary(a["keys"], a["idf"].astype(np.float32), int(a["char_start"]), int(a["ngrams"]),
                                   int(a["char_ngrams"]), hashes)
        self.layers = [(a[f"kernel_{i}"], a[f"bias_{i}"], str(a[f"activation_{i}"])) for i in range(int(a["layers"]))]
        self.scale = (float(a["scale"]), str(a["scale_output"])) if "scale" in a else None

    def rows(self, texts: Sequence[str]):
        """The texts' TF-IDF rows (a scipy CSR matrix)."""
        from textclf.models.ngram_features import tfidf_rows

        return tfidf_rows(list(texts), self.vocab)

    def from_rows(self, rows) -> np.ndarray:
        """Probabilities from TF-IDF rows."""
        kernel, bias, activation = self.layers[0]
        x = _activate(np.asarray(rows @ kernel, np.float32) + bias, activation)
        for kernel, bias, activation in self.layers[1:]:
            x = _activate(x @ kernel + bias, activation)
        if self.scale is not None:
            x = _activate(np.float32(self.scale[0]) * x, self.scale[1])
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


class _TransformerTwin:
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


class _GraphTwin:
    """A frozen GraphDef (`_graph_arrays`) run in its own tf.compat.v1.Session, grappler off.

    With the weights now constants, grappler's remapper fuses ops into kernels that round
    differently from the Keras model's (4e-3 on MiniLM's probabilities; 2e-5 without it),
    and its constant folding made the first call take 3.0 s instead of 0.8 s (MiniLM, one
    headline; later calls are as fast either way). A session's config is its own, where
    tf.config.optimizer would change every function of the process.
    """

    def __init__(self, a: dict) -> None:
        from textclf._tf import tf

        import tensorflow_text  # noqa: F401  (registers the WordPiece op the graph uses)

        graph_def = tf.compat.v1.GraphDef.FromString(bytes(a["graph"]))
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        config = tf.compat.v1.ConfigProto()
        config.graph_options.rewrite_options.disable_meta_optimizer = True
        self.session = tf.compat.v1.Session(graph=graph, config=config)
        self.input = graph.get_tensor_by_name(str(a["input"]))
        self.output = graph.get_tensor_by_name(str(a["output"]))

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.session.run(self.output, {self.input: np.array(texts, dtype=object)}), np.float32)
