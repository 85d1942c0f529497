"""The steps of a Keras run after its data: build the model, prepare its inputs (token ids, or frozen
features once), fit (epochs with checkpoints, early stopping, an optional refit), finish (evaluate, save)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from textclf import task
from textclf.config import RunConfig
from textclf.training.data import _Data
from textclf.training.hooks import RunResult, _Hooks
from textclf.errors import TextclfError


def _build_model(config: RunConfig, entry, runtime, data: _Data, hooks: _Hooks):
    """The built model and the config it was built with (parameters the builder took from the data)."""
    hooks.on_status(f"building {config.model}")
    with runtime.strategy.scope():
        # With refit, the vocabulary (and idf) come from all the training texts, which the final head sees.
        texts = data.train.texts if config.training.refit else data.fit.texts
        built = entry.load_builder()(config.model_params, num_classes=len(data.train.label_names), train_texts=texts,
                                     multilabel=data.train.multilabel)
    if built.params is not None and built.params != config.model_params:  # e.g. max_length taken from the data
        config = dataclasses.replace(config, model_params=built.params)
    return built, config


@dataclass
class _Inputs:
    """What the model trains and is evaluated on: batches from an epoch, or precomputed features."""

    frozen: bool  # the features were computed once (FROZEN_FEATURES, FEATURE_ROWS); only the head trains
    batches: Callable[[int], Any] | None  # start epoch -> Batches
    steps: int
    val_data: Any
    eval_data: Any
    feature_seconds: float = 0.0
    train_x: Any = None
    val_x: Any = None
    eval_probs: Any = None  # set by _fit: the eval data's predictions by the final weights, if it made them


def _prepare_inputs(built, config: RunConfig, data: _Data, runtime, hooks: _Hooks) -> _Inputs:
    """The inputs of the built model's training mode (models/base.py): token-id batches, or features once."""
    from textclf.models.base import END_TO_END, FEATURE_ROWS

    if built.mode == FEATURE_ROWS:
        return _feature_row_inputs(built, config, data, runtime, hooks)
    hooks.on_status("tokenizing")
    from textclf.data.pipeline import encode_texts

    ids = [encode_texts(part.texts, built.encode) if part is not None else None
           for part in (data.fit, data.validation, data.evaluation)]
    if built.mode == END_TO_END:
        return _token_inputs(config, data, runtime, *ids)
    return _frozen_feature_inputs(built, config, data, runtime, hooks, *ids)


def _feature_row_inputs(built, config: RunConfig, data: _Data, runtime, hooks: _Hooks) -> _Inputs:
    """A bag of n-grams: its TF-IDF rows in numpy, once, nothing padded; only the head trains."""
    from textclf.data.pipeline import sparse_rows

    t = config.training
    fit, validation, evaluation = data.fit, data.validation, data.evaluation
    batch = runtime.global_batch_size
    hooks.on_status("computing the n-gram features")
    started = time.perf_counter()
    train_x = sparse_rows(built.train_rows if built.train_rows is not None and not t.refit
                          else built.feature_rows(fit.texts))
    val_x = sparse_rows(built.feature_rows(validation.texts)) if validation is not None else None
    feature_seconds = time.perf_counter() - started
    eval_x = sparse_rows(built.feature_rows(evaluation.texts))
    return _feature_inputs(data, t.seed, batch, train_x, val_x, eval_x, feature_seconds)


def _feature_inputs(data: _Data, seed: int, batch: int, train_x, val_x, eval_x, feature_seconds: float) -> _Inputs:
    """Batches of features computed once: shuffled epochs of the fit part, the validation and eval parts."""
    from textclf.data.pipeline import array_batches, feature_batches

    eval_batch = max(batch, 256)
    batches = lambda start: feature_batches(train_x, data.fit_targets(), global_batch_size=batch, seed=seed,  # noqa: E731
                                            start_epoch=start)
    val_data = array_batches(val_x, data.validation.labels, batch_size=eval_batch) if val_x is not None else None
    eval_data = array_batches(eval_x, data.evaluation.labels, batch_size=eval_batch)
    return _Inputs(True, batches, batches(0).steps, val_data, eval_data, feature_seconds, train_x, val_x)


def _token_inputs(config: RunConfig, data: _Data, runtime, train_ids, val_ids, eval_ids) -> _Inputs:
    """Every weight trains: batches of token ids, padded per batch."""
    from textclf.data.pipeline import eval_batches, training_batches

    t = config.training
    batch = runtime.global_batch_size
    eval_batch = max(batch, 256)
    batches = lambda start: training_batches(train_ids, data.fit_targets(), global_batch_size=batch, seed=t.seed,
                                             repeat=True, start_epoch=start, fixed_shapes=runtime.jit_compile)
    val_data = None if val_ids is None else eval_batches(val_ids, data.validation.labels, batch_size=eval_batch)
    return _Inputs(False, batches, batches(0).steps, val_data,
                   eval_batches(eval_ids, data.evaluation.labels, batch_size=eval_batch))


def _frozen_feature_inputs(built, config: RunConfig, data: _Data, runtime, hooks: _Hooks, train_ids, val_ids,
                           eval_ids) -> _Inputs:
    """The encoder cannot change: run it once over every text, then fit only the head."""
    from textclf.data.pipeline import feature_function, predict_by_length
    from textclf.runtime import float32_graphs

    t = config.training
    fit, validation, evaluation = data.fit, data.validation, data.evaluation
    batch = runtime.global_batch_size
    hooks.on_status("computing the frozen features")
    started = time.perf_counter()
    featurize = feature_function(built.features)
    feature_batch = max(batch, built.feature_batch_size)
    sizes = [len(fit), len(validation) if validation is not None else 0, len(evaluation)]
    progress = lambda before: lambda done: hooks.on_work("computing the frozen features", before + done, sum(sizes))  # noqa: E731
    train_x = predict_by_length(featurize, train_ids, feature_batch, progress(0))
    val_x = predict_by_length(featurize, val_ids, feature_batch, progress(sizes[0])) if validation is not None else None
    feature_seconds = time.perf_counter() - started  # training's share; eval's is evaluation
    with float32_graphs() as changed:  # the eval features as `evaluate` will compute them
        eval_x = predict_by_length(feature_function(built.features) if changed else featurize, eval_ids, feature_batch,
                                   progress(sizes[0] + sizes[1]))
    return _feature_inputs(data, t.seed, batch, train_x, val_x, eval_x, feature_seconds)


def _compiled(model, built, t, data: _Data, runtime, steps: int):
    """`model` compiled for training in the strategy's scope, its optimizer's variables made."""
    from textclf.callbacks import _DenseGradients
    from textclf.compat import create_optimizer_slots
    from textclf.optim import build_optimizer

    with runtime.strategy.scope():
        if runtime.name == "multi_worker":
            model = _DenseGradients(model.inputs, model(model.inputs))
        model.compile(
            optimizer=build_optimizer(t, steps * t.epochs),
            loss=_training_loss(built, t, data),
            metrics=[_training_metric(data)],
            # Several steps per tf.function call: small models on CPU are otherwise
            # dominated by per-step Python overhead.
            steps_per_execution=t.steps_per_execution,
            jit_compile=runtime.jit_compile,
        )
        create_optimizer_slots(model)
    return model


def _training_loss(built, t, data: _Data):
    """The loss the model fits: its family's or the task's, or a distilled student's on its packed targets."""
    if data.targets is None:
        return built.loss or task.loss(data.train.multilabel)
    from textclf.distillation import distillation_loss

    d = data.distill
    return distillation_loss(len(data.train.label_names), d.temperature, d.alpha, data.train.multilabel)


def _training_metric(data: _Data):
    if data.targets is None:
        return task.accuracy_metric(data.train.multilabel)
    from textclf.distillation import agreement_metric

    return agreement_metric(len(data.train.label_names), data.train.multilabel)


def _epoch_validation(model, data: _Data, inputs: _Inputs, timer, on_eval: bool):
    """Validation after each epoch on the gold labels, with the compiled loss (a distilled student's: the
    task's, on the gold labels) and the task's accuracy."""
    from textclf.callbacks import EpochValidation

    loss = model.loss if data.targets is None else task.example_loss(data.train.multilabel)
    return EpochValidation(inputs.eval_data if on_eval else inputs.val_data,
                           data.evaluation.labels if on_eval else data.validation.labels,
                           loss, task.accuracy_metric(data.train.multilabel), timer)


def _fit(built, config: RunConfig, data: _Data, inputs: _Inputs, runtime, run, hooks: _Hooks, resume: bool):
    """Epochs of the optimizer, with checkpoints, early stopping and an optional refit: the model, history, metrics."""
    from textclf._tf import keras
    from textclf.callbacks import EarlyStopping, EpochCheckpoint, NanGuard, TrainTimer, _ListenerCallback

    t = config.training
    train_data = inputs.batches(0)
    model = _compiled(built.head if inputs.frozen else built.model, built, t, data, runtime, train_data.steps)
    timer = TrainTimer()
    guard = NanGuard()
    stopping = EarlyStopping(t)
    # Every worker saves (others into their scratch folder): under MultiWorkerMirroredStrategy
    # checkpointing runs collective ops that all workers must join.
    state = EpochCheckpoint(run.checkpoints_dir, model, timer, guard=guard, stopping=stopping)
    initial_epoch = state.resume(run.epochs_done or 0, hooks.on_note) if resume else 0
    if initial_epoch:
        hooks.on_note(f"resuming after epoch {initial_epoch} of {t.epochs}")
        train_data = inputs.batches(initial_epoch)
    # Validation on the validation part, else the eval data; the last epoch's predictions are kept.
    on_eval = inputs.val_data is None
    validation = _epoch_validation(model, data, inputs, timer, on_eval)
    callbacks = [validation, timer, guard, state,
                 keras.callbacks.TensorBoard(log_dir=str(run.logs_dir), write_graph=False)]
    if hooks.listener is not None:
        callbacks.append(_ListenerCallback(hooks))
    if initial_epoch < t.epochs and not stopping.should_stop(state.history):
        model.fit(train_data.dataset, epochs=t.epochs, initial_epoch=initial_epoch, steps_per_epoch=train_data.steps,
                  callbacks=callbacks, verbose=0,
                  class_weight=None if data.class_weight is None else dict(enumerate(data.class_weight.tolist())))
    if guard.nan_epoch is not None:
        raise TextclfError(f"training stopped in epoch {guard.nan_epoch}: the loss became NaN; lower --learning-rate")
    history = state.history
    epochs_run = len(history.get("loss", []))
    if t.restore_best and stopping.best_epoch and stopping.best_epoch != epochs_run:
        hooks.on_status(f"restoring the weights of epoch {stopping.best_epoch} (best {t.monitor}; later ones improved it by at most min_delta {t.min_delta:g})")  # noqa: E501
        state.restore_best()
        validation.forget()  # its predictions were made with the last epoch's weights
    # Before any refit (which trains on the validation part too): what thresholds are tuned on.
    val_probs = None
    if (data.train.multilabel or t.calibration == "temperature") and inputs.val_data is not None:
        val_probs = validation.probs if validation.probs is not None else inputs.val_data.in_input_order(
            model.predict(inputs.val_data.dataset, verbose=0))
        val_probs = np.asarray(built.to_probabilities(val_probs)) if inputs.frozen else val_probs
    refit_epochs, refit_seconds = 0, 0.0
    if t.refit and data.validation is not None and stopping.best_epoch:
        model, refit_seconds = _refit_all(built, t, runtime, data, inputs, stopping.best_epoch, hooks)
        refit_epochs = stopping.best_epoch
        validation.forget()
    train_seconds = state.train_seconds() + inputs.feature_seconds + refit_seconds
    seen = len(data.fit) * epochs_run + len(data.train) * refit_epochs
    metrics = {"train_examples": len(data.train) if refit_epochs else len(data.fit), "train_seconds": train_seconds,
               "train_examples_per_second": seen / max(train_seconds, 1e-9), "frozen_features_cached": inputs.frozen,
               "epochs_run": epochs_run, "refit_epochs": refit_epochs, "best_epoch": stopping.best_epoch,
               "stopped_early": epochs_run < t.epochs, "validation_seconds": validation.seconds}
    # The final model's predictions on the eval data, when the last validation pass made them.
    inputs.eval_probs = validation.probs if on_eval else None
    return model, history, metrics, val_probs


def _finish(run, built, model, data: _Data, inputs: _Inputs, history, fit_metrics, hooks: _Hooks,
            val_probs=None, family: str = "", calibration: str = "none") -> RunResult:
    """Evaluate on the eval data, then save the model (with its `family`'s twin), plots and metrics and mark
    the run complete."""
    from textclf.twins import twin_arrays
    from textclf.runtime import float32_graphs

    hooks.on_status("evaluating")
    started = time.perf_counter()
    with float32_graphs() as changed:
        # The last epoch's validation pass was this prediction, unless it ran under the bf16 rewrite,
        # which `evaluate` never uses: one number per run and data.
        reused = inputs.eval_probs is not None and not changed
        if changed:
            model.make_predict_function(force=True)  # a new graph, optimized without the rewrite
        probs = inputs.eval_probs if reused else inputs.eval_data.in_input_order(
            model.predict(inputs.eval_data.dataset, verbose=0))
    eval_seconds = time.perf_counter() - started
    if inputs.frozen:  # the head's output (scores, for a hinge head) -> probabilities
        probs = np.asarray(built.to_probabilities(probs))
    from textclf.training.calibrate import calibrate, in_tensorflow

    multilabel = data.train.multilabel
    temperature, probs, val_probs, measured = calibrate(calibration, val_probs, data.validation, probs,
                                                        data.evaluation, hooks, in_tensorflow(multilabel),
                                                        train=data.train)
    served = built.inference_model(temperature, multilabel)
    hooks.on_status("making the model's twin for a fast predict")
    twin = twin_arrays(served, data.train.texts, family)
    return _save_run(run, served, twin, data, data.validation, probs, val_probs, history,
                     {**fit_metrics, **measured, "eval_seconds": eval_seconds, "eval_from_last_validation": reused},
                     hooks, solved=False)


def _save_run(run, served, twin, data: _Data, validation, probs: np.ndarray, val_probs, history, fit_metrics,
              hooks: _Hooks, solved: bool) -> RunResult:
    """The report of the eval predictions `probs`, then the run's files; marks it complete.

    Multi-label runs first tune a threshold per label on `val_probs` (the `validation` part's
    probabilities) and save them with the run. `served`: the Keras model (None: `twin` is the model).
    """
    from textclf.evaluation import multilabel_report, report_from_predictions, tune_thresholds
    from textclf.reports import save_run_plots

    evaluation = data.evaluation
    names = data.train.label_names
    thresholds = None
    if data.train.multilabel:
        thresholds = tune_thresholds(validation.labels, val_probs) if val_probs is not None \
            else np.full(len(names), 0.5)
        predicted = task.decide(probs, thresholds)
        report = multilabel_report(evaluation.labels, predicted, names, evaluation.source, thresholds)
        thresholds = {"thresholds": dict(zip(names, map(float, thresholds))),
                      "tuned_on": f"{len(validation)} validation examples" if val_probs is not None else None}
    else:
        predicted = task.decide(probs)
        report = report_from_predictions(evaluation.labels, predicted, names, evaluation.source)
    metrics = {**report.to_dict(), **fit_metrics,
               "validation_examples": len(validation) if validation is not None else 0,
               "train_class_counts": dict(zip(names, data.train.class_counts().tolist())),
               "class_weight": None if data.class_weight is None else
               dict(zip(data.train.label_names, map(float, data.class_weight))),
               "eval_fingerprint": evaluation.fingerprint()}
    hooks.on_status("saving")
    save_run_plots(run.path, report.to_dict(), {} if solved else history, probs, evaluation.labels)
    info = run.finish(served, metrics, history,
                      {"epochs": fit_metrics["epochs_run"], "accuracy": report.accuracy, "macro_f1": report.macro_f1},
                      predictions={"labels": evaluation.labels.astype(predicted.dtype), "predicted": predicted},
                      thresholds=thresholds, twin=twin)
    return RunResult(run.path, metrics, history, info)


def _refit_all(built, t, runtime, data: _Data, inputs: _Inputs, epochs: int, hooks: _Hooks):
    """training.refit: a fresh head trained on the fit and validation features together for `epochs`."""
    from textclf.data.pipeline import concat_features

    if not inputs.frozen:
        raise TextclfError("training.refit needs a model whose features are computed once "
                           "(ngram-linear, ngram-mlp, a frozen BERT); drop it for this model")
    hooks.on_status(f"refitting on all {len(data.train)} training examples for {epochs} epochs")
    return _refit(built, t, runtime, concat_features([inputs.train_x, inputs.val_x]),
                  np.concatenate([data.fit.labels, data.validation.labels]), epochs, data.class_weight)


def _refit(built, t, runtime, features, labels: np.ndarray, epochs: int, class_weight=None):
    """A fresh head (same seed) trained on all the training features for `epochs`; it and its seconds.

    `built.model` becomes features -> the new head, so the saved run predicts with it.
    """
    from textclf._tf import keras
    from textclf.callbacks import TrainTimer
    from textclf.compat import create_optimizer_slots
    from textclf.data.pipeline import feature_batches
    from textclf.optim import build_optimizer

    keras.utils.set_random_seed(t.seed)
    data = feature_batches(features, labels, global_batch_size=runtime.global_batch_size, seed=t.seed)
    with runtime.strategy.scope():
        head = keras.models.clone_model(built.head)
        head.compile(optimizer=build_optimizer(t, data.steps * epochs),
                     loss=built.loss or task.loss(labels.ndim == 2),
                     steps_per_execution=t.steps_per_execution)
        create_optimizer_slots(head)
    timer = TrainTimer()
    head.fit(data.dataset, epochs=epochs, steps_per_epoch=data.steps, callbacks=[timer], verbose=0,
             class_weight=None if class_weight is None else dict(enumerate(class_weight.tolist())))
    ids = built.model.inputs[0]
    built.model = keras.Model(ids, built.to_probabilities(head(built.features(ids))), name=built.model.name)
    built.head = head
    return head, timer.train_seconds
