"""Export a run for serving: a SavedModel taking raw strings, or a TFLite flatbuffer."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from textclf import runs, task
from textclf.errors import ModelError, RunError
from textclf.models.saving import load_model
from textclf.registry import Family, load_hook
from textclf.runs import Run, resolve_run

FORMATS = ("saved_model", "tflite")
SIGNATURE = "serving_default"
META_FILE = "textclf-export.json"  # what the export holds and how to load it


def _destination_parent(out: Path) -> Path:
    """The folder the export goes into, once `out` is known to be new or empty and its folder to exist."""
    if out.exists() and not out.is_dir():
        raise RunError(f"export destination {out} is a file; give a new or empty folder")
    if out.exists() and any(out.iterdir()):
        raise RunError(f"export destination exists and is not empty: {out}")
    parent = out.resolve().parent
    if parent.exists() and not parent.is_dir():
        raise RunError(f"cannot write {out}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise RunError(f"cannot write {out}: folder {parent} does not exist")
    return parent


def _manifest(fmt: str, run_dir: Path, info: dict, labels: list, thresholds, interface: dict) -> dict:
    """textclf-export.json: what the export is, its signature, and what loading it requires."""
    if thresholds is not None:
        interface = {**interface, "multilabel": True, "thresholds": dict(zip(labels, thresholds))}
    needs = ["tensorflow"] + (["tensorflow_text"] if fmt == "saved_model" and _uses_text_ops(info) else [])
    return {"format": fmt, "run": str(run_dir), "model": info.get("model"), "labels": labels,
            "signature": SIGNATURE, **interface,
            "requires": needs if fmt == "saved_model" else ["tflite runtime (built-in ops only)"],
            **({"load": "import tensorflow_text before tf.saved_model.load (or saved_model_cli): the BERT "
                        "preprocessing graph uses its ops"} if "tensorflow_text" in needs else {})}


def export_run(run: str | Path | None, fmt: str, out: str | Path, runs_root: str | Path = "runs",
               say: Callable[[str], None] = lambda step: None) -> Path:
    """Write the run's classifier to `out` (a new directory) and return it.

    saved_model: signature `serving_default(text: string[batch])` -> `probabilities`
    float32[batch, classes], `label` string[batch], `label_id` int32[batch]; loads with
    `tf.saved_model.load` given only tensorflow (and tensorflow_text for BERT models).
    A multi-label run's signature instead gives `probabilities` (one sigmoid per label) and
    `predicted` int32[batch, classes] (1 where a label's probability reaches its threshold); the
    thresholds are in textclf-export.json as well.
    tflite: `model.tflite` (built-in ops only) from token ids to probabilities, with
    vocab.txt, labels.txt and the tokenization rules (TFLite has no string ops).
    `say(step)`: the name of each step as it starts (loading, tracing and saving can take a minute).
    """
    if fmt not in FORMATS:
        raise ModelError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    run_dir = resolve_run(run, runs_root)
    out = Path(out)
    parent = _destination_parent(out)
    run_files = Run(run_dir)
    labels = run_files.labels
    thresholds = run_files.thresholds
    info = run_files.info
    family = _family(info)
    if fmt == "tflite" and (family is None or not family.tflite):  # before TensorFlow loads: its family says it
        raise ModelError(f"TFLite export needs a model that tokenizes with TextVectorization (transformer); the "
                         f"{info.get('model') or 'run'} model's tokenizer uses ops with no TFLite built-in kernel — "
                         "export it with --format saved_model instead")
    say(f"loading the model of {run_dir.name}")
    model = load_model(run_dir)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    except OSError as err:
        raise RunError(f"cannot write {out}: {err.strerror or err}") from None
    try:
        if fmt == "tflite":
            say("converting to TFLite")
            interface = load_hook(family.tflite)(model, labels, staging, info.get("model", ""))
        else:
            say("tracing and saving the serving model")
            _save_serving_model(model, labels, staging, thresholds)
            outputs = {"predicted": f"int32[batch, {len(labels)}] (1: the label's probability >= its threshold)"} \
                if thresholds is not None else {"label": "string[batch]", "label_id": "int32[batch]"}
            interface = {"inputs": {"text": "string[batch]"},
                         "outputs": {"probabilities": f"float32[batch, {len(labels)}]", **outputs}}
        (staging / META_FILE).write_text(json.dumps(_manifest(fmt, run_dir, info, labels, thresholds, interface),
                                                     indent=2) + "\n")
        staging.chmod(0o777 & ~runs.umask())  # mkdtemp makes 0700; an export is shared like any folder
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise RunError(f"cannot write {out}: {err.strerror or err}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _uses_text_ops(info: dict) -> bool:
    """The run's SavedModel needs tensorflow_text's ops to load (its family says so: BERT's preprocessing)."""
    family = _family(info)
    return family is not None and family.text_ops


def _family(info: dict) -> Family | None:
    """The model family of a run (run.json's model, see ModelEntry.family); None for an unknown model."""
    from textclf.models.catalog import family_of

    return family_of(info.get("model"), info.get("family", ""))


def _save_serving_model(model, labels: list[str], path: Path, thresholds: list[float] | None = None) -> None:
    from textclf._tf import tf

    class Classifier(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="textclf_classifier")
            self.model = model
            self.labels = tf.Variable(labels, dtype=tf.string, trainable=False, name="labels")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            probs = tf.cast(self.model(text, training=False), tf.float32)
            ids = task.decide_graph(probs)
            return {"probabilities": probs, "label": tf.gather(self.labels, ids), "label_id": ids}

    class MultiLabelClassifier(Classifier):
        def __init__(self) -> None:
            super().__init__()
            self.thresholds = tf.Variable(thresholds, dtype=tf.float32, trainable=False, name="thresholds")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(self, text):
            probs = tf.cast(self.model(text, training=False), tf.float32)
            return {"probabilities": probs, "predicted": task.decide_graph(probs, self.thresholds)}

    module = MultiLabelClassifier() if thresholds is not None else Classifier()
    tf.saved_model.save(module, str(path), signatures={SIGNATURE: module.serve})
