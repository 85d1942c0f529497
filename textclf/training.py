"""run_training(config) -> RunResult: the only training path, used by every train command."""

from __future__ import annotations

import dataclasses
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
    def on_note(self, line: str) -> None: ...


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
    resume: bool = False,
    experiment: str | None = None,
) -> RunResult:
    """Train `config`, evaluate on its eval data and write a complete run directory.

    With `resume`, `run_dir` is an unfinished run of the same config: training continues
    after its last completed epoch (weights, optimizer and RNG state from the checkpoint,
    the data order of the remaining epochs as in an uninterrupted run).
    """
    from textclf.registry import MODELS
    from textclf.runtime import reset_precision, setup_runtime

    say = (lambda m: listener.on_status(m)) if listener and hasattr(listener, "on_status") else (lambda m: None)
    t = config.training
    entry = MODELS.get(config.model)
    if resume:
        runs.check_resumable(run_dir, config)
    # The strategy comes first: MultiWorkerMirroredStrategy must exist before other TF work.
    runtime = setup_runtime(config.runtime, t.global_batch_size,
                            cpu_bf16_model=getattr(config.model_params, "cpu_bf16", False))
    keras.utils.set_random_seed(t.seed)
    # Dropout draws from tf.random.Generator objects, whose state can be checkpointed; the
    # legacy stateful ops restart their streams after a resume.
    keras.backend.experimental.enable_tf_random_generator()
    try:
        return _train(config, entry, runtime, runs_root, run_dir, listener, say, resume, experiment)
    finally:
        reset_precision()


def resume_run(run_dir: str | Path, *, listener: Listener | None = None) -> RunResult:
    """Continue an interrupted run with the config saved in it."""
    from textclf.config import resolve_config

    path = runs.check_resumable(run_dir)
    info = runs.read_json(path / runs.RUN_FILE)
    return run_training(resolve_config(runs.read_json(path / "config.json")), run_dir=path, listener=listener,
                        resume=True, experiment=info.get("experiment"))


def _train(config, entry, runtime, runs_root, run_dir, listener, say, resume, experiment) -> RunResult:
    from textclf.data.pipeline import (array_batches, concat_features, encode_texts, eval_batches, feature_batches,
                                       feature_function, predict_by_length, training_batches)
    from textclf.data.sources import holdout_split, load_train_eval
    from textclf.evaluation import report_from_predictions
    from textclf.optim import build_optimizer
    from textclf.reports import preload_plotting, save_run_plots

    t = config.training
    preload_plotting()
    say("loading data")
    train, evaluation = load_train_eval(config.data, t.seed)
    # Early stopping must never look at the eval data: it watches a part of the training data.
    fit, validation = holdout_split(train, t.validation_fraction, t.seed) if t.validation_fraction else (train, None)
    if resume and runs.load_labels(Path(run_dir)) != list(train.label_names):
        raise TextclfError(f"cannot resume {run_dir}: its labels differ from the data's labels now")
    # Built before the run directory exists: an unusable model (e.g. an unreachable hub
    # handle) leaves no run behind.
    say(f"building {config.model}")
    with runtime.strategy.scope():
        # With refit, the vocabulary (and idf) come from all the training texts, which the final head sees.
        built = entry.load_builder()(config.model_params, num_classes=len(train.label_names),
                                     train_texts=train.texts if t.refit else fit.texts)
    if built.params is not None and built.params != config.model_params:  # e.g. max_length taken from the data
        config = dataclasses.replace(config, model_params=built.params)
    if resume:
        out = Path(run_dir)
    elif runtime.is_chief:
        out = runs.new_run_dir(runs_root, experiment or config.model, run_dir)
    else:  # other workers of a multi-worker run write to a scratch folder
        out = Path(tempfile.mkdtemp(prefix="textclf-worker-"))
    started = time.time()
    previous = runs.read_json(out / runs.RUN_FILE) if resume else {}
    try:
        runs.mark(out, "running", name=out.name, model=config.model, experiment=experiment, data=config.data.train,
                  eval_data=evaluation.source, started=previous.get("started", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
                  runtime=runtime.to_dict(), resumed=previous.get("resumed", -1) + 1 if resume else 0,
                  **runs.process_info())
    except OSError as err:
        raise TextclfError(f"cannot write the run in {out}: {err.strerror or err}") from None
    try:
        if not resume:
            runs.write_json(out / "config.json", config.to_dict())
            runs.write_json(out / "labels.json", list(train.label_names))

        say("tokenizing")
        train_ids = built.train_ids if built.train_ids is not None and not t.refit else encode_texts(
            fit.texts, built.encode)
        eval_ids = encode_texts(evaluation.texts, built.encode)
        val_ids = encode_texts(validation.texts, built.encode) if validation is not None else None
        batch = runtime.global_batch_size

        frozen = built.features is not None and built.head is not None and not built.features.trainable_weights
        if frozen:  # the encoder cannot change: run it once, then fit only the head
            say("computing the frozen features")
            started_features = time.perf_counter()
            featurize = feature_function(built.features)
            feature_batch = max(batch, built.feature_batch_size)
            train_x, *val_x = (predict_by_length(featurize, ids, feature_batch)
                               for ids in [train_ids] + ([val_ids] if validation is not None else []))
            feature_seconds = time.perf_counter() - started_features  # training's share; eval's is evaluation
            eval_x = predict_by_length(featurize, eval_ids, feature_batch)
            batches = lambda start: feature_batches(train_x, fit.labels, global_batch_size=batch, seed=t.seed,
                                                    start_epoch=start)
            eval_data = array_batches(eval_x, evaluation.labels, batch_size=max(batch, 256))
            val_data = array_batches(val_x[0], validation.labels, batch_size=max(batch, 256)) if val_x else None
            model = built.head
        else:
            feature_seconds = 0.0
            batches = lambda start: training_batches(train_ids, fit.labels, global_batch_size=batch, seed=t.seed,
                                                     repeat=True, start_epoch=start,
                                                     fixed_shapes=runtime.jit_compile)
            eval_data = eval_batches(eval_ids, evaluation.labels, batch_size=max(batch, 256))
            val_data = None if validation is None else eval_batches(val_ids, validation.labels,
                                                                   batch_size=max(batch, 256))
            model = built.model
        if frozen and built.solve is not None:  # a convex head, fitted exactly: no epochs to run
            return _finish_solved(built, config, out, train, fit, validation, evaluation, train_x, val_x, eval_data,
                                  feature_seconds, listener, say, runtime, started, previous)
        train_data = batches(0)
        with runtime.strategy.scope():
            if runtime.name == "multi_worker":
                model = _DenseGradients(model.inputs, model(model.inputs))
            model.compile(
                optimizer=build_optimizer(t, train_data.steps * t.epochs),
                loss=built.loss or keras.losses.SparseCategoricalCrossentropy(),
                metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                # Several steps per tf.function call: small models on CPU are otherwise
                # dominated by per-step Python overhead.
                steps_per_execution=t.steps_per_execution,
                jit_compile=runtime.jit_compile,
            )
            _create_optimizer_slots(model)
        timer = TrainTimer()
        # Every worker saves (others into their scratch folder): under MultiWorkerMirroredStrategy
        # checkpointing runs collective ops that all workers must join.
        state = EpochCheckpoint(out / "checkpoints", model, t, timer)
        initial_epoch = state.restore() if resume else 0
        if initial_epoch:
            say(f"resuming after epoch {initial_epoch}")
            train_data = batches(initial_epoch)
        callbacks = [timer, state,
                     keras.callbacks.TensorBoard(log_dir=str(out / "logs"), write_graph=False)]
        if listener is not None:
            callbacks.append(_ListenerCallback(listener))
            listener.on_start({"epochs": t.epochs, "initial_epoch": initial_epoch, "steps": train_data.steps,
                               "train_examples": len(fit), "eval_examples": len(evaluation),
                               "validation_examples": len(validation) if validation is not None else 0,
                               "labels": list(train.label_names), "run_dir": str(out),
                               "runtime": runtime.describe(), "notes": list(built.notes)})
        if initial_epoch < t.epochs and not state.should_stop():
            model.fit(train_data.dataset, epochs=t.epochs, initial_epoch=initial_epoch,
                      steps_per_epoch=train_data.steps, validation_data=(val_data or eval_data).dataset, callbacks=callbacks,
                      verbose=0)
        if state.nan_epoch is not None:
            raise TextclfError(f"training stopped in epoch {state.nan_epoch}: the loss became NaN; "
                               "lower --learning-rate")
        history = state.history
        if t.restore_best and state.best_epoch:
            say(f"restoring the weights of epoch {state.best_epoch} (best {t.monitor})")
            state.restore_best()
        refit_epochs, refit_seconds = 0, 0.0
        if t.refit and validation is not None and state.best_epoch:
            if not frozen:
                raise TextclfError("training.refit needs a model whose features are computed once "
                                   "(ngram-linear, ngram-mlp, a frozen BERT); drop it for this model")
            say(f"refitting on all {len(train)} training examples for {state.best_epoch} epochs")
            model, refit_seconds = _refit(built, t, runtime, concat_features([train_x, val_x[0]]),
                                          np.concatenate([fit.labels, validation.labels]), state.best_epoch)
            refit_epochs = state.best_epoch

        say("evaluating")
        probs = model.predict(eval_data.dataset, verbose=0)
        report = report_from_predictions(evaluation.labels, probs.argmax(axis=1), train.label_names,
                                         evaluation.source)
        train_seconds = state.train_seconds() + feature_seconds + refit_seconds
        epochs_run = len(history.get("loss", []))
        seen = len(fit) * epochs_run + len(train) * refit_epochs
        metrics = {**report.to_dict(), "train_examples": len(train) if refit_epochs else len(fit),
                   "train_seconds": train_seconds,
                   "validation_examples": len(validation) if validation is not None else 0,
                   "train_examples_per_second": seen / max(train_seconds, 1e-9),
                   "frozen_features_cached": frozen, "epochs_run": epochs_run, "refit_epochs": refit_epochs,
                   "best_epoch": state.best_epoch, "stopped_early": epochs_run < t.epochs}

        say("saving")
        save_run_plots(out, report.to_dict(), history)
        return _save_complete(out, built, report, history, metrics, runtime, previous, started, epochs_run)
    except BaseException as err:
        reason = "interrupted" if isinstance(err, KeyboardInterrupt) else (str(err).splitlines() or [type(err).__name__])[0]
        try:
            runs.mark(out, "failed", error=reason[:500], finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      duration_seconds=round(previous.get("duration_seconds", 0) + time.time() - started, 3))
        except OSError:  # e.g. the disk is full: run.json still says "running", never "complete"
            pass
        if isinstance(err, OSError):
            raise TextclfError(f"cannot write the run in {out}: {err.strerror or err}") from None
        raise


def _finish_solved(built, config, out, train, fit, validation, evaluation, train_x, val_x, eval_data,
                   feature_seconds, listener, say, runtime, started, previous) -> RunResult:
    """The rest of a run whose head `built.solve` fits exactly (L-BFGS, C chosen on the validation part)."""
    from textclf.evaluation import report_from_predictions
    from textclf.reports import save_run_plots

    note = (lambda line: listener.on_note(line)) if listener is not None and hasattr(listener, "on_note") else say
    if listener is not None:
        listener.on_start({"epochs": 0, "initial_epoch": 0, "steps": 0, "train_examples": len(fit),
                           "eval_examples": len(evaluation),
                           "validation_examples": len(validation) if validation is not None else 0,
                           "labels": list(train.label_names), "run_dir": str(out),
                           "runtime": runtime.describe(), "notes": list(built.notes)})
    solve_started = time.perf_counter()
    solved = built.solve(fit_x=train_x, fit_y=fit.labels, val_x=val_x[0] if val_x else None,
                         val_y=validation.labels if validation is not None else None, say=note)
    solve_seconds = time.perf_counter() - solve_started
    trained = solved["train_examples"]
    note(f"C {solved['c']:g} fitted on all {trained} training examples "
         f"({solved['history']['refit_iterations'][0]} L-BFGS iterations, {solve_seconds:.1f} s)")
    say("evaluating")
    probs = built.head.predict(eval_data.dataset, verbose=0)
    report = report_from_predictions(evaluation.labels, probs.argmax(axis=1), train.label_names, evaluation.source)
    train_seconds = feature_seconds + solve_seconds
    history = solved["history"]
    metrics = {**report.to_dict(), "train_examples": trained, "train_seconds": train_seconds,
               "validation_examples": len(validation) if validation is not None else 0,
               # examples in the final fit per second of features + all solves (L-BFGS reads them many times)
               "train_examples_per_second": trained / max(train_seconds, 1e-9),
               "frozen_features_cached": True, "solver": "lbfgs", "c": solved["c"],
               "c_tried": history["c"], "softmax_scale": solved["softmax_scale"],
               "epochs_run": 0, "refit_epochs": 0, "best_epoch": None, "stopped_early": False}
    say("saving")
    save_run_plots(out, report.to_dict(), {})
    return _save_complete(out, built, report, history, metrics, runtime, previous, started, 0)


def _save_complete(out, built, report, history, metrics, runtime, previous, started, epochs) -> RunResult:
    """Write the model, history and metrics, mark the run complete, drop its checkpoints."""
    tmp_model = out / f".{runs.MODEL_FILE}.tmp.keras"
    built.inference_model().save(tmp_model)
    tmp_model.replace(out / runs.MODEL_FILE)
    runs.write_json(out / "history.json", history)
    runs.write_json(out / "metrics.json", metrics)
    info = runs.mark(out, "complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     duration_seconds=round(previous.get("duration_seconds", 0) + time.time() - started, 3),
                     epochs=epochs, accuracy=report.accuracy, macro_f1=report.macro_f1)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # only needed to resume
    if runtime.is_chief:
        runs.update_latest(out)
    else:
        shutil.rmtree(out, ignore_errors=True)
    return RunResult(out, metrics, history, info)


def _refit(built, t, runtime, features, labels: np.ndarray, epochs: int):
    """A fresh head (same seed) trained on all the training features for `epochs`; it and its seconds.

    `built.model` becomes features -> the new head, so the saved run predicts with it.
    """
    from textclf.data.pipeline import feature_batches
    from textclf.optim import build_optimizer

    keras.utils.set_random_seed(t.seed)
    data = feature_batches(features, labels, global_batch_size=runtime.global_batch_size, seed=t.seed)
    with runtime.strategy.scope():
        head = keras.models.clone_model(built.head)
        head.compile(optimizer=build_optimizer(t, data.steps * epochs),
                     loss=built.loss or keras.losses.SparseCategoricalCrossentropy(),
                     steps_per_execution=t.steps_per_execution)
        _create_optimizer_slots(head)
    timer = TrainTimer()
    head.fit(data.dataset, epochs=epochs, steps_per_epoch=data.steps, callbacks=[timer], verbose=0)
    ids = built.model.inputs[0]
    built.model = keras.Model(ids, built.to_probabilities(head(built.features(ids))), name=built.model.name)
    built.head = head
    return head, timer.train_seconds


def _create_optimizer_slots(model: keras.Model) -> None:
    """Create the optimizer's variables (Adam's moments, the step count) now, in the strategy's scope.

    Left to the first training step, they are created inside the traced train function, and a
    tf.function that creates variables is traced twice: 0.2-0.5 s of ngram-mlp's first epoch.
    OptimizerV2 (Adam, AdamWeightDecay) has no public method for it; without one, creation stays lazy.
    """
    create = getattr(model.optimizer, "_create_all_weights", None)
    if create is not None:
        create(model.trainable_variables)


def _generators(model: keras.Model) -> list:
    """The tf.random.Generator of every random (e.g. dropout) layer, in a stable order."""
    found = []
    for layer in model.submodules:
        gen = getattr(getattr(layer, "_random_generator", None), "_generator", None)
        if gen is not None:
            found.append(gen)
    return found


class EpochCheckpoint(keras.callbacks.Callback):
    """Makes every finished epoch durable; tracks NaN, the best epoch and early stopping.

    After each epoch: progress.json (history and training seconds so far) is written, then a
    checkpoint of the weights, the optimizer (its step count drives the learning-rate
    schedule) and the dropout RNG state. `restore()` returns the epochs to skip. Best epoch
    and patience are recomputed from the history, so they survive a resume as well.
    `timer` must come before this callback in the callback list.
    """

    def __init__(self, directory: Path, model: keras.Model, cfg, timer: TrainTimer) -> None:
        from textclf._tf import tf

        super().__init__()
        self.directory, self.cfg, self.timer = Path(directory), cfg, timer
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
        self.ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer, rng=_generators(model),
                                        epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(self.ckpt, str(self.directory / "last"), max_to_keep=1)
        self.best_ckpt = tf.train.Checkpoint(model=model)
        self.best_manager = tf.train.CheckpointManager(self.best_ckpt, str(self.directory / "best"), max_to_keep=1)
        self.history: dict[str, list[float]] = {}
        self.seconds: list[float] = []  # training seconds up to the end of each epoch
        self.resumed_seconds = 0.0
        self.nan_epoch: int | None = None
        self.best_epoch: int | None = None
        self._epoch = 0
        self.directory.mkdir(parents=True, exist_ok=True)

    def restore(self) -> int:
        """Load the last checkpoint (if any); the number of completed epochs."""
        path = self.manager.latest_checkpoint
        if path is None:
            return 0
        status = self.ckpt.restore(path).expect_partial()
        try:
            # The optimizer's variables exist before this (`_create_optimizer_slots`), so a checkpoint
            # without them (e.g. written by textclf's earlier optimizer class) is found here, not
            # silently resumed with fresh Adam moments.
            status.assert_existing_objects_matched()
        except AssertionError:
            raise TextclfError(f"cannot resume: the checkpoint in {self.directory} does not match this "
                               "model and optimizer (written by another textclf version?); start the run again") from None
        done = int(self.epoch.numpy())
        progress = runs.read_json(self.directory / "progress.json")
        self.history = {k: list(v)[:done] for k, v in progress.get("history", {}).items()}
        self.seconds = list(progress.get("seconds", []))[:done]
        self.resumed_seconds = self.seconds[-1] if self.seconds else 0.0
        self._replay()
        return done

    def train_seconds(self) -> float:
        """Training time over all epochs, across resumes."""
        return self.resumed_seconds + self.timer.train_seconds

    def _replay(self) -> int:
        """Set the best epoch (1-based) from the history; the epochs since it."""
        values = self.history.get(self.cfg.monitor, [])
        delta = self.cfg.min_delta
        better = (lambda a, b: a < b - delta) if self.cfg.monitor.endswith("loss") else (lambda a, b: a > b + delta)
        best, wait = None, 0
        for i, v in enumerate(values):
            if best is None or better(v, values[best - 1]):
                best, wait = i + 1, 0
            else:
                wait += 1
        self.best_epoch = best
        return wait

    def should_stop(self) -> bool:
        """Patience used up (this also sets best_epoch from the history)."""
        wait = self._replay()
        return self.cfg.patience > 0 and wait >= self.cfg.patience

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if logs and not math.isfinite(float(logs.get("loss", 0.0))):
            self.nan_epoch = self.nan_epoch or self._epoch + 1
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        if self.nan_epoch is not None or not all(math.isfinite(v) for v in logs.values()):
            self.nan_epoch = self.nan_epoch or epoch + 1
            self.model.stop_training = True
            return  # never checkpoint a diverged model
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        self.seconds.append(self.train_seconds())
        stop = self.should_stop()
        if self.cfg.restore_best and self.best_epoch == epoch + 1:
            self.best_manager.save(checkpoint_number=epoch + 1)
        runs.write_json(self.directory / "progress.json",
                        {"epochs_done": epoch + 1, "history": self.history, "seconds": self.seconds})
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)
        self.model.stop_training = stop

    def restore_best(self) -> None:
        if self.best_manager.latest_checkpoint:
            self.best_ckpt.restore(self.best_manager.latest_checkpoint).expect_partial()


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
