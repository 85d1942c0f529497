"""run_training(config) -> RunResult: the only training path, used by every train command."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence


import numpy as np

from textclf import runs
from textclf import task
from textclf.config import RunConfig
from textclf.errors import ConfigError, RunError, TextclfError


# Defined in textclf.callbacks (Keras), importable from here as before this module stopped importing TensorFlow.
_FROM_CALLBACKS = frozenset(["EarlyStopping", "NanGuard", "EpochCheckpoint", "_DenseGradients", "TrainTimer",
                             "EpochValidation", "_ListenerCallback"])


def __getattr__(name: str):
    """The Keras callbacks, metrics and losses live in textclf.callbacks (imported on first use: the
    default model trains without TensorFlow); `from textclf.training import TrainTimer` still works.
    Any other missing name (e.g. a hasattr probe, or __path__ during `from ... import`) imports nothing."""
    if name not in _FROM_CALLBACKS:
        raise AttributeError(f"module 'textclf.training' has no attribute {name!r}")
    import textclf.callbacks as callbacks

    return getattr(callbacks, name)


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


_HOOKS = ("on_start", "on_batch", "on_epoch", "on_status", "on_note", "on_work")


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

    With `resume`, `run_dir` is an unfinished run of the same config: training continues after its last
    completed epoch (weights, optimizer and RNG state from the checkpoint, the data order of the remaining
    epochs as in an uninterrupted run). `listener`: a Listener (or any object with some of its hooks).
    `group`: this run's place in a group of runs ({"id", "kind", "size", "index"}, see run_group).
    """
    from textclf.models.catalog import MODELS

    hooks = _Hooks(listener)
    if config.data.folds and config.data.fold is None:
        raise ConfigError(f"data.folds {config.data.folds}: cross-validation trains one run per fold; "
                          "run the group (training.run_group), or set data.fold")
    entry = MODELS.get(config.model)
    if resume:
        runs.check_resumable(run_dir, config)
    if trains_without_tensorflow(config):
        return _run_native(config, runs_root=runs_root, run_dir=run_dir, hooks=hooks, resume=resume,
                           experiment=experiment, group=group)
    from textclf.runtime import reset_precision

    _read_before_tensorflow(config)
    requested = config.to_dict()  # before the values derived from the data and machine (to find it again)
    runtime, config = _keras_runtime(config)
    stages = {}  # seconds of the stages before training, recorded in metrics.json
    try:
        started = time.perf_counter()
        data = _load_data(config, hooks)
        stages["load_seconds"] = time.perf_counter() - started
        _check_resumed_labels(resume, run_dir, data)
        # Built before the run directory exists: an unusable model (e.g. an unreachable hub
        # handle) leaves no run behind.
        started = time.perf_counter()
        built, config = _build_model(config, entry, runtime, data, hooks)
        stages["build_seconds"] = time.perf_counter() - started
        derived = {"requested_config": requested} if requested != config.to_dict() and not resume else {}
        with runs.start(runs_root, experiment or run_name(config), config.to_dict(), list(data.train.label_names),
                        run_dir=run_dir, resume=resume, scratch=not runtime.is_chief, model=config.model,
                        experiment=experiment, data=config.data.train, eval_data=data.evaluation.source,
                        runtime=runtime.to_dict(), **({"group": group} if group else {}), **derived) as run:
            started = time.perf_counter()
            inputs = _prepare_inputs(built, config, data, runtime, hooks)  # tokens (frozen: features) once
            stages["prepare_seconds"] = time.perf_counter() - started
            hooks.on_start(_start_info(config, data, inputs, run, runtime, built))
            model, history, metrics, val_probs = _fit(built, config, data, inputs, runtime, run, hooks, resume)
            return _finish(run, built, model, data, inputs, history, {**stages, **metrics}, hooks, val_probs)
    finally:
        reset_precision()


def _start_info(config: RunConfig, data, inputs, run, runtime, built) -> dict[str, Any]:
    """What the listener's on_start is told about a Keras run."""
    return {"epochs": config.training.epochs, "initial_epoch": 0, "steps": inputs.steps,
            "train_examples": len(data.fit), "eval_examples": len(data.evaluation),
            "validation_examples": len(data.validation) if data.validation is not None else 0,
            "labels": list(data.train.label_names), "run_dir": str(run.path), "runtime": runtime.describe(),
            "notes": list(built.notes)}


def _read_before_tensorflow(config: RunConfig) -> None:
    """Read (and so check) file data before TensorFlow loads: a wrong column or label fails in a second.
    The read is kept for _load_data, which reads nothing again."""
    from textclf.data.sources import load_train_eval, reads_without_tensorflow

    if reads_without_tensorflow(config.data):
        load_train_eval(config.data, config.training.seed)


def _keras_runtime(config: RunConfig):
    """The distribution strategy, precision and seeds of a Keras run, and the config with the batch used."""
    from textclf._tf import keras
    from textclf.runtime import setup_runtime

    # The strategy comes first: MultiWorkerMirroredStrategy must exist before other TF work.
    runtime = setup_runtime(config.runtime, config.training.global_batch_size,
                            cpu_bf16_model=config.model_params.cpu_bf16)
    if runtime.global_batch_size != config.training.global_batch_size:  # --per-replica-batch-size: the batch used
        config = dataclasses.replace(config, training=dataclasses.replace(
            config.training, global_batch_size=runtime.global_batch_size))
    keras.utils.set_random_seed(config.training.seed)
    # Dropout draws from tf.random.Generator objects, whose state can be checkpointed; the
    # legacy stateful ops restart their streams after a resume.
    keras.backend.experimental.enable_tf_random_generator()
    return runtime, config


def config_epochs(run: "runs.Run") -> Any:
    return (run.config.get("training") or {}).get("epochs")


def run_name(config: RunConfig) -> str:
    """The name a run directory ends with: the model, and for a BERT encoder whether it was frozen or fine-tuned
    (`…-minilm-frozen`, `…-minilm-finetune`: two runs of one encoder, told apart by name)."""
    trainable = getattr(config.model_params, "trainable", None)
    return config.model if trainable is None else f"{config.model}-{'finetune' if trainable else 'frozen'}"


def _check_resumed_labels(resume: bool, run_dir, data) -> None:
    if resume and runs.Run(run_dir).labels != list(data.train.label_names):
        raise TextclfError(f"cannot resume {run_dir}: its labels differ from the data's labels now")


def trains_without_tensorflow(config: RunConfig) -> bool:
    """ngram-linear (the default) with its exact solver: numpy features and scikit-learn's liblinear
    (textclf.models.linear), no TensorFlow import; every other model trains with Keras."""
    params = config.model_params
    return getattr(params, "solver", None) in ("liblinear", "lbfgs") and getattr(params, "num_layers", 1) == 0


def _run_native(config: RunConfig, *, runs_root, run_dir, hooks: _Hooks, resume: bool, experiment, group) -> RunResult:
    """Train a model that needs no TensorFlow (trains_without_tensorflow): load, features + solve, evaluate,
    save. The run holds the model as arrays (model-lite.npz, the numpy twin format) and no model.keras;
    its eval predictions come from the very code `evaluate` runs, so both give one number."""
    from textclf.data.sources import holdout_mask
    from textclf.twins import Twin
    from textclf.models.linear import fit_linear, make_features

    _check_native_runtime(config)
    started = time.perf_counter()
    # matplotlib is imported while the fits run in their processes (fit_linear's `idle`), not now: the
    # features hold the GIL (SST-2's took 2.0-2.5 s with the import beside them, 1.8 s without)
    data = _load_data(config, hooks, split=False, preload=False)
    load_seconds = time.perf_counter() - started
    _check_resumed_labels(resume, run_dir, data)
    train = data.train
    fraction = _validation_fraction(config.training, train)
    held = holdout_mask(train, fraction, config.training.seed) if fraction else None
    # The features before the run directory: texts without any n-gram leave no run behind.
    hooks.on_status("computing the n-gram features")
    features = make_features(config.model_params, train.texts, say=hooks.on_note,
                             progress=lambda done, total: hooks.on_work("computing the n-gram features", done, total))
    with runs.start(runs_root, experiment or run_name(config), config.to_dict(), list(train.label_names),
                    run_dir=run_dir, resume=resume, model=config.model, experiment=experiment, data=config.data.train,
                    eval_data=data.evaluation.source, runtime={"strategy": "none", "replicas": 1,
                                                               "precision": "float64 (liblinear)"},
                    **({"group": group} if group else {})) as run:
        n_held = int(held.sum()) if held is not None else 0
        hooks.on_start({"epochs": 0, "initial_epoch": 0, "steps": 0, "train_examples": len(train),
                        "eval_examples": len(data.evaluation), "validation_examples": n_held,
                        "labels": list(train.label_names), "run_dir": str(run.path),
                        "runtime": "CPU, liblinear (no TensorFlow)", "notes": []})
        hooks.on_status("fitting (liblinear)")
        from textclf.reports import preload_plotting

        solved = fit_linear(config.model_params, train.texts, train.labels, len(train.label_names), held,
                            class_weight=data.class_weight, say=hooks.on_note, features=features,
                            idle=preload_plotting)
        del features
        hooks.on_note(f"C {solved['c']:g} fitted on all {solved['train_examples']} training examples "
                      f"({solved['solve_seconds']:.1f} s of liblinear fits)")
        hooks.on_status("evaluating")
        started = time.perf_counter()
        probs = Twin(solved["arrays"]).probabilities(list(data.evaluation.texts))
        metrics = _native_metrics(solved, load_seconds, time.perf_counter() - started)
        validation = data.train.subset(held, "validation") if held is not None else None
        return _save_run(run, None, solved["arrays"], data, validation, probs, solved["val_probabilities"],
                         solved["history"], metrics, hooks, solved=True)


def _check_native_runtime(config: RunConfig) -> None:
    """Runtime settings a liblinear fit cannot honour are errors, not ignored; TF_CONFIG is checked as for
    Keras models."""
    from textclf.runtime import tf_config

    if config.runtime.strategy not in ("auto", "default") or config.runtime.precision not in ("auto", "float32"):
        raise ConfigError(f"{config.model} is fitted by liblinear on the CPU, without TensorFlow: "
                          "--strategy and --precision do not apply to it")
    workers = sum(len(hosts) for hosts in tf_config().get("cluster", {}).values())
    if workers > 1:
        raise ConfigError(f"{config.model} is fitted by liblinear in one process, but TF_CONFIG names a cluster "
                          f"of {workers} hosts: unset TF_CONFIG, or train a Keras model (e.g. --model ngram-mlp)")


def _native_metrics(solved: dict, load_seconds: float, eval_seconds: float) -> dict:
    """metrics.json's training part for a liblinear fit (the same keys as an epoch-trained run's)."""
    train_seconds = solved["feature_seconds"] + solved["solve_seconds"]
    return {"train_examples": solved["train_examples"], "train_seconds": train_seconds,
            "train_examples_per_second": solved["train_examples"] / max(train_seconds, 1e-9),
            "feature_seconds": solved["feature_seconds"], "solve_seconds": solved["solve_seconds"],
            "frozen_features_cached": True, "solver": "liblinear", "c": solved["c"],
            "c_tried": solved["history"]["c"], "softmax_scale": solved["softmax_scale"], "epochs_run": 0,
            "refit_epochs": 0, "best_epoch": None, "stopped_early": False, "load_seconds": load_seconds,
            "build_seconds": 0.0, "prepare_seconds": 0.0, "eval_seconds": eval_seconds,
            "eval_from_last_validation": False}


def resume_run(run_dir: str | Path, overrides: Mapping[str, Any] | None = None, *, listener: Any = None,
               runs_root: str | Path = runs.DEFAULT_ROOT) -> RunResult:
    """Continue an interrupted run (any reference to it, see runs.resolve_run) with the config saved in it.

    `overrides` are the other settings given with the resume (a config layer, plus e.g. `experiment`
    or `run_dir`): a resumed run keeps its saved config, so any of them is an error — except
    `training.epochs`, which extends the run to that many epochs (its config.json says so from then
    on). The learning-rate schedule is then built for the new total, and the optimizer's step count
    carries on: a decaying rate continues from where the longer schedule is at that step.
    """
    from textclf.config import layer_paths, resolve_config

    given = sorted(layer_paths(overrides or {}))
    epochs = overrides["training"]["epochs"] if "training.epochs" in given else None
    given = [g for g in given if g != "training.epochs"]
    if given:
        raise ConfigError(f"resuming {run_dir} continues it with its saved config; drop the other config options "
                          f"({', '.join(given)}; --epochs N may extend it)")
    path = runs.resolve_run(run_dir, runs_root, complete=False, resumable=True)
    if epochs is not None and runs.is_complete(path):
        raise RunError(f"run {path} is complete, and a complete run keeps no checkpoint to continue from; "
                       f"train a new run with --epochs {epochs} (only an interrupted run can be extended)")
    run = runs.Run(runs.check_resumable(path))
    config = resolve_config(run.config)
    if epochs is not None and trains_without_tensorflow(config):
        raise ConfigError(f"--epochs: {config.model} is fitted by its solver, not in epochs; resume {path.name} "
                          "without --epochs")
    if epochs is not None and epochs != config.training.epochs:
        done = run.epochs_done or 0
        if epochs <= done:
            raise ConfigError(f"--epochs {epochs}: run {path} has completed {done} epochs already; give more to "
                              "extend it")
        config = dataclasses.replace(config, training=dataclasses.replace(config.training, epochs=epochs))
        _Hooks(listener).on_note(f"training {path.name} to {epochs} epochs instead of {config_epochs(run)} "
                                 f"({done} done): the learning-rate schedule now spans {epochs} epochs")
        # config.json says so once the run is resumed, under its lock (runs.start), not before
    return run_training(config, run_dir=run.path, listener=listener, resume=True,
                        experiment=run.info.get("experiment"))


def train(config: RunConfig, *, runs_root: str | Path = runs.DEFAULT_ROOT, run_dir: str | Path | None = None,
          experiment: str | None = None, fresh: bool = True, listener: Any = None,
          each: Callable[..., RunResult] | None = None) -> "RunResult | GroupResult":
    """The one entry for training `config`: one run, or its group (training.seeds > 1 or data.folds: see
    run_group, `each` runs a member); unless `fresh`, what an interrupted earlier attempt of `experiment`
    with this config left is continued (its run resumed, or its group's unfinished runs).
    `listener` follows a single run (see run_training)."""
    if config.training.seeds > 1 or config.data.folds:
        if run_dir is not None:
            raise ConfigError("--run-dir names one run; a group of runs (--seeds, --folds) goes under --runs-root")
        return run_group(config, runs_root=runs_root, experiment=experiment, each=each, fresh=fresh)
    stopped = None if fresh or not experiment else runs.interrupted_run(runs_root, experiment, config.to_dict())
    if stopped is not None:
        _Hooks(listener).on_note(f"resuming the interrupted run {stopped}")
        return resume_run(stopped, listener=listener, runs_root=runs_root)
    return run_training(config, runs_root=runs_root, run_dir=run_dir, listener=listener, experiment=experiment)


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
    group_id, earlier = found or (runs.new_group_id(experiment or run_name(config), kind, len(members)), {})
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


def _load_data(config: RunConfig, hooks: _Hooks, split: bool = True, preload: bool = True) -> _Data:
    from textclf.data.sources import holdout_split, load_train_eval
    from textclf.reports import preload_plotting

    t = config.training
    if preload:
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
    fraction = _validation_fraction(t, train)
    if fraction and not t.validation_fraction:
        hooks.on_note(f"multi-label data: {fraction:g} of the training data is held out to tune a threshold "
                      "per label (training.validation_fraction)")
    fit, validation = holdout_split(train, fraction, t.seed) if fraction and split else (train, None)
    return _Data(train, fit, validation, evaluation, class_weights(t.class_weight, fit.labels, train.label_names))


MULTILABEL_VALIDATION = 0.1  # the validation part of a multi-label run without training.validation_fraction


def _validation_fraction(t, train) -> float:
    """The part of the training data held out for validation: training.validation_fraction, or for
    multi-label data without one MULTILABEL_VALIDATION (its thresholds are tuned there)."""
    return t.validation_fraction or (MULTILABEL_VALIDATION if train.multilabel else 0.0)


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
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_CLASS_WEIGHT:
            raise DataError(f"class weight file {setting}: weight of {name!r} must be a number in (0, "
                            f"{MAX_CLASS_WEIGHT:g}], got {value!r}")
        weights[i] = float(value)
    return weights


# A larger weight (or Infinity, which JSON files may hold) makes the loss overflow: a model that answers
# one class for every text, written as complete.
MAX_CLASS_WEIGHT = 1e6


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
    from textclf.runtime import float32_graphs

    t = config.training
    fit, validation, evaluation = data.fit, data.validation, data.evaluation
    batch = runtime.global_batch_size
    eval_batch = max(batch, 256)
    if built.feature_rows is not None:  # a bag of n-grams: its TF-IDF rows in numpy, once, nothing padded
        from textclf.data.pipeline import sparse_rows

        hooks.on_status("computing the n-gram features")
        started = time.perf_counter()
        train_x = sparse_rows(built.train_rows if built.train_rows is not None and not t.refit
                              else built.feature_rows(fit.texts))
        val_x = sparse_rows(built.feature_rows(validation.texts)) if validation is not None else None
        feature_seconds = time.perf_counter() - started
        eval_x = sparse_rows(built.feature_rows(evaluation.texts))
        batches = lambda start: feature_batches(train_x, fit.labels, global_batch_size=batch, seed=t.seed,
                                                start_epoch=start)
        val_data = array_batches(val_x, validation.labels, batch_size=eval_batch) if val_x is not None else None
        return _Inputs(True, False, batches, batches(0).steps, val_data,
                       array_batches(eval_x, evaluation.labels, batch_size=eval_batch), feature_seconds, train_x, val_x)
    hooks.on_status("tokenizing")
    reuse = built.train_ids is not None and not t.refit
    train_ids = built.train_ids if reuse else encode_texts(fit.texts, built.encode)
    eval_ids = encode_texts(evaluation.texts, built.encode)
    val_ids = encode_texts(validation.texts, built.encode) if validation is not None else None
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
    sizes = [len(fit), len(validation) if validation is not None else 0, len(evaluation)]
    progress = lambda before: lambda done: hooks.on_work("computing the frozen features", before + done, sum(sizes))  # noqa: E731
    train_x = predict_by_length(featurize, train_ids, feature_batch, progress(0))
    val_x = predict_by_length(featurize, val_ids, feature_batch, progress(sizes[0])) if validation is not None else None
    feature_seconds = time.perf_counter() - started  # training's share; eval's is evaluation
    with float32_graphs() as changed:  # the eval features as `evaluate` will compute them
        eval_x = predict_by_length(feature_function(built.features) if changed else featurize, eval_ids, feature_batch,
                                   progress(sizes[0] + sizes[1]))
    batches = lambda start: feature_batches(train_x, fit.labels, global_batch_size=batch, seed=t.seed,  # noqa: E731
                                            start_epoch=start)
    val_data = array_batches(val_x, validation.labels, batch_size=eval_batch) if val_x is not None else None
    return _Inputs(True, built.solve is not None, batches, batches(0).steps, val_data,
                   array_batches(eval_x, evaluation.labels, batch_size=eval_batch), feature_seconds, train_x, val_x)


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
            loss=built.loss or task.loss(data.train.multilabel),
            metrics=[task.accuracy_metric(data.train.multilabel)],
            # Several steps per tf.function call: small models on CPU are otherwise
            # dominated by per-step Python overhead.
            steps_per_execution=t.steps_per_execution,
            jit_compile=runtime.jit_compile,
        )
        create_optimizer_slots(model)
    return model


def _fit(built, config: RunConfig, data: _Data, inputs: _Inputs, runtime, run, hooks: _Hooks, resume: bool):
    """Epochs of the optimizer, with checkpoints, early stopping and an optional refit: the model, history, metrics."""
    from textclf._tf import keras
    from textclf.callbacks import (EarlyStopping, EpochCheckpoint, EpochValidation, NanGuard, TrainTimer,
                                   _ListenerCallback)

    t = config.training
    train_data = inputs.batches(0)
    model = _compiled(built.head if inputs.frozen else built.model, built, t, data, runtime, train_data.steps)
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
    # Validation on the validation part, else the eval data; the last epoch's predictions are kept.
    on_eval = inputs.val_data is None
    validation = EpochValidation(inputs.eval_data if on_eval else inputs.val_data,
                                 data.evaluation.labels if on_eval else data.validation.labels,
                                 model.loss, task.accuracy_metric(data.train.multilabel), timer)
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
    if data.train.multilabel and inputs.val_data is not None:
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
            val_probs=None) -> RunResult:
    """Evaluate on the eval data, then save the model, plots and metrics and mark the run complete."""
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
    served = built.inference_model()
    hooks.on_status("making the model's twin for a fast predict")
    twin = twin_arrays(served, data.train.texts)
    return _save_run(run, served, twin, data, data.validation, probs, val_probs, history,
                     {**fit_metrics, "eval_seconds": eval_seconds, "eval_from_last_validation": reused}, hooks,
                     solved=False)


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
    save_run_plots(run.path, report.to_dict(), {} if solved else history)
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


