"""Config resolution for runs: experiments.yaml's named experiments, the presets, and `train_config`.

The shipped recipes (textclf/recipes.yaml) with the project's experiments.yaml over them hold
`defaults:` plus named experiments, each a config layer, validated at load: every experiment is
resolved when the file is loaded, so a typo anywhere fails at once with the experiment, the
field path, the value and what is allowed — not hours into a sweep.
A preset (`train-bert-frozen`, …) is a built-in layer with its own default model.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from textclf.config import RunConfig, deep_merge, resolve_config
from textclf.errors import ConfigError, DataError, TextclfError

NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # \Z: no trailing newline ($ allows one)
TOP_KEYS = ("defaults", "experiments", "groups")


@dataclass(frozen=True)
class Experiment:
    """One named experiment: what it sets (its layer) and its config resolved at load."""

    name: str
    description: str
    layer: Mapping[str, Any]
    config: RunConfig
    source: Path | None = None  # the file it comes from (the shipped recipes or the project's file)


@dataclass(frozen=True)
class ExperimentsFile:
    """A loaded experiments file."""

    path: Path
    defaults: Mapping[str, Any]
    experiments: Mapping[str, Experiment]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Shipped recipes the project's defaults make invalid (e.g. weight_decay with a recipe's Adam): the
    # error, raised when one is asked for, never when loading a file that does not use them.
    unusable: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Experiment:
        if name in self.unusable:
            raise ConfigError(self.unusable[name])
        if name not in self.experiments:
            groups = f"; groups: {', '.join(self.groups)}" if self.groups else ""
            from textclf.registry import unknown_name

            where = "" if self.path == SHIPPED else f"the shipped recipes or {self.path}"
            raise ConfigError(unknown_name("experiment", name, self.experiments, where) + groups)
        return self.experiments[name]

    def expand(self, names: list[str]) -> list[str]:
        """Experiment names with each group name replaced by its experiments, in order, once each."""
        out: list[str] = []
        for name in names:
            members = self.groups.get(name, (name,)) if name not in self.experiments else (name,)
            for member in members:
                self.get(member)
                out.append(member)
        return list(dict.fromkeys(out))

    def layers(self, name: str) -> list[Mapping[str, Any]]:
        """The config layers of `name`, lowest precedence first: file defaults, experiment."""
        return [self.defaults, self.get(name).layer]

    def resolve(self, name: str, *overrides: Mapping[str, Any]) -> RunConfig:
        """`name`'s config with further layers (CLI options, --set) on top."""
        try:
            return resolve_config(*with_teacher(*self.layers(name), *overrides))
        except TextclfError as err:
            raise ConfigError(f"experiment {name}: {err}") from None


def with_teacher(defaults: Mapping[str, Any], *layers: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """`defaults` and `layers`, with a distilled student's teacher's data and split between them when a layer
    names a teacher (distill.teacher): a student's data are its teacher's unless a layer above sets them."""
    teacher = next((layer["distill"]["teacher"] for layer in reversed(layers)
                    if isinstance(layer.get("distill"), Mapping) and "teacher" in layer["distill"]), None)
    if not teacher:
        return [defaults, *layers]
    from textclf.distillation import teacher_layer

    found = teacher_layer(str(teacher))  # resolved once: a name must not find a newer run later (a student)
    return [defaults, found, *layers, {"distill": {"teacher": found["distill"]["teacher"]}}]


DEFAULT_FILE = "experiments.yaml"  # the project's file, in the folder textclf runs from
SHIPPED = Path(__file__).with_name("recipes.yaml")  # the recipes that ship with textclf


def load_experiments(path: str | Path = DEFAULT_FILE) -> ExperimentsFile:
    """The shipped experiments with the project's file over them: its experiments added (a shipped one of
    the same name replaced), its defaults on top of the shipped defaults for every experiment, its groups
    added. Every experiment is validated and resolved here. The default file may be absent (the shipped
    ones alone); a file named explicitly must exist."""
    shipped = _read(SHIPPED)
    path = Path(path)
    if path.resolve() == SHIPPED.resolve() or (str(path) == DEFAULT_FILE and not path.exists()):
        return _build(SHIPPED, [shipped], {})
    project = _read(path)
    return _build(path, [shipped, project], {name: path for name in project["experiments"]})


def _read(path: Path) -> dict:
    """One experiments file, read and checked for its shape: {"path", "defaults", "experiments", "groups"}."""
    import yaml

    from textclf.textfiles import read_text

    try:
        text = read_text(str(path), what="experiments file")
    except DataError as err:
        hint = " (pass --experiments-file)" if not path.exists() else ""
        raise ConfigError(f"{err}{hint}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(set(doc) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"{path}: {unknown[0]}: unknown key; allowed keys: {', '.join(TOP_KEYS)}")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: defaults: expected a mapping, got {defaults!r}")
    if "model_params" in defaults:
        raise ConfigError(f"{path}: defaults.model_params: model sizes belong to an experiment, "
                          "since they depend on its model")
    raw = doc.get("experiments") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: experiments: expected a mapping of experiment names to settings")
    try:
        resolve_config(defaults)
    except TextclfError as err:
        raise ConfigError(f"{path}: defaults: {err}") from None
    for name, body in raw.items():
        if not isinstance(name, str) or not NAME.match(name):
            raise ConfigError(f"{path}: experiments: bad experiment name {name!r} "
                              "(letters, digits, '.', '_' and '-')")
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: experiments.{name}: expected a mapping, got {body!r}")
        if not isinstance(body.get("description", ""), str):
            raise ConfigError(f"{path}: experiments.{name}.description: expected a string")
    return {"path": path, "defaults": defaults, "experiments": raw, "groups": doc.get("groups")}


def _build(path: Path, files: list[dict], sources: dict[str, Path]) -> ExperimentsFile:
    """The experiments of `files` (later ones over earlier ones), each resolved with every file's defaults."""
    defaults = deep_merge(*(f["defaults"] for f in files))
    raw: dict[str, Any] = {}
    for f in reversed(files):  # the project's first, in its order; then the shipped ones it does not replace
        raw.update({k: v for k, v in f["experiments"].items() if k not in raw})
    experiments, unusable = {}, {}
    for name, body in raw.items():
        where = sources.get(name, SHIPPED)
        layer = dict(body)
        description = layer.pop("description", "")
        try:
            config = resolve_config(defaults, layer)
        except TextclfError as err:
            if where == SHIPPED and len(files) > 1:  # valid as shipped: the project's defaults broke it
                unusable[name] = (f"shipped experiment {name} with the defaults of {path}: {err} (override it "
                                  f"by name in {path}, or change its defaults)")
                continue
            raise ConfigError(f"{where}: experiments.{name}: {err}") from None
        experiments[name] = Experiment(name, description.strip(), layer, config, where)
    groups: dict[str, tuple[str, ...]] = {}
    project = files[-1] if len(files) > 1 else None
    for f in files:
        raw_groups = f["groups"]
        if f is not project and project is not None and isinstance(raw_groups, dict):
            # a project's experiment or group of the same name hides a shipped group
            hidden = set(project["experiments"]) | set(project["groups"] or {})
            raw_groups = {k: v for k, v in raw_groups.items() if k not in hidden and all(m in experiments for m in v)}
        groups.update(_groups(f["path"], raw_groups, experiments))
    return ExperimentsFile(path, defaults, experiments, groups, unusable)


def _groups(path: Path, raw: Any, experiments: Mapping[str, Experiment]) -> dict[str, tuple[str, ...]]:
    """`groups: {name: [experiment, ...]}`: names for sets of experiments that run together."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: groups: expected a mapping of group names to lists of experiments")
    groups = {}
    for name, members in raw.items():
        where = f"{path}: groups.{name}"
        if not isinstance(name, str) or not NAME.match(name):
            raise ConfigError(f"{path}: groups: bad group name {name!r} (letters, digits, '.', '_' and '-')")
        if name in experiments:
            raise ConfigError(f"{where}: an experiment has this name already")
        if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
            raise ConfigError(f"{where}: expected a non-empty list of experiment names")
        unknown = [m for m in members if m not in experiments]
        if unknown:
            raise ConfigError(f"{where}: unknown experiment {unknown[0]!r}; available: {', '.join(experiments)}")
        groups[name] = tuple(members)
    return groups


@dataclass(frozen=True)
class Preset:
    """A built-in config layer with a default model: `textclf <name>` is `train` with both."""

    name: str
    model: str
    description: str
    layer: Mapping[str, Any] = field(default_factory=dict)


PRESETS = {p.name: p for p in (
    Preset("train-transformer", "transformer", "Train the Transformer from scratch (the lesson's first recipe); "
           "same as train --model transformer."),
    Preset("train-bert-frozen", "bert-small", "Train a classifier on a frozen BERT encoder with Adam (the lesson's "
           "second recipe).",
           {"model_params": {"trainable": False},
            "training": {"optimizer": "adam", "learning_rate": 1e-3, "schedule": "constant", "warmup": 0,
                         "weight_decay": 0, "epochs": 3}}),
    Preset("finetune-bert-adamw", "bert-small", "Fine-tune a BERT encoder with AdamW, linear warmup then linear "
           "decay (Model Garden's create_optimizer; the lesson's third recipe).",
           {"model_params": {"trainable": True},
            "training": {"optimizer": "adamw", "learning_rate": 5e-5, "schedule": "linear", "warmup": 0.1,
                         "weight_decay": 0.01}}),
)}


def train_config(options: Mapping[str, Any], sets: Mapping[str, Any] | None = None, *, preset: Preset | None = None,
                 experiment: str | None = None, experiments_file: str | Path = "experiments.yaml") -> RunConfig:
    """The config of one training run, from its layers, lowest precedence first.

    Model defaults < preset < yaml defaults < experiment < `options` (a config layer) < `sets`.
    Without a model anywhere, the model is `auto` (or the preset's). A preset and an experiment
    are refused together (each sets the model and its training), and a preset refuses a model
    whose parameters lack what it sets (train-bert-frozen's `trainable` on a transformer).
    """
    from textclf.config import AUTO
    from textclf.models.catalog import MODELS

    layers: list[Mapping[str, Any]] = []
    if preset is not None:
        if experiment:
            raise ConfigError(f"{preset.name} sets the model and its training itself and cannot run experiment "
                              f"{experiment!r}; run it with `textclf train --experiment {experiment}`")
        model = options.get("model") or preset.model
        wanted = set(preset.layer.get("model_params", {}))
        have = set() if model == AUTO else {f.name for f in dataclasses.fields(MODELS.get(model).params_cls)}
        if wanted - have:
            kind = "a BERT model (bert, bert-tiny, bert-small, bert-base or an imported one)" if "trainable" in wanted \
                else "a model with " + ", ".join(sorted(wanted))
            raise ConfigError(f"{preset.name} needs {kind}; {model} is not one (use `textclf train --model {model}`)")
        layers.append(preset.layer)
    defaults, own = load_experiments(experiments_file).layers(experiment) if experiment else ({}, {})
    layers += with_teacher(defaults, own, options, sets or {})
    return resolve_config({"model": preset.model if preset else AUTO}, *layers)



def add_experiment(path: str | Path, name: str, body: Mapping[str, Any], *, comment: str = "") -> None:
    """Add experiment `name` to the experiments file, keeping the rest of the file as written.

    The entry goes at the end of the `experiments:` block (block style). The new text must load
    as a valid experiments file with the entry in it, else nothing is written. An experiment of
    that name with the same settings already there is left as it is; with other settings it is
    an error. A project without a file gets one (removed again if the entry cannot be added).
    """
    path = Path(path)
    created = not path.exists()
    if created:
        from textclf.runs import write_bytes

        try:
            write_bytes(path, b"# This project's experiments (see textclf/recipes.yaml for the keys).\n\n"
                              b"experiments:\n")
        except OSError as err:
            raise ConfigError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        _add_entry(path, name, body, comment)
    except BaseException:
        if created:
            path.unlink(missing_ok=True)
        raise


def _add_entry(path: Path, name: str, body: Mapping[str, Any], comment: str) -> None:
    import yaml

    current = load_experiments(path)
    if name in current.experiments and current.experiments[name].source == path:
        same = dict(current.experiments[name].layer) == {k: v for k, v in body.items() if k != "description"}
        if same:
            return
        raise ConfigError(f"{path} already has an experiment {name!r} with other settings; choose another name")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(r"^experiments:\s*(#.*)?$", line)), None)
    if start is None:
        raise ConfigError(f"{path}: its experiments mapping is not in block style (`experiments:` on a line of its "
                          f"own); add experiment {name} by hand")
    end = next((i for i in range(start + 1, len(lines)) if re.match(r"^[^\s#]", lines[i])), len(lines))
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
        end -= 1  # blank lines and the comments introducing the next block stay with it
    dumped = yaml.safe_dump({name: dict(body)}, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True)
    entry = ([f"  # {comment}\n"] if comment else []) + ["  " + line if line.strip() else line
                                                          for line in dumped.splitlines(keepends=True)]
    if end > 0 and lines[end - 1].strip() and not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    after = lines[end:]
    text = "".join(lines[:end] + ["\n"] + entry + (["\n"] if after and after[0].strip() else []) + after)
    from textclf.runs import write_bytes

    probe = path.with_name(f".{path.name}.new")
    try:
        probe.write_text(text, encoding="utf-8")
        try:
            loaded = load_experiments(probe)
        except ConfigError as err:  # say the file's name, not the probe's
            raise ConfigError(str(err).replace(str(probe), str(path))) from None
        if name not in loaded.experiments or set(loaded.experiments) != set(current.experiments) | {name}:
            raise ConfigError(f"{path}: adding experiment {name} did not give the expected file; add it by hand")
        write_bytes(path, text.encode("utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        probe.unlink(missing_ok=True)
