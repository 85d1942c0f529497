"""run_training(config) -> RunResult: the only training path, used by every train command."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence


import numpy as np

from textclf import runs
from textclf._tf import keras
from textclf.config import RunConfig
from textclf.errors import ConfigError, RunError, TextclfError, write_failure


class Listener:
    """Progress hooks (the CLI draws a rich progress bar with them).

    Every hook is optional: subclass this, or pass any object with some of these methods;
    run_training calls only the ones it has.
    """

    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_batch(self, epoch: int, step: int, logs: dict[str, float]) -> None: ...
    def on_epoch(self, epoch: int, logs: dict[str, float]) -> None: ...
    def on_status(self, message: str) -> None: ...
    def on_note(self, line: str) -> None: ...


_HOOKS = ("on_start", "on_batch", "on_epoch", "on_status", "on_note")


class _Hooks:
    """A listener's hooks, a no-op for each one it lacks (or for no listener)."""

    def __init__(self, listener: Any) -> None:
        self.listener = listener
        for name in _HOOKS:
            setattr(self, name, getattr(listener, name, None) or (lambda *args: None))
        # A listener without on_note hears notes as status lines.
        if listener is not None and not hasattr(listener, "on_note"):
            self.on_note = self.on_status


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
    listener: Any = None,
    resume: bool = False,
    experiment: str | None = None,
    group: dict[str, Any] | None = None,
) -> RunResult:
    """Train `config`, evaluate on its eval data and write a complete run directory.

    With `resume`, `run_dir` is an unfinished run of the same config: training continues
    after its last completed epoch (weights, optimizer and RNG state from the checkpoint,
    the data order of the remaining epochs as in an uninterrupted run). `listener`: a
    Listener (or any object with some of its hooks). `group`: this run's place in a group of
    runs ({"id", "kind", "size", "index"}, see run_group), recorded in run.json.
    """
    from textclf.models.catalog import MODELS
    from textclf.runtime import reset_precision, setup_runtime

    hooks = _Hooks(listener)
    if config.data.folds and config.data.fold is None:
        raise ConfigError(f"data.folds {config.data.folds}: cross-validation trains one run per fold; "
                          "run the group (training.run_group), or set data.fold")
    entry = MODELS.get(config.model)
    if resume:
        runs.check_resumable(run_dir, config)
    # The strategy comes first: MultiWorkerMirroredStrategy must exist before other TF work.
    runtime = setup_runtime(config.runtime, config.training.global_batch_size,
                            cpu_bf16_model=config.model_params.cpu_bf16)
    if runtime.global_batch_size != config.training.global_batch_size:  # --per-replica-batch-size: record the batch used
        config = dataclasses.replace(config, training=dataclasses.replace(
            config.training, global_batch_size=runtime.global_batch_size))
    keras.utils.set_random_seed(config.training.seed)
    # Dropout draws from tf.random.Generator objects, whose state can be checkpointed; the
    # legacy stateful ops restart their streams after a resume.
    keras.backend.experimental.enable_tf_random_generator()
    stages = {}  # seconds of the stages before training, recorded in metrics.json
    try:
        started = time.perf_counter()
        data = _load_data(config, hooks)
        stages["load_seconds"] = time.perf_counter() - started
        if resume and runs.Run(run_dir).labels != list(data.train.label_names):
            raise TextclfError(f"cannot resume {run_dir}: its labels differ from the data's labels now")
        # Built before the run directory exists: an unusable model (e.g. an unreachable hub
        # handle) leaves no run behind.
        started = time.perf_counter()
        built, config = _build_model(config, entry, runtime, data, hooks)
        stages["build_seconds"] = time.perf_counter() - started
        with runs.start(runs_root, experiment or config.model, config.to_dict(), list(data.train.label_names),
                        run_dir=run_dir, resume=resume, scratch=not runtime.is_chief, model=config.model,
                        experiment=experiment, data=config.data.train, eval_data=data.evaluation.source,
                        runtime=runtime.to_dict(), **({"group": group} if group else {})) as run:
            started = time.perf_counter()
            inputs = _prepare_inputs(built, config, data, runtime, hooks)
            # tokenizing every text (and, for a frozen encoder, computing its features once)
            stages["prepare_seconds"] = time.perf_counter() - started
            hooks.on_start({"epochs": 0 if inputs.solved else config.training.epochs, "initial_epoch": 0,
                            "steps": 0 if inputs.solved else inputs.steps, "train_examples": len(data.fit),
                            "eval_examples": len(data.evaluation),
                            "validation_examples": len(data.validation) if data.validation is not None else 0,
                            "labels": list(data.train.label_names), "run_dir": str(run.path),
                            "runtime": runtime.describe(), "notes": list(built.notes)})
            if inputs.solved:
                model, history, metrics, val_probs = _solve(built, data, inputs, hooks)
            else:
                model, history, metrics, val_probs = _fit(built, config, data, inputs, runtime, run, hooks, resume)
            return _finish(run, built, model, data, inputs, history, {**stages, **metrics}, hooks, val_probs)
    finally:
        reset_precision()


def resume_run(run_dir: str | Path, overrides: Mapping[str, Any] | None = None, *, listener: Any = None) -> RunResult:
    """Continue an interrupted run with the config saved in it.

    `overrides` are the other settings given with the resume (a config layer, plus e.g.
    `experiment` or `run_dir`): a resumed run keeps its saved config, so any of them is an error.
    """
    from textclf.config import layer_paths, resolve_config

    given = sorted(layer_paths(overrides or {}))
    if given:
        raise ConfigError(f"resuming {run_dir} continues it with its saved config; drop the other config options "
                          f"({', '.join(given)})")
    run = runs.Run(runs.check_resumable(run_dir))
    return run_training(resolve_config(run.config), run_dir=run.path, listener=listener, resume=True,
                        experiment=run.info.get("experiment"))


@dataclass
class GroupResult:
    """A finished group: its runs and the mean, sd and 95% interval of their metrics."""

    id: str
    kind: str  # seeds | folds | seeds+folds
    results: list[RunResult]
    summary: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.id, "kind": self.kind, "runs": [str(r.run_dir) for r in self.results], **self.summary}


def group_members(config: RunConfig) -> tuple[str, list[RunConfig]]:
    """The kind of group and the config of each of its runs: seeds seed, seed + 1, …; each fold; or both."""
    t, d = config.training, config.data
    seeds = [t.seed + i for i in range(t.seeds)]
    folds = list(range(d.folds)) if d.folds else [None]
    kind = "+".join(k for k, on in (("seeds", t.seeds > 1), ("folds", bool(d.folds))) if on) or "single"
    members = [dataclasses.replace(config, training=dataclasses.replace(t, seed=seed),
                                   data=dataclasses.replace(d, fold=fold)) for seed in seeds for fold in folds]
    return kind, members


def run_group(config: RunConfig, *, runs_root: str | Path = runs.DEFAULT_ROOT, experiment: str | None = None,
              each: Callable[..., RunResult] | None = None, fresh: bool = True) -> GroupResult:
    """Train the runs of `config`'s group (training.seeds > 1 and/or data.folds), each a complete run.

    `each(index, total, train)` runs one member, where `train(listener)` trains it (default: no
    listener); the CLI draws its progress this way. Unless `fresh`, an unfinished group of the
    same experiment and configs continues: its complete runs are kept, its interrupted run
    resumes, the rest start.
    """
    from textclf.reports import summarize_runs

    kind, members = group_members(config)
    configs = [m.to_dict() for m in members]
    found = None if fresh or not experiment else runs.unfinished_group(runs_root, experiment, configs)
    group_id, earlier = found or (runs.new_group_id(experiment or config.model, kind, len(members)), {})
    results = []
    for index, member in enumerate(members):
        info = {"id": group_id, "kind": kind, "size": len(members), "index": index}
        path, state = earlier.get(index, (None, None))
        if state == "complete":
            done = runs.Run.open(path)
            results.append(RunResult(path, done.metrics, done.history, done.info))
            continue
        if state is not None:
            train = lambda listener, p=path: resume_run(p, listener=listener)
        else:
            train = lambda listener, m=member, i=info: run_training(m, runs_root=runs_root, listener=listener,
                                                                    experiment=experiment, group=i)
        results.append(each(index, len(members), train) if each else train(None))
    return GroupResult(group_id, kind, results, summarize_runs([r.run_dir for r in results]))


@dataclass
class _Data:
    """The examples of a run: all training data, its fit and validation parts, the eval data."""

    train: Any
    fit: Any
    validation: Any
    evaluation: Any
    class_weight: np.ndarray | None = None  # per class, from training.class_weight


def _load_data(config: RunConfig, hooks: _Hooks) -> _Data:
    from textclf.data.sources import holdout_split, load_train_eval
    from textclf.reports import preload_plotting

    t = config.training
    preload_plotting()
    hooks.on_status("loading data")
    train, evaluation = load_train_eval(config.data, t.seed)
    if train.multilabel and t.class_weight != "none":
        raise ConfigError(f"training.class_weight {t.class_weight}: class weights are for single-label data; "
                          "multi-label runs tune a threshold per label on the validation part instead")
    # Early stopping must never look at the eval data: it watches a part of the training data. Multi-label
    # runs always have one: their per-label thresholds are tuned on it.
    if train.multilabel:
        per_text = train.labels.sum(axis=1)
        hooks.on_note(f"multi-label data: {per_text.mean():.2f} labels per text on average (0-{per_text.max()}), "
                      f"{len(train.label_names)} labels; a sigmoid per label")
    fraction = t.validation_fraction or (MULTILABEL_VALIDATION if train.multilabel else 0.0)
    if fraction and not t.validation_fraction:
        hooks.on_note(f"multi-label data: {fraction:g} of the training data is held out to tune a threshold "
                      "per label (training.validation_fraction)")
    fit, validation = holdout_split(train, fraction, t.seed) if fraction else (train, None)
    return _Data(train, fit, validation, evaluation, class_weights(t.class_weight, fit.labels, train.label_names))


MULTILABEL_VALIDATION = 0.1  # the validation part of a multi-label run without training.validation_fraction


def class_weights(setting: str, labels: np.ndarray, names: Sequence[str]) -> np.ndarray | None:
    """training.class_weight as one weight per class: none -> None; balanced -> n / (classes × count_c)
    (scikit-learn's rule); a JSON file {"label": weight} -> those weights (1 for labels it leaves out)."""
    if setting == "none":
        return None
    k = len(names)
    if setting == "balanced":
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        return np.where(counts > 0, len(labels) / (k * np.maximum(counts, 1)), 1.0)
    import json

    from textclf.errors import DataError
    from textclf.textfiles import read_text

    try:
        given = json.loads(read_text(setting, what="class weight file"))
    except DataError as err:
        raise DataError(f"{err} (training.class_weight is none, balanced or a JSON file of label weights)") from None
    except ValueError as err:
        raise DataError(f"class weight file {setting}: not valid JSON ({err})") from None
    if not isinstance(given, dict):
        raise DataError(f"class weight file {setting}: expected a JSON object of label: weight")
    unknown = sorted(set(map(str, given)) - set(names))
    if unknown:
        raise DataError(f"class weight file {setting}: unknown label {unknown[0]!r} (classes: {', '.join(names)})")
    weights = np.ones(k)
    for i, name in enumerate(names):
        value = given.get(name, 1.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise DataError(f"class weight file {setting}: weight of {name!r} must be a number > 0, got {value!r}")
        weights[i] = float(value)
    return weights


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

    frozen: bool  # the features were computed once (a frozen encoder); only the head trains
    solved: bool  # and the head is fitted exactly (`built.solve`), no epochs
    batches: Callable[[int], Any] | None  # start epoch -> Batches
    steps: int
    val_data: Any
    eval_data: Any
    feature_seconds: float = 0.0
    train_x: Any = None
    val_x: Any = None
    eval_probs: Any = None  # set by _fit: the eval data's predictions by the final weights, if it made them


def _prepare_inputs(built, config: RunConfig, data: _Data, runtime, hooks: _Hooks) -> _Inputs:
    from textclf.data.pipeline import (array_batches, encode_texts, eval_batches, feature_batches, feature_function,
                                       predict_by_length, training_batches)

    t = config.training
    fit, validation, evaluation = data.fit, data.validation, data.evaluation
    hooks.on_status("tokenizing")
    train_ids = built.train_ids if built.train_ids is not None and not t.refit else encode_texts(fit.texts, built.encode)
    eval_ids = encode_texts(evaluation.texts, built.encode)
    val_ids = encode_texts(validation.texts, built.encode) if validation is not None else None
    batch = runtime.global_batch_size
    eval_batch = max(batch, 256)
    frozen = built.features is not None and built.head is not None and not built.features.trainable_weights
    if not frozen:
        batches = lambda start: training_batches(train_ids, fit.labels, global_batch_size=batch, seed=t.seed,
                                                 repeat=True, start_epoch=start, fixed_shapes=runtime.jit_compile)
        val_data = None if validation is None else eval_batches(val_ids, validation.labels, batch_size=eval_batch)
        return _Inputs(False, False, batches, batches(0).steps, val_data,
                       eval_batches(eval_ids, evaluation.labels, batch_size=eval_batch))
    # The encoder cannot change: run it once, then fit only the head.
    hooks.on_status("computing the frozen features")
    started = time.perf_counter()
    featurize = feature_function(built.features)
    feature_batch = max(batch, built.feature_batch_size)
    train_x = predict_by_length(featurize, train_ids, feature_batch)
    val_x = predict_by_length(featurize, val_ids, feature_batch) if validation is not None else None
    feature_seconds = time.perf_counter() - started  # training's share; eval's is evaluation
    eval_x = predict_by_length(featurize, eval_ids, feature_batch)
    batches = lambda start: feature_batches(train_x, fit.labels, global_batch_size=batch, seed=t.seed, start_epoch=start)
    val_data = array_batches(val_x, validation.labels, batch_size=eval_batch) if val_x is not None else None
    return _Inputs(True, built.solve is not None, batches, batches(0).steps, val_data,
                   array_batches(eval_x, evaluation.labels, batch_size=eval_batch), feature_seconds, train_x, val_x)


def _fit(built, config: RunConfig, data: _Data, inputs: _Inputs, runtime, run, hooks: _Hooks, resume: bool):
    """Epochs of the optimizer, with checkpoints, early stopping and an optional refit: the model, history, metrics."""
    from textclf.data.pipeline import concat_features
    from textclf.optim import build_optimizer

    t = config.training
    model = built.head if inputs.frozen else built.model
    train_data = inputs.batches(0)
    with runtime.strategy.scope():
        if runtime.name == "multi_worker":
            model = _DenseGradients(model.inputs, model(model.inputs))
        model.compile(
            optimizer=build_optimizer(t, train_data.steps * t.epochs),
            loss=built.loss or _default_loss(data.train.multilabel),
            metrics=[_accuracy_metric(data.train.multilabel)],
            # Several steps per tf.function call: small models on CPU are otherwise
            # dominated by per-step Python overhead.
            steps_per_execution=t.steps_per_execution,
            jit_compile=runtime.jit_compile,
        )
        _create_optimizer_slots(model)
    timer = TrainTimer()
    guard = NanGuard()
    stopping = EarlyStopping(t)
    # Every worker saves (others into their scratch folder): under MultiWorkerMirroredStrategy
    # checkpointing runs collective ops that all workers must join.
    state = EpochCheckpoint(run.checkpoints_dir, model, timer, guard=guard, stopping=stopping)
    initial_epoch = state.restore() if resume else 0
    if initial_epoch:
        hooks.on_note(f"resuming after epoch {initial_epoch} of {t.epochs}")
        train_data = inputs.batches(initial_epoch)
    # The epochs validate on the validation part, or else on the eval data; either way the
    # last epoch's predictions are kept, so the same pass is not run again after training.
    on_eval = inputs.val_data is None
    validation = EpochValidation(inputs.eval_data if on_eval else inputs.val_data,
                                 data.evaluation.labels if on_eval else data.validation.labels,
                                 model.loss, _accuracy_metric(data.train.multilabel), timer)
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
        hooks.on_status(f"restoring the weights of epoch {stopping.best_epoch} (best {t.monitor})")
        state.restore_best()
        validation.forget()  # its predictions were made with the last epoch's weights
    # Before any refit (which trains on the validation part too): what thresholds are tuned on.
    val_probs = None
    if data.train.multilabel and inputs.val_data is not None:
        val_probs = validation.probs if validation.probs is not None else inputs.val_data.in_input_order(
            model.predict(inputs.val_data.dataset, verbose=0))
        val_probs = np.asarray(built.to_probabilities(val_probs)) if inputs.frozen else val_probs
    refit_epochs, refit_seconds = 0, 0.0
    if t.refit and data.validation is not None and stopping.best_epoch:
        if not inputs.frozen:
            raise TextclfError("training.refit needs a model whose features are computed once "
                               "(ngram-linear, ngram-mlp, a frozen BERT); drop it for this model")
        hooks.on_status(f"refitting on all {len(data.train)} training examples for {stopping.best_epoch} epochs")
        model, refit_seconds = _refit(built, t, runtime, concat_features([inputs.train_x, inputs.val_x]),
                                      np.concatenate([data.fit.labels, data.validation.labels]), stopping.best_epoch,
                                      data.class_weight)
        refit_epochs = stopping.best_epoch
        validation.forget()
    train_seconds = state.train_seconds() + inputs.feature_seconds + refit_seconds
    seen = len(data.fit) * epochs_run + len(data.train) * refit_epochs
    metrics = {"train_examples": len(data.train) if refit_epochs else len(data.fit), "train_seconds": train_seconds,
               "train_examples_per_second": seen / max(train_seconds, 1e-9),
               "frozen_features_cached": inputs.frozen, "epochs_run": epochs_run, "refit_epochs": refit_epochs,
               "best_epoch": stopping.best_epoch, "stopped_early": epochs_run < t.epochs,
               "validation_seconds": validation.seconds}
    # The final model's predictions on the eval data, when the last validation pass made them.
    inputs.eval_probs = validation.probs if on_eval else None
    return model, history, metrics, val_probs


def _solve(built, data: _Data, inputs: _Inputs, hooks: _Hooks):
    """The head fitted exactly by `built.solve` (L-BFGS, C chosen on the validation part): the model, history, metrics."""
    started = time.perf_counter()
    validation = data.validation
    solved = built.solve(fit_x=inputs.train_x, fit_y=data.fit.labels, val_x=inputs.val_x,
                         val_y=validation.labels if validation is not None else None, say=hooks.on_note,
                         class_weight=data.class_weight)
    solve_seconds = time.perf_counter() - started
    trained = solved["train_examples"]
    hooks.on_note(f"C {solved['c']:g} fitted on all {trained} training examples "
                  f"({solved['history']['refit_iterations'][0]} L-BFGS iterations, {solve_seconds:.1f} s)")
    train_seconds = inputs.feature_seconds + solve_seconds
    history = solved["history"]
    metrics = {"train_examples": trained, "train_seconds": train_seconds,
               # examples in the final fit per second of features + all solves (L-BFGS reads them many times)
               "train_examples_per_second": trained / max(train_seconds, 1e-9),
               "frozen_features_cached": True, "solver": "lbfgs", "c": solved["c"],
               "c_tried": history["c"], "softmax_scale": solved["softmax_scale"],
               "epochs_run": 0, "refit_epochs": 0, "best_epoch": None, "stopped_early": False}
    return built.head, history, metrics, solved.get("val_probabilities")


def _finish(run, built, model, data: _Data, inputs: _Inputs, history, fit_metrics, hooks: _Hooks,
            val_probs=None) -> RunResult:
    """Evaluate on the eval data, then save the model, plots and metrics and mark the run complete.

    Multi-label runs first tune a threshold per label on `val_probs` (the validation part's
    probabilities) and save them with the run.
    """
    from textclf.evaluation import multilabel_report, report_from_predictions, tune_thresholds
    from textclf.reports import save_run_plots

    hooks.on_status("evaluating")
    started = time.perf_counter()
    reused = inputs.eval_probs is not None  # the last epoch's validation pass was this prediction
    probs = inputs.eval_probs if reused else inputs.eval_data.in_input_order(
        model.predict(inputs.eval_data.dataset, verbose=0))
    eval_seconds = time.perf_counter() - started
    if inputs.frozen:  # the head's output (scores, for a hinge head) -> probabilities
        probs = np.asarray(built.to_probabilities(probs))
    evaluation = data.evaluation
    names = data.train.label_names
    thresholds = None
    if data.train.multilabel:
        thresholds = tune_thresholds(data.validation.labels, val_probs) if val_probs is not None \
            else np.full(len(names), 0.5)
        predicted = (probs >= thresholds).astype(np.uint8)
        report = multilabel_report(evaluation.labels, predicted, names, evaluation.source, thresholds)
        thresholds = {"thresholds": dict(zip(names, map(float, thresholds))),
                      "tuned_on": f"{len(data.validation)} validation examples" if val_probs is not None else None}
    else:
        predicted = probs.argmax(axis=1)
        report = report_from_predictions(evaluation.labels, predicted, names, evaluation.source)
    metrics = {**report.to_dict(), **fit_metrics,
               "validation_examples": len(data.validation) if data.validation is not None else 0,
               "train_class_counts": dict(zip(names, data.train.class_counts().tolist())),
               "class_weight": None if data.class_weight is None else
               dict(zip(data.train.label_names, map(float, data.class_weight))),
               "eval_fingerprint": evaluation.fingerprint(),
               "eval_seconds": eval_seconds, "eval_from_last_validation": reused}
    hooks.on_status("saving")
    save_run_plots(run.path, report.to_dict(), {} if inputs.solved else history)
    from textclf.lite import twin_arrays

    served = built.inference_model()
    info = run.finish(served, metrics, history,
                      {"epochs": fit_metrics["epochs_run"], "accuracy": report.accuracy, "macro_f1": report.macro_f1},
                      predictions={"labels": evaluation.labels.astype(predicted.dtype), "predicted": predicted},
                      thresholds=thresholds, lite=twin_arrays(served, data.train.texts))
    return RunResult(run.path, metrics, history, info)


def _refit(built, t, runtime, features, labels: np.ndarray, epochs: int, class_weight=None):
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
                     loss=built.loss or _default_loss(labels.ndim == 2),
                     steps_per_execution=t.steps_per_execution)
        _create_optimizer_slots(head)
    timer = TrainTimer()
    head.fit(data.dataset, epochs=epochs, steps_per_epoch=data.steps, callbacks=[timer], verbose=0,
             class_weight=None if class_weight is None else dict(enumerate(class_weight.tolist())))
    ids = built.model.inputs[0]
    built.model = keras.Model(ids, built.to_probabilities(head(built.features(ids))), name=built.model.name)
    built.head = head
    return head, timer.train_seconds


def _default_loss(multilabel: bool):
    """Cross-entropy on the model's probabilities: over the classes, or per label (multi-label data)."""
    return keras.losses.BinaryCrossentropy() if multilabel else keras.losses.SparseCategoricalCrossentropy()


def subset_accuracy(y_true, y_pred):
    """Multi-label accuracy (scikit-learn's accuracy_score on label sets): 1 when every label's
    probability is on the right side of 0.5, else 0."""
    from textclf._tf import tf

    match = tf.equal(tf.cast(y_true > 0.5, tf.bool), tf.cast(y_pred >= 0.5, tf.bool))
    return tf.cast(tf.reduce_all(match, axis=-1), tf.float32)


def _accuracy_metric(multilabel: bool):
    if multilabel:
        return keras.metrics.MeanMetricWrapper(subset_accuracy, name="accuracy")
    return keras.metrics.SparseCategoricalAccuracy(name="accuracy")


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


class EarlyStopping:
    """Early stopping as Keras' EarlyStopping decides it, recomputed from the history (so it survives a resume).

    An epoch improves on the best so far only by more than `min_delta` on `monitor`; after
    `patience` epochs without one, training stops (patience 0: never).
    """

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.best_epoch: int | None = None  # 1-based

    def replay(self, history: dict[str, list[float]]) -> int:
        """Set the best epoch from the history; the epochs since it."""
        values = history.get(self.cfg.monitor, [])
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

    def should_stop(self, history: dict[str, list[float]]) -> bool:
        """Patience used up (this also sets best_epoch)."""
        wait = self.replay(history)
        return self.cfg.patience > 0 and wait >= self.cfg.patience


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss or epoch metric; `nan_epoch` says where (1-based).

    It must come before EpochCheckpoint in the callback list: a diverged epoch is never checkpointed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.nan_epoch: int | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if logs and not math.isfinite(float(logs.get("loss", 0.0))):
            self.nan_epoch = self.nan_epoch or self._epoch + 1
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_epoch is not None or not all(math.isfinite(float(v)) for v in (logs or {}).values()):
            self.nan_epoch = self.nan_epoch or epoch + 1
            self.model.stop_training = True


class EpochCheckpoint(keras.callbacks.Callback):
    """Makes every finished epoch durable, so a run can resume after it.

    After each epoch: progress.json (history and training seconds so far) is written, then a
    checkpoint of the weights, the optimizer (its step count drives the learning-rate
    schedule) and the dropout RNG state; with `stopping` it also keeps the best epoch's
    weights (restore_best) and stops when its patience is used up. `restore()` returns the
    epochs to skip. `timer` (and `guard`) must come before this callback in the callback list.
    """

    def __init__(self, directory: Path, model: keras.Model, timer: TrainTimer, *, guard: NanGuard | None = None,
                 stopping: EarlyStopping | None = None) -> None:
        from textclf._tf import tf

        super().__init__()
        self.directory, self.timer, self.guard, self.stopping = Path(directory), timer, guard, stopping
        self.progress_path = self.directory / runs.PROGRESS_FILE
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
        self.ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer, rng=_generators(model),
                                        epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(self.ckpt, str(self.directory / "last"), max_to_keep=1)
        self.best_ckpt = tf.train.Checkpoint(model=model)
        self.best_manager = tf.train.CheckpointManager(self.best_ckpt, str(self.directory / "best"), max_to_keep=1)
        self.history: dict[str, list[float]] = {}
        self.seconds: list[float] = []  # training seconds up to the end of each epoch
        self.resumed_seconds = 0.0
        self.directory.mkdir(parents=True, exist_ok=True)

    def restore(self) -> int:
        """Load the last checkpoint (if any); the number of completed epochs."""
        path = self.manager.latest_checkpoint
        if path is None:
            return 0
        from textclf._tf import tf

        try:
            status = self.ckpt.restore(path).expect_partial()
        except (tf.errors.OpError, ValueError, IndexError, KeyError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            raise TextclfError(f"cannot resume: the checkpoint in {self.directory} is unreadable ({first}); "
                               "the run cannot continue, train it again from the start") from None
        try:
            # The optimizer's variables exist before this (`_create_optimizer_slots`), so a checkpoint
            # without them (e.g. written by textclf's earlier optimizer class) is found here, not
            # silently resumed with fresh Adam moments.
            status.assert_existing_objects_matched()
        except AssertionError:
            raise TextclfError(f"cannot resume: the checkpoint in {self.directory} does not match this "
                               "model and optimizer (written by another textclf version?); start the run again") from None
        done = int(self.epoch.numpy())
        progress = runs.read_object(self.progress_path)
        self.history = {k: list(v)[:done] for k, v in progress.get("history", {}).items()}
        self.seconds = list(progress.get("seconds", []))[:done]
        self.resumed_seconds = self.seconds[-1] if self.seconds else 0.0
        if self.stopping is not None:
            self.stopping.replay(self.history)
        return done

    def train_seconds(self) -> float:
        """Training time over all epochs, across resumes."""
        return self.resumed_seconds + self.timer.train_seconds

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.nan_epoch is not None:
            return  # never checkpoint a diverged model
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.seconds.append(self.train_seconds())
        stop = self.stopping is not None and self.stopping.should_stop(self.history)
        if self.stopping is not None and self.stopping.cfg.restore_best and self.stopping.best_epoch == epoch + 1:
            self.best_manager.save(checkpoint_number=epoch + 1)
        from textclf._tf import tf

        try:
            runs.write_json(self.progress_path, {"epochs_done": epoch + 1, "history": self.history,
                                                 "seconds": self.seconds})
            self.epoch.assign(epoch + 1)
            self.manager.save(checkpoint_number=epoch + 1)
        except (OSError, tf.errors.OpError) as err:  # e.g. SaveV2 on a full disk
            raise RunError(f"cannot write the run in {self.directory.parent}: {write_failure(err)}") from None
        self.model.stop_training = stop

    def restore_best(self) -> None:
        """The weights of the best epoch (restore_best)."""
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
        sample_weight = data[2] if len(data) > 2 else None  # from class_weight
        optimizer = self.optimizer
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
            scaled = optimizer.get_scaled_loss(loss) if hasattr(optimizer, "get_scaled_loss") else loss
        grads = tape.gradient(scaled, self.trainable_variables)
        if hasattr(optimizer, "get_unscaled_gradients"):
            grads = optimizer.get_unscaled_gradients(grads)
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self.compute_metrics(x, y, y_pred, sample_weight)


class TrainTimer(keras.callbacks.Callback):
    """Seconds spent on training batches (each epoch minus its validation pass, see `exclude`)."""

    def __init__(self) -> None:
        super().__init__()
        self.train_seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start, self._excluded = time.perf_counter(), 0.0

    def exclude(self, seconds: float) -> None:
        """Seconds of this epoch that were not training (called before this callback's on_epoch_end)."""
        self._excluded += seconds

    def on_epoch_end(self, epoch, logs=None):
        self.train_seconds += time.perf_counter() - self._epoch_start - self._excluded


class EpochValidation(keras.callbacks.Callback):
    """Each epoch's validation pass, computed as `fit(validation_data=...)` does, its predictions kept.

    At the end of every epoch the model predicts `batches` (rows back in the order of `labels`) and the logs
    get `val_loss` (the compiled loss plus the model's regularization losses, averaged over the
    examples, as Keras' evaluate computes it) and `val_<metric>`. The last epoch's
    probabilities stay in `probs`: when the epochs validate on the eval data, they are the final
    model's eval predictions, and the report uses them instead of predicting a second time.
    It must come first in the callback list (the others read the val_ logs; `timer` excludes it).
    """

    def __init__(self, batches, labels: np.ndarray, loss, metric, timer: TrainTimer) -> None:
        super().__init__()
        self.batches, self.labels, self.loss, self.metric, self.timer = batches, labels, keras.losses.get(loss), metric, timer
        self.probs: np.ndarray | None = None
        self.seconds = 0.0

    def forget(self) -> None:
        """The weights changed after the last epoch (restore_best, refit): its predictions are stale."""
        self.probs = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        from textclf._tf import tf

        started = time.perf_counter()
        probs = self.batches.in_input_order(self.model.predict(self.batches.dataset, verbose=0))
        y_true = tf.constant(self.labels)
        y_pred = tf.constant(probs, dtype=tf.float32)
        loss = tf.reduce_mean(self.loss(y_true, y_pred))  # a loss function (not a Loss) gives one per example
        if self.model.losses:
            loss += tf.add_n(self.model.losses)
        self.metric.reset_state()
        self.metric.update_state(y_true, y_pred)
        logs["val_loss"] = float(loss)
        logs[f"val_{self.metric.name}"] = float(self.metric.result())
        self.probs = probs
        seconds = time.perf_counter() - started
        self.seconds += seconds
        self.timer.exclude(seconds)


class _ListenerCallback(keras.callbacks.Callback):
    def __init__(self, hooks: _Hooks) -> None:
        super().__init__()
        self.hooks = hooks
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.hooks.on_batch(self._epoch, batch + 1, {k: float(v) for k, v in (logs or {}).items()})

    def on_epoch_end(self, epoch, logs=None):
        self.hooks.on_epoch(epoch, {k: float(v) for k, v in (logs or {}).items()})
