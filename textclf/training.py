"""run_training(config) -> RunResult: the only training path, used by every train command."""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from textclf import runs
from textclf._tf import keras
from textclf.config import RunConfig
from textclf.errors import TextclfError


class Listener(Protocol):
    """Progress hooks (the CLI draws a rich progress bar with them); all optional."""

    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_batch(self, epoch: int, step: int, logs: dict[str, float]) -> None: ...
    def on_epoch(self, epoch: int, logs: dict[str, float]) -> None: ...
    def on_status(self, message: str) -> None: ...


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    metrics: dict[str, Any]
    history: dict[str, list[float]]
    info: dict[str, Any] = field(default_factory=dict)


def run_training(
    config: RunConfig,
    *,
    runs_root: str | Path = runs.DEFAULT_ROOT,
    run_dir: str | Path | None = None,
    listener: Listener | None = None,
) -> RunResult:
    """Train `config`, evaluate on its eval data and write a complete run directory."""
    from textclf.registry import MODELS
    from textclf.runtime import reset_precision, setup_runtime

    say = (lambda m: listener.on_status(m)) if listener and hasattr(listener, "on_status") else (lambda m: None)
    t = config.training
    entry = MODELS.get(config.model)
    # The strategy comes first: MultiWorkerMirroredStrategy must exist before other TF work.
    runtime = setup_runtime(config.runtime, t.global_batch_size)
    keras.utils.set_random_seed(t.seed)
    try:
        return _train(config, entry, runtime, runs_root, run_dir, listener, say)
    finally:
        reset_precision()


def _train(config, entry, runtime, runs_root, run_dir, listener, say) -> RunResult:
    from textclf.data.pipeline import (array_batches, encode_texts, eval_batches, feature_batches, predict_by_length,
                                       training_batches)
    from textclf.data.sources import load_train_eval
    from textclf.evaluation import report_from_predictions
    from textclf.optim import build_optimizer

    t = config.training
    say("loading data")
    train, evaluation = load_train_eval(config.data, t.seed)
    # Built before the run directory exists: an unusable model (e.g. an unreachable hub
    # handle) leaves no run behind.
    say(f"building {config.model}")
    with runtime.strategy.scope():
        built = entry.load_builder()(config.model_params, num_classes=len(train.label_names),
                                     train_texts=train.texts)
    if runtime.is_chief:
        out = runs.new_run_dir(runs_root, config.model, run_dir)
    else:  # other workers of a multi-worker run write to a scratch folder
        out = Path(tempfile.mkdtemp(prefix="textclf-worker-"))
    started = time.time()
    runs.mark(out, "running", name=out.name, model=config.model, data=config.data.train,
              eval_data=evaluation.source, started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              runtime=runtime.to_dict())
    try:
        runs.write_json(out / "config.json", config.to_dict())
        runs.write_json(out / "labels.json", list(train.label_names))

        say("tokenizing")
        train_ids = encode_texts(train.texts, built.encode)
        eval_ids = encode_texts(evaluation.texts, built.encode)
        batch = runtime.global_batch_size

        frozen = built.features is not None and built.head is not None and not built.features.trainable_weights
        if frozen:  # the encoder cannot change: run it once, then fit only the head
            say("computing frozen encoder features")
            started_features = time.perf_counter()
            train_x = predict_by_length(built.features, train_ids, max(batch, 64))
            feature_seconds = time.perf_counter() - started_features
            eval_x = predict_by_length(built.features, eval_ids, max(batch, 64))
            train_data = feature_batches(train_x, train.labels, global_batch_size=batch, seed=t.seed)
            eval_data = array_batches(eval_x, evaluation.labels, batch_size=max(batch, 256))
            model = built.head
        else:
            feature_seconds = 0.0
            train_data = training_batches(train_ids, train.labels, global_batch_size=batch, seed=t.seed, repeat=True)
            eval_data = eval_batches(eval_ids, evaluation.labels, batch_size=max(batch, 256))
            model = built.model
        with runtime.strategy.scope():
            if runtime.name == "multi_worker":
                model = _DenseGradients(model.inputs, model(model.inputs))
            model.compile(
                optimizer=build_optimizer(t, train_data.steps * t.epochs),
                loss=keras.losses.SparseCategoricalCrossentropy(),
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                # Several steps per tf.function call: small models on CPU are otherwise
                # dominated by per-step Python overhead.
                steps_per_execution=t.steps_per_execution,
                jit_compile=runtime.jit_compile,
            )
        timer = TrainTimer()
        callbacks = [timer, keras.callbacks.TerminateOnNaN(),
                     keras.callbacks.TensorBoard(log_dir=str(out / "logs"), write_graph=False)]
        if listener is not None:
            callbacks.append(_ListenerCallback(listener))
            listener.on_start({"epochs": t.epochs, "steps": train_data.steps, "train_examples": len(train),
                               "eval_examples": len(evaluation), "labels": list(train.label_names),
                               "run_dir": str(out), "runtime": runtime.describe()})
        fit = model.fit(train_data.dataset, epochs=t.epochs, steps_per_epoch=train_data.steps,
                        validation_data=eval_data.dataset, callbacks=callbacks, verbose=0)
        history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
        if any(not math.isfinite(v) for v in history.get("loss", [])) or len(history.get("loss", [])) < t.epochs:
            raise TextclfError("training stopped: the loss became NaN; lower --learning-rate")

        say("evaluating")
        probs = model.predict(eval_data.dataset, verbose=0)
        report = report_from_predictions(evaluation.labels, probs.argmax(axis=1), train.label_names,
                                         evaluation.source)
        train_seconds = timer.train_seconds + feature_seconds
        metrics = {**report.to_dict(), "train_examples": len(train), "train_seconds": train_seconds,
                   "train_examples_per_second": len(train) * t.epochs / max(train_seconds, 1e-9),
                   "frozen_features_cached": frozen}

        say("saving")
        tmp_model = out / f".{runs.MODEL_FILE}.tmp.keras"
        built.inference_model().save(tmp_model)
        tmp_model.replace(out / runs.MODEL_FILE)
        runs.write_json(out / "history.json", history)
        runs.write_json(out / "metrics.json", metrics)
        info = runs.mark(out, "complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                         duration_seconds=round(time.time() - started, 3), epochs=t.epochs,
                         accuracy=report.accuracy, macro_f1=report.macro_f1)
        if runtime.is_chief:
            runs.update_latest(out)
        else:
            shutil.rmtree(out, ignore_errors=True)
        return RunResult(out, metrics, history, info)
    except BaseException as err:
        reason = "interrupted" if isinstance(err, KeyboardInterrupt) else (str(err).splitlines() or [type(err).__name__])[0]
        runs.mark(out, "failed", error=reason[:500], finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        raise


class _DenseGradients(keras.Model):
    """Train step that all-reduces sparse (embedding) gradients as dense tensors.

    Across workers, IndexedSlices gradients differ in shape from batch to batch and the
    collective all-reduce of MultiWorkerMirroredStrategy rejects that.
    """

    def train_step(self, data):
        from textclf._tf import tf

        x, y = data[0], data[1]
        optimizer = self.optimizer
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred)
            scaled = optimizer.get_scaled_loss(loss) if hasattr(optimizer, "get_scaled_loss") else loss
        grads = tape.gradient(scaled, self.trainable_variables)
        if hasattr(optimizer, "get_unscaled_gradients"):
            grads = optimizer.get_unscaled_gradients(grads)
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self.compute_metrics(x, y, y_pred, None)


class TrainTimer(keras.callbacks.Callback):
    """Seconds spent on training batches (each epoch minus its validation pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.train_seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start, self._test = time.perf_counter(), 0.0

    def on_test_begin(self, logs=None):
        self._test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self._test += time.perf_counter() - self._test_start

    def on_epoch_end(self, epoch, logs=None):
        self.train_seconds += time.perf_counter() - self._epoch_start - self._test


class _ListenerCallback(keras.callbacks.Callback):
    def __init__(self, listener: Listener) -> None:
        super().__init__()
        self.listener = listener
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.listener.on_batch(self._epoch, batch + 1, {k: float(v) for k, v in (logs or {}).items()})

    def on_epoch_end(self, epoch, logs=None):
        self.listener.on_epoch(epoch, {k: float(v) for k, v in (logs or {}).items()})
