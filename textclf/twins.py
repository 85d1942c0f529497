"""Twins of a run's model that a cold `textclf predict` loads in a fraction of the Keras model's time.

Importing TensorFlow and tf_keras takes ≈ 2.3 s on a 2-core machine (4-7 s on a slow day)
before any model is read: about the whole budget of a one-headline `predict`. So a finished
run also holds `model-lite.npz`, a twin of its model, made by its model family (the family's
`twin` hook, see textclf.registry.Family) and answered by the family's runner for that kind of
arrays: numpy alone for n-grams (models/ngram/twin.py), TFLite in LiteRT for the transformer
(models/transformer/twin.py), one frozen GraphDef for BERT (models/bert/twin.py).

This module owns what every twin shares: its file, its format, the check against the Keras model
and loading it for `predict`. A twin is written with the run only when it gives the Keras model's
probabilities (within `TOLERANCE`) on training texts and on awkward ones (`CHECK_TEXTS`);
otherwise the run has none and `predict` loads the Keras model, as it does for runs saved before
twins existed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

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
    from textclf.models.catalog import MODELS  # noqa: F401  (the shipped families registered)
    from textclf.registry import family as family_spec, load_hook, twin_runner

    spec = family_spec(family)
    if not spec.twin:
        return None
    arrays = load_hook(spec.twin)(model, train_texts)
    if arrays is None:
        return None
    graph = getattr(twin_runner(str(arrays["kind"])), "traced", False)  # checked as a graph, on fewer texts
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


def all_layers(model) -> dict:
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
        from textclf.models.catalog import MODELS  # noqa: F401  (the shipped families registered)
        from textclf.registry import twin_runner

        self.kind = str(arrays["kind"])
        self._forward: Callable[[list[str]], np.ndarray] = twin_runner(self.kind)(arrays)

    def probabilities(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        texts = [str(t) for t in texts]
        parts = [self._forward(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
