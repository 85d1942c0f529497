"""The library's entries: `train` (a run, a group, or an interrupted experiment resumed), `run_training`
(one run, as named steps: read the data, build the model, prepare its inputs, fit or solve, finish),
`resume_run`, `run_group`."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping


from textclf import runs
from textclf.config import RunConfig
from textclf.errors import ConfigError, RunError, raise_deferred_termination

from textclf.training.data import _check_resumed_labels, _load_data
from textclf.training.hooks import RunResult, _Hooks, config_epochs, run_name  # noqa: F401 (config_epochs: cli)
from textclf.training.native import _run_native, trains_without_tensorflow
from textclf.training.steps import _build_model, _finish, _fit, _prepare_inputs


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
    _check_start(config, run_dir, resume)
    entry = MODELS.get(config.model)
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
                        family=entry.family,
                        experiment=experiment, data=config.data.train, eval_data=data.evaluation.source,
                        runtime=runtime.to_dict(), **({"group": group} if group else {}), **derived) as run:
            stages.update(_teacher_targets(config, data, run, hooks, built, resume) if data.distill is not None else {})
            started = time.perf_counter()
            inputs = _prepare_inputs(built, config, data, runtime, hooks)  # tokens (frozen: features) once
            stages["prepare_seconds"] = time.perf_counter() - started
            hooks.on_start(_start_info(config, data, inputs, run, runtime, built))
            model, history, metrics, val_probs = _fit(built, config, data, inputs, runtime, run, hooks, resume)
            return _finish(run, built, model, data, inputs, history, {**stages, **metrics}, hooks, val_probs,
                           family=entry.family, calibration=config.training.calibration)
    finally:
        reset_precision()


def _teacher_targets(config: RunConfig, data, run, hooks: _Hooks, built, resume) -> dict[str, Any]:
    """A distilled student's packed targets into `data`, and (a new one) its word embeddings from its teacher's;
    what metrics.json records of its transfer set."""
    from textclf.distillation import start_from_teacher, targets

    started = time.perf_counter()
    data.targets, computed = targets(config, data, run, hooks)
    # A resumed student restores its embeddings from its checkpoint; one stopped before any has none yet
    done = start_from_teacher(config, built, hooks) if not resume or not _has_checkpoint(run) else None
    if done:
        hooks.on_note(done)
    return {**{f"transfer_{k}": v for k, v in data.transfer.items()}, "teacher_probabilities_computed": computed,
            "teacher_seconds": time.perf_counter() - started}


def _has_checkpoint(run) -> bool:
    from textclf._tf import tf

    return tf.train.latest_checkpoint(str(run.checkpoints_dir / "last")) is not None


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
    if epochs is not None:  # checked as a training.epochs is, before the run is looked at
        resolve_config({"model": "ngram-linear", "training": {"epochs": epochs}})
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


def _check_start(config: RunConfig, run_dir: str | Path | None, resume: bool) -> None:
    """What refuses a run before its data are read and its model built (minutes, for a teacher's pass)."""
    from textclf.runtime import is_chief

    if config.data.folds and config.data.fold is None:
        raise ConfigError(f"data.folds {config.data.folds}: cross-validation trains one run per fold; "
                          "run the group (training.run_group), or set data.fold")
    if resume:
        runs.check_resumable(run_dir, config)
    elif run_dir is not None and is_chief():  # the process that writes the run
        runs.check_run_dir(run_dir)


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
        raise_deferred_termination()  # a SIGTERM swallowed in the previous run's last moments
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
