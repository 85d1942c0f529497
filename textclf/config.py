"""Typed, frozen run configuration with strict keys and one precedence order.

Precedence, lowest first: dataclass defaults < the model's training defaults < each layer
passed to `resolve_config` in order (yaml defaults, experiment, CLI options, --set).
Values are coerced by field type (YAML reads `3e-5` as a string) and validated at load;
errors name the field path, the bad value and what is allowed.
"""

from __future__ import annotations

import math

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from textclf.errors import ConfigError, FieldError, ModelError, check, choice
from textclf.models.catalog import MODELS
from textclf.registry import ModelParams


MAX_TEXT_CHARS = 2_000_000  # the default of data.max_text_chars (predict reads it from runs that lack it)


MAX_SEED = 2**32 - 1  # numpy's and Python's seeding take 32 bits
MAX_RUNS = 1000  # seeds or folds in one group: each is a training run


@dataclass(frozen=True)
class DataConfig:
    """Where the examples come from (data source specs, see textclf.data.sources)."""

    train: str = "tfds:ag_news_subset"
    eval: str | None = None
    text_fields: tuple[str, ...] = ()
    label_field: str | None = None
    # Several labels in one CSV/TSV label field are joined by this (multi-label data); "" never splits.
    label_separator: str = "|"
    eval_fraction: float = 0.1
    tfds_data_dir: str | None = None
    # k-fold cross-validation: `folds` stratified, seeded parts of the training data; run `fold`
    # trains on the others and is evaluated on it (a group of `folds` runs, see training.run_group).
    folds: int = 0
    fold: int | None = None
    # A longer text is refused when the data is read: memory grows with a text's length (an n-gram
    # model's features hold ~4 keys per character), so one enormous text must not exhaust it.
    max_text_chars: int = MAX_TEXT_CHARS
    # The seed of the held-out eval part and of the folds (None: training.seed). A distilled student
    # keeps its teacher's, so both are evaluated on the same texts.
    split_seed: int | None = None

    def __post_init__(self) -> None:
        check(bool(self.train.strip()), "train", self.train, "a data spec")
        check(self.max_text_chars >= 1, "max_text_chars", self.max_text_chars, "an integer >= 1")
        check(0.0 < self.eval_fraction < 1.0, "eval_fraction", self.eval_fraction,
              "a fraction between 0 and 1")
        check(self.folds == 0 or 2 <= self.folds <= MAX_RUNS, "folds", self.folds,
              f"0 (no cross-validation) or an integer in [2, {MAX_RUNS}]")
        check(self.folds == 0 or self.eval is None, "eval", self.eval,
              "no eval data with folds (each fold's run is evaluated on its held-out fold of the training data)")
        check(self.fold is None or (self.folds >= 2 and 0 <= self.fold < self.folds), "fold", self.fold,
              f"a fold index in [0, {self.folds}) with folds >= 2")
        builtin = self.train.strip() == "sample" and (self.eval is None or self.eval.strip() == "sample")
        check(not (builtin and self.text_fields), "text_fields", list(self.text_fields),
              "no --text-field with the built-in `sample` data (it has one text and one label; the fields name "
              "columns of csv/tsv/jsonl files and tfds features)")
        check(not (builtin and self.label_field), "label_field", self.label_field,
              "no --label-field with the built-in `sample` data (the fields name columns of csv/tsv/jsonl files "
              "and tfds features)")


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation settings shared by every model."""

    epochs: int = 5
    global_batch_size: int = 64
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup: float = 0.0
    seed: int = 42
    steps_per_execution: int = 16
    patience: int = 0
    # As Keras' EarlyStopping: an epoch improves on the best only by more than this (absolute).
    min_delta: float = 0.0
    restore_best: bool = False
    monitor: str = "val_loss"
    # > 0: validate (and stop early) on this stratified part of the training data, never on the
    # eval data; 0: validate on the eval data, for reporting only.
    validation_fraction: float = 0.0
    # After early stopping on the validation part, train a fresh head on all the training data
    # for the best epoch's count (models with precomputed features: n-gram, frozen BERT).
    refit: bool = False
    # > 1: a group of this many runs that differ only in the seed (seed, seed + 1, …).
    seeds: int = 1
    # none | balanced (weight n / (classes × count) per class, as scikit-learn) | a JSON file
    # {"label": weight, …} (labels it leaves out weigh 1).
    class_weight: str = "none"
    # temperature: a temperature fitted on the validation part (when it has >= 100 texts) makes the
    # probabilities calibrated, in the saved model (textclf.calibration); none: the model's own.
    calibration: str = "temperature"

    def __post_init__(self) -> None:
        choice("calibration", self.calibration, ("temperature", "none"))
        check(self.seeds >= 1, "seeds", self.seeds, "an integer >= 1")
        check(bool(str(self.class_weight).strip()), "class_weight", self.class_weight,
              "none, balanced or a JSON file of label weights")
        check(0 <= self.validation_fraction < 1, "validation_fraction", self.validation_fraction,
              "a fraction in [0, 1) (0 = validate on the eval data)")
        check(self.patience >= 0, "patience", self.patience, "an integer >= 0 (0 = no early stopping)")
        check(self.min_delta >= 0, "min_delta", self.min_delta, "a number >= 0")
        choice("monitor", self.monitor, ("val_loss", "val_accuracy"))
        check(self.steps_per_execution >= 1, "steps_per_execution", self.steps_per_execution,
              "an integer >= 1")
        check(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        check(self.global_batch_size >= 1, "global_batch_size", self.global_batch_size,
              "an integer >= 1")
        check(self.learning_rate > 0, "learning_rate", self.learning_rate, "a number > 0")
        choice("optimizer", self.optimizer, ("adam", "adamw"))
        check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")
        check(self.weight_decay == 0 or self.optimizer == "adamw", "weight_decay", self.weight_decay,
              "0 with optimizer adam (weight decay is AdamW's: set optimizer adamw)")
        choice("schedule", self.schedule, ("constant", "linear", "cosine"))
        check(self.warmup >= 0 and (self.warmup < 1 or float(self.warmup).is_integer()),
              "warmup", self.warmup, "a fraction of the total steps in [0, 1) or a whole number of steps")
        check(self.seeds <= MAX_RUNS, "seeds", self.seeds, f"an integer in [1, {MAX_RUNS}] (each one is a run)")
        check(0 <= self.seed and self.seed + self.seeds <= MAX_SEED + 1, "seed", self.seed,
              f"an integer in [0, {MAX_SEED:,}] (with seeds {self.seeds}: up to {MAX_SEED + 1 - self.seeds:,})")
        for name in ("learning_rate", "weight_decay", "min_delta", "warmup"):
            check(math.isfinite(getattr(self, name)), name, getattr(self, name), "a finite number")
        check(self.learning_rate <= 10, "learning_rate", self.learning_rate, "a number in (0, 10]")
        check(self.epochs <= 100_000, "epochs", self.epochs, "an integer in [1, 100000]")
        check(self.global_batch_size <= 1 << 20, "global_batch_size", self.global_batch_size,
              "an integer in [1, 1048576]")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how to run: distribution strategy, batch split, precision, XLA."""

    strategy: str = "auto"
    per_replica_batch_size: int = 0
    precision: str = "auto"
    jit_compile: bool = False
    tpu: str = ""
    deterministic: bool = False

    def __post_init__(self) -> None:
        choice("strategy", self.strategy, ("auto", "default", "one_device", "mirrored", "multi_worker", "tpu"))
        check(self.per_replica_batch_size >= 0, "per_replica_batch_size", self.per_replica_batch_size,
              "an integer >= 0 (0 = derived from the global batch size)")
        choice("precision", self.precision, ("auto", "float32", "mixed_float16", "mixed_bfloat16"))


@dataclass(frozen=True)
class DistillConfig:
    """Knowledge distillation (textclf.distillation): set `teacher` to train this run on a teacher run's
    probabilities."""

    teacher: str = ""  # the teacher run's directory; "" = an ordinary run
    temperature: float = 2.0
    alpha: float = 0.5  # the gold labels' share of the loss where known (0: soft targets only)
    unlabeled: str | None = None  # a data spec (labels ignored) or a .txt file: more texts for the transfer set
    augment: int = -1  # augmented copies of each training text; -1: enough to bring a small set to 20,000
    budget: int = 50_000  # at most this many texts in the transfer set
    # teacher: a student with word embeddings (the transformer) starts them from the teacher's pretrained input
    # embedding of each word (its family's word_vectors, e.g. a BERT's WordPiece rows), projected to the
    # student's width; random: from the student's own initializer (the default: on ag7600, one seed, starting
    # from MiniLM's was within noise of random, docs/BENCHMARKS.md).
    embeddings: str = "random"

    def __post_init__(self) -> None:
        check(0 < self.temperature <= 100 and math.isfinite(self.temperature), "temperature", self.temperature,
              "a number in (0, 100]")
        check(0 <= self.alpha <= 1, "alpha", self.alpha, "a number in [0, 1]")
        check(-1 <= self.augment <= 100, "augment", self.augment,
              "an integer in [0, 100], or -1 = enough for a small set")
        check(1 <= self.budget <= 10_000_000, "budget", self.budget, "an integer in [1, 10000000]")
        choice("embeddings", self.embeddings, ("teacher", "random"))


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run."""

    model: str = "transformer"
    model_params: ModelParams | None = None
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    # How `--model auto` chose `model` (the statistics and the rule), when it did.
    selection: Any = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready nested dict (the form saved in run directories)."""
        return _to_plain(dataclasses.asdict(self))


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def deep_merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge nested mappings; later layers win key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = value
    return out


# Command-line options that set a config field: option name -> field path. The options of
# `textclf train` (and its presets) and `experiments run` are named after these.
OPTION_FIELDS = {
    "model": "model",
    "data": "data.train", "eval_data": "data.eval", "text_field": "data.text_fields",
    "label_field": "data.label_field", "label_separator": "data.label_separator",
    "eval_fraction": "data.eval_fraction", "tfds_data_dir": "data.tfds_data_dir",
    "max_text_chars": "data.max_text_chars",
    "folds": "data.folds", "seeds": "training.seeds", "class_weight": "training.class_weight",
    "epochs": "training.epochs", "batch_size": "training.global_batch_size",
    "learning_rate": "training.learning_rate", "optimizer": "training.optimizer",
    "weight_decay": "training.weight_decay", "schedule": "training.schedule", "warmup": "training.warmup",
    "seed": "training.seed", "patience": "training.patience", "min_delta": "training.min_delta",
    "restore_best": "training.restore_best", "calibration": "training.calibration",
    "strategy": "runtime.strategy", "per_replica_batch_size": "runtime.per_replica_batch_size",
    "precision": "runtime.precision", "jit_compile": "runtime.jit_compile", "deterministic": "runtime.deterministic",
    **{name: f"distill.{name}" for name in ("unlabeled", "augment", "budget", "temperature", "alpha",
                                                 "embeddings")},
    **{name: f"model_params.{name}" for name in ("max_length", "vocab_size", "embed_dim", "num_heads", "ff_dim",
                                                 "num_layers", "dropout", "encoder", "preprocessor", "pooling")},
}


def options_layer(options: Mapping[str, Any]) -> dict[str, Any]:
    """The config layer of the options given (None or an empty list = not given), by OPTION_FIELDS."""
    layer: dict[str, Any] = {}
    for name, value in options.items():
        if value is None or value == [] or name not in OPTION_FIELDS:
            continue
        *parents, leaf = OPTION_FIELDS[name].split(".")
        node = layer
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return layer


def parse_sets(items: list[str]) -> dict[str, Any]:
    """`a.b=value` strings (`--set`) -> a nested config layer (values coerced later by field type)."""
    layer: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (e.g. training.epochs=3), got {item!r}")
        node = layer
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r} conflicts with another --set for {part!r}")
        node[parts[-1]] = value
    return layer


def layer_paths(layer: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The field paths a layer sets, e.g. ["data.train", "training.epochs"]."""
    paths = []
    for key, value in layer.items():
        path = f"{prefix}{key}"
        paths += layer_paths(value, path + ".") if isinstance(value, Mapping) and value else [path]
    return paths


def resolve_config(*layers: Mapping[str, Any]) -> RunConfig:
    """Build a validated RunConfig from nested dict layers (lowest precedence first)."""
    merged = deep_merge(*(_data_shorthand(layer) for layer in layers))
    _check_sections(merged)
    name = merged.get("model", RunConfig.model)
    if not isinstance(name, str):
        raise ConfigError(f"model: expected a model name, got {name!r}")
    if name == AUTO:
        merged, name = _choose_model(merged)
    if name != AUTO and name not in MODELS.builtin_names() and name not in MODELS.names():  # the store: last
        try:
            MODELS.get(name)  # a model a source finds (an imported BERT)
        except ModelError as err:
            if not str(err).startswith("unknown model"):  # found, but unusable (a damaged import): say why
                raise
            from textclf.registry import unknown_name

            raise ModelError(unknown_name("model", name, [AUTO, *MODELS.names()])) from None
    entry = MODELS.get(name)
    defaults = dict(entry.training_defaults)
    given = merged.get("training") or {}
    if isinstance(given, Mapping) and str(given.get("optimizer", "")).lower() == "adam" and "weight_decay" not in given:
        defaults.pop("weight_decay", None)  # the model's AdamW decay does not come along to Adam
    merged = deep_merge({"training": defaults, "model_params": dict(entry.param_defaults)}, merged)
    merged["model_params"] = merged.get("model_params") or {}
    try:
        config = from_dict(RunConfig, merged, params_cls=entry.params_cls)
    except ConfigError as err:
        if merged.get("selection") and "model_params" in str(err):  # a setting of the model auto chose
            raise ConfigError(f"{err} (--model auto chose {name}; pass --model to choose another)") from None
        raise
    _check_student(config)
    return config


def _check_sections(merged: Mapping[str, Any]) -> None:
    """Each section a mapping (`--set training=5` is not), before any of them is read; `selection` only as
    --model auto records it (the model it chose and why)."""
    for key in ("data", "training", "runtime", "distill", "model_params"):
        if merged.get(key) is not None and not isinstance(merged[key], Mapping):
            raise ConfigError(f"{key}: expected a mapping of its fields, got {_shown(merged[key])}")
    chosen = merged.get("selection")
    if chosen is not None and not (isinstance(chosen, Mapping) and isinstance(chosen.get("model"), str)
                                   and isinstance(chosen.get("reason"), str)
                                   and merged.get("model", AUTO) in (AUTO, chosen["model"])):
        raise ConfigError("selection: what --model auto records (the model it chose and why), not a setting; "
                          "choose a model with --model")


def _check_student(config: RunConfig) -> None:
    """A distilled student's settings it can train with (textclf.distillation)."""
    if not config.distill.teacher:
        return
    if config.model_params is not None and config.model_params.solved_without_tensorflow:
        raise ConfigError(f"distill: {config.model} fits hard labels with its exact solver and cannot learn a "
                          "teacher's probabilities; distil into ngram-mlp, transformer or a BERT model")
    if config.training.class_weight != "none":
        raise ConfigError("training.class_weight: the teacher's probabilities already weigh the classes; leave it "
                          "none when distilling")
    if config.training.refit:
        raise ConfigError("training.refit: a distilled student trains on its transfer set once; set it false")
    if config.data.folds or config.data.fold is not None:
        raise ConfigError("data.folds: a student is evaluated on its teacher's eval part; folds would evaluate it "
                          "on texts its teacher trained on")
    if getattr(config.model_params, "loss", None) == "squared_hinge":
        raise ConfigError(f"model_params.loss squared_hinge: a student learns the teacher's probabilities with "
                          f"cross-entropy; set model_params.loss=crossentropy for {config.model}")


AUTO = "auto"


def _choose_model(merged: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """`model: auto` -> the model chosen from the training data's statistics (reads the data)."""
    from textclf.selection import choose_for_data

    data = from_dict(DataConfig, merged.get("data"), "data")
    training = merged.get("training") or {}
    seed = _coerce(training.get("seed", TrainingConfig.seed), int, "training.seed")
    selection = choose_for_data(data, seed)
    return {**merged, "model": selection["model"], "selection": selection}, selection["model"]


def _data_shorthand(layer: Mapping[str, Any]) -> Mapping[str, Any]:
    """`data: SPEC` (e.g. `--set data=csv:train.csv`) means `data.train: SPEC`."""
    if isinstance(layer.get("data"), str):
        return {**layer, "data": {"train": layer["data"]}}
    return layer


def from_dict(cls: type, data: Any, path: str = "", params_cls: type | None = None) -> Any:
    """Instantiate dataclass `cls` from `data`, coercing by field type; strict keys."""
    where = path or "config"
    if data is None:
        data = {}
    if dataclasses.is_dataclass(data) and isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {_shown(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{_join(path, unknown[0])}: unknown key; allowed keys: {', '.join(fields)}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        field_path = _join(path, name)
        target = params_cls if (name == "model_params" and params_cls) else hints[name]
        kwargs[name] = _coerce(value, target, field_path)
    try:
        return cls(**kwargs)
    except FieldError as err:
        raise ConfigError(
            f"{_join(path, err.name)}: got {err.value!r}, expected {err.expected}"
        ) from None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], path)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: got {_shown(value)}, expected a list")
        return tuple(_coerce(v, args[0], path) for v in value)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{path}: got {_shown(value)}, expected true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: got {_shown(value)}, expected an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(value) if isinstance(value, (int, str)) else _fail()
        except (ValueError, TypeError):
            raise ConfigError(f"{path}: got {_shown(value)}, expected an integer") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{path}: got {_shown(value)}, expected a number")
        try:
            out = float(value) if isinstance(value, (int, float, str)) else _fail()
        except (ValueError, TypeError):
            raise ConfigError(f"{path}: got {_shown(value)}, expected a number") from None
        if out != out or out in (float("inf"), float("-inf")):
            raise ConfigError(f"{path}: got {_shown(value)}, expected a finite number")
        return out
    if tp is str:
        if isinstance(value, (dict, list, tuple)) or value is None:
            raise ConfigError(f"{path}: got {_shown(value)}, expected a string")
        return str(value)
    return value


def _fail() -> Any:
    raise TypeError


def _shown(value) -> str:
    """A config value as its file spells it: null, true and false (YAML's, JSON's), not Python's None, True."""
    if value is None or isinstance(value, bool):
        from textclf.textfiles import json_kind

        return json_kind(value)
    return repr(value)
