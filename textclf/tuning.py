"""Hyperparameter search over any config field, with optuna, scored on training data only.

`tune(experiment, space, trials=N)` runs N trials of an experiment. Each trial is an ordinary
textclf run (in <out>/trials/trial-K) trained on the training data without one stratified
fold and scored on that fold (a validation part carved from the training data: the
experiment's eval data are never read). optuna's TPE sampler proposes the values and its
median pruner stops a trial whose per-epoch validation accuracy falls below the median of
earlier trials at the same epoch. The study lives in <out>/study.log (optuna's journal
storage, safe to append after a kill): run the same command again and it continues — the
trial that was killed resumes from its last completed epoch, finished trials are kept. The
best trial's values become a new experiment in the experiments file.

Why optuna: a define-by-run API (`trial.suggest_*`) that fits a space given on the command
line, a pruner that needs only per-epoch reports, journal storage for resuming, and no tie to
a model framework (keras-tuner wants to build and fit the Keras model itself, around textclf's
single training path).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from textclf import runs
from textclf.config import deep_merge, resolve_config
from textclf.errors import ConfigError, Interrupted, RunError, TextclfError
from textclf.textfiles import loads

VALIDATION_FOLDS = 5  # the scored part: one fold in five of the training data (20%)
SETTINGS_FILE = "tune.json"
STUDY_FILE = "study.log"


@dataclass(frozen=True)
class Dimension:
    """One searched field: categorical choices, or a (log-)uniform range of floats or integers."""

    path: str
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False

    def suggest(self, trial) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.path, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.path, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.path, float(self.low), float(self.high), log=self.log)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "choices": list(self.choices), "low": self.low, "high": self.high,
                "log": self.log, "integer": self.integer}


def parse_space(items: Sequence[str]) -> list[Dimension]:
    """`key=a,b,c` (choices), `key=lo..hi` (uniform; integers when both ends are), `key=log:lo..hi`."""
    dims: list[Dimension] = []
    for item in items:
        key, sep, spec = item.partition("=")
        key, spec = key.strip(), spec.strip()
        if not sep or not key or not spec:
            raise ConfigError(f"--space expects KEY=CHOICES, e.g. training.learning_rate=1e-4,3e-4 or "
                              f"model_params.dropout=0.1..0.3; got {item!r}")
        log = spec.startswith("log:")
        body = spec[4:] if log else spec
        if ".." in body:
            lo_text, _, hi_text = body.partition("..")
            lo, hi = _scalar(lo_text.strip()), _scalar(hi_text.strip())
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi)) or not lo < hi \
                    or (log and lo <= 0):
                raise ConfigError(f"--space {item!r}: a range is LOW..HIGH with numbers LOW < HIGH "
                                  f"(log: LOW > 0)")
            dims.append(Dimension(key, low=lo, high=hi, log=log, integer=isinstance(lo, int) and isinstance(hi, int)))
        else:
            if log:
                raise ConfigError(f"--space {item!r}: log: takes a range LOW..HIGH")
            choices = tuple(_scalar(c.strip()) for c in body.split(",") if c.strip())
            if not choices:
                raise ConfigError(f"--space {item!r}: no choices")
            dims.append(Dimension(key, choices=choices))
    paths = [d.path for d in dims]
    if len(set(paths)) < len(paths):
        raise ConfigError(f"--space names a field twice: {sorted(p for p in paths if paths.count(p) > 1)[0]}")
    if not dims:
        raise ConfigError("give the search space: --space KEY=CHOICES (repeatable)")
    return dims


def _scalar(text: str) -> Any:
    """A choice as a number or bool when it reads as one (`3e-3` too, which YAML 1.1 leaves a string)."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _layer(values: Mapping[str, Any]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for path, value in values.items():
        *parents, leaf = path.split(".")
        node = layer
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return layer


@dataclass
class TuneResult:
    """The trials (one dict each), the best one and the experiment written from it."""

    experiment: str
    name: str
    trials: list[dict[str, Any]]
    best: dict[str, Any]
    experiments_file: str
    out: str

    def to_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "tuned_experiment": self.name, "experiments_file": self.experiments_file,
                "out": self.out, "best": self.best, "trials": self.trials}


class Pruned(TextclfError):
    """The search stopped this trial early (its validation accuracy was below the median)."""


class _PruningListener:
    """Reports each epoch's validation accuracy to the trial; raises Pruned when optuna says so."""

    def __init__(self, trial, inner: Any = None) -> None:
        self.trial, self.inner = trial, inner

    def __getattr__(self, name: str):  # the other hooks go to the progress listener, when it has them
        if self.inner is not None and name.startswith("on_"):
            return getattr(self.inner, name)
        raise AttributeError(name)

    def on_epoch(self, epoch: int, logs: dict) -> None:
        if self.inner is not None and hasattr(self.inner, "on_epoch"):
            self.inner.on_epoch(epoch, logs)
        value = logs.get("val_accuracy")
        if value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            raise Pruned(f"pruned by the search after epoch {epoch + 1}: validation accuracy {float(value):.4f} "
                         "below the median of earlier trials")


def _checked_name(name: str) -> str:
    """The tuned experiment's name, checked before any trial (it becomes a name in the experiments file)."""
    from textclf.experiments import NAME

    if not NAME.match(name):
        raise ConfigError(f"--name {name!r}: an experiment name is letters, digits, '.', '_' and '-' "
                          "(starting with a letter or digit)")
    return name


def tune(experiment: str, space: Sequence[Dimension], *, trials: int, overrides: Sequence[Mapping[str, Any]] = (),
         experiments_file: str | Path = "experiments.yaml", name: str | None = None, out: str | Path | None = None,
         seed: int = 0, each: Callable[..., Any] | None = None) -> TuneResult:
    """Search `space` for `experiment` in `trials` trials (see the module doc); the best becomes `name`.

    `overrides` are config layers above the experiment (e.g. the training data); the eval data
    are dropped: trials are scored on a fold of the training data. `each(number, total, train)`
    runs one trial, `train(listener)` training it (the CLI draws progress this way).
    """
    from textclf.experiments import load_experiments

    if trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {trials}")
    loaded = load_experiments(experiments_file)
    base = loaded.get(experiment)
    name = _checked_name(name or f"{experiment}-tuned")
    out = Path(out or Path("tuning") / experiment)
    # Scored on one fold of the training data; the experiment's eval data are never read.
    scoring = {"data": {"eval": None, "folds": VALIDATION_FOLDS, "fold": 0}}
    layers = [*loaded.layers(experiment), *overrides, scoring]
    _check_space(loaded, experiment, space, [*overrides, scoring])
    settings = {"experiment": experiment, "space": [d.to_dict() for d in space], "overrides": list(overrides),
                "seed": seed, "validation_folds": VALIDATION_FOLDS}
    _check_settings(out, settings)
    with runs.locked(out, f"another textclf tune is searching in {out}; wait for it to end, or pass another --out"):
        return _search(out, experiment, seed, trials, space, layers, each, base, name, experiments_file)


def _search(out: Path, experiment: str, seed: int, trials: int, space, layers, each, base, name: str,
            experiments_file) -> TuneResult:
    """The trials of a search (tune's work, with the search folder locked)."""
    import optuna

    from textclf.training import resume_run, run_training

    study = _open_study(out, experiment, seed)

    def finish(trial, train) -> None:
        try:
            result = each(trial.number, trials, train) if each else train(None)
        except Pruned:
            study.tell(trial.number, state=optuna.trial.TrialState.PRUNED)
            return
        except Interrupted as err:  # Ctrl-C / SIGTERM stops the search; the trial stays running, to resume
            raise Interrupted(err.run_dir, terminated=err.terminated,
                              hint="run the same textclf tune command again to continue the search") from None
        except TextclfError as err:
            trial.set_user_attr("error", str(err))
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            return
        study.tell(trial.number, result.metrics["accuracy"])

    _resume_running(study, finish, resume_run)

    while _counted(study) < trials:
        trial = study.ask()
        values = {d.path: d.suggest(trial) for d in space}
        config = resolve_config(*layers, _layer(values))
        run_dir = out / "trials" / f"trial-{trial.number}"
        trial.set_user_attr("run_dir", str(run_dir))
        finish(trial, lambda listener, t=trial, c=config, d=run_dir: run_training(
            c, run_dir=d, runs_root=out / "trials", listener=_PruningListener(t, listener),
            experiment=f"{experiment}-trial-{t.number}"))

    rows = [_row(t) for t in study.get_trials(deepcopy=False)]
    best = _write_best(rows, out, base, experiment, name, experiments_file)
    return TuneResult(experiment, name, rows, best, str(experiments_file), str(out))


def _check_space(loaded, experiment: str, space: Sequence[Dimension], layers: list) -> None:
    """Every searched field exists and takes the ends (or choices) of its range: fail before any trial."""
    for dim in space:
        values = dim.choices or ((int(dim.low), int(dim.high)) if dim.integer else (dim.low, dim.high))
        for value in values:
            try:
                loaded.resolve(experiment, *layers, _layer({dim.path: value}))
            except ConfigError as err:
                raise ConfigError(f"--space {dim.path}={value}: {err}") from None


def _open_study(out: Path, experiment: str, seed: int):
    """The search's optuna study in its journal file (created, or continued after a kill)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path = out / STUDY_FILE
    _check_journal(path)
    try:
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
        return optuna.create_study(storage=storage, study_name=experiment, direction="maximize", load_if_exists=True,
                                   sampler=optuna.samplers.TPESampler(seed=seed),
                                   pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2))
    except (ValueError, KeyError) as err:  # records optuna cannot replay
        raise RunError(f"the search's journal {path} is damaged ({type(err).__name__}: {err}); "
                       "start the search again with another --out") from None


def _check_journal(path: Path) -> None:
    """A journal a killed search left with a half-written last line loses that line (optuna would append
    the next record to it and never read either again); a damaged line elsewhere is one RunError."""
    if not path.exists():
        return
    try:
        data = path.read_bytes()
        whole = data[:data.rfind(b"\n") + 1]
        if len(whole) < len(data):
            with open(path, "r+b") as fh:
                fh.truncate(len(whole))
    except OSError as err:
        raise RunError(f"cannot read the search's journal {path}: {err.strerror or err}") from None
    for number, line in enumerate(whole.splitlines(), 1):
        try:
            record = loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise RunError(f"the search's journal {path} is damaged at line {number}; "
                           "start the search again with another --out")


def _resume_running(study, finish, resume_run) -> None:
    """A trial left running by a killed search: continue its run from its last epoch (or fail it when it
    had not finished one)."""
    import optuna

    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        trial = optuna.trial.Trial(study, frozen._trial_id)
        run_dir = frozen.user_attrs.get("run_dir")
        try:
            runs.check_resumable(run_dir)
        except TextclfError:
            study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
            continue
        finish(trial, lambda listener, t=trial, p=run_dir: resume_run(p, listener=_PruningListener(t, listener)))


def _write_best(rows: list[dict], out: Path, base, experiment: str, name: str, experiments_file) -> dict:
    """The best complete trial, written into the experiments file as experiment `name`."""
    from textclf.experiments import add_experiment

    complete = [r for r in rows if r["state"] == "complete"]
    if not complete:
        raise TextclfError(f"no trial of the search in {out} completed; see the trials' errors with "
                           f"`textclf runs list --runs-root {out / 'trials'}`")
    best = max(complete, key=lambda r: r["value"])
    body = deep_merge(dict(base.layer), _layer(best["params"]))
    body = {"description": f"{experiment} tuned by `textclf tune` on a fold of the training data: trial "
                           f"{best['number']} of {len(rows)}, validation accuracy {100 * best['value']:.2f}%.",
            **{k: v for k, v in body.items() if k != "description"}}
    add_experiment(experiments_file, name, body, comment=f"written by textclf tune {experiment} ({out})")
    return best


def _counted(study) -> int:
    """Trials that count towards the budget: complete, pruned, or failed by an error of their own."""
    import optuna

    states = optuna.trial.TrialState
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state in (states.COMPLETE, states.PRUNED) or (t.state == states.FAIL and "error" in t.user_attrs))


def _row(t) -> dict[str, Any]:
    return {"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": dict(t.params),
            "run_dir": t.user_attrs.get("run_dir"), "error": t.user_attrs.get("error"),
            "last_epoch": max(t.intermediate_values) + 1 if t.intermediate_values else None}


def _check_settings(out: Path, settings: dict) -> None:
    """A search folder holds one search: the same settings continue it, others are refused."""
    path = out / SETTINGS_FILE
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the search folder {out}: {err.strerror or err}") from None
    if path.exists():
        saved = runs.read_json(path)
        if json.loads(json.dumps(settings)) != saved:
            changed = sorted(k for k in settings if json.loads(json.dumps(settings[k])) != saved.get(k))
            raise ConfigError(f"{out} holds a search with other settings ({', '.join(changed)}); continue it with "
                              "the same command, or pass another --out")
        return
    runs.write_json(path, settings)
