"""experiments.yaml: `defaults:` plus named experiments, each a config layer, validated at load.

Every experiment is resolved when the file is loaded, so a typo anywhere fails at once with
the experiment, the field path, the value and what is allowed — not hours into a sweep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from textclf.config import RunConfig, resolve_config
from textclf.errors import ConfigError, DataError, TextclfError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TOP_KEYS = ("defaults", "experiments")


@dataclass(frozen=True)
class Experiment:
    """One named experiment: what it sets (its layer) and its config resolved at load."""

    name: str
    description: str
    layer: Mapping[str, Any]
    config: RunConfig


@dataclass(frozen=True)
class ExperimentsFile:
    """A loaded experiments file."""

    path: Path
    defaults: Mapping[str, Any]
    experiments: Mapping[str, Experiment]

    def get(self, name: str) -> Experiment:
        if name not in self.experiments:
            raise ConfigError(f"unknown experiment {name!r} in {self.path}; available: "
                              + ", ".join(self.experiments))
        return self.experiments[name]

    def layers(self, name: str) -> list[Mapping[str, Any]]:
        """The config layers of `name`, lowest precedence first: file defaults, experiment."""
        return [self.defaults, self.get(name).layer]

    def resolve(self, name: str, *overrides: Mapping[str, Any]) -> RunConfig:
        """`name`'s config with further layers (CLI options, --set) on top."""
        try:
            return resolve_config(*self.layers(name), *overrides)
        except TextclfError as err:
            raise ConfigError(f"experiment {name}: {err}") from None


def load_experiments(path: str | Path = "experiments.yaml") -> ExperimentsFile:
    """Read, validate and resolve every experiment of an experiments file."""
    import yaml

    from textclf.textfiles import read_text

    path = Path(path)
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
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: experiments: expected a mapping of experiment names to settings")
    try:
        resolve_config(defaults)
    except TextclfError as err:
        raise ConfigError(f"{path}: defaults: {err}") from None
    experiments = {}
    for name, body in raw.items():
        if not isinstance(name, str) or not NAME.match(name):
            raise ConfigError(f"{path}: experiments: bad experiment name {name!r} "
                              "(letters, digits, '.', '_' and '-')")
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: experiments.{name}: expected a mapping, got {body!r}")
        layer = dict(body)
        description = layer.pop("description", "")
        if not isinstance(description, str):
            raise ConfigError(f"{path}: experiments.{name}.description: expected a string")
        try:
            config = resolve_config(defaults, layer)
        except TextclfError as err:
            raise ConfigError(f"{path}: experiments.{name}: {err}") from None
        experiments[name] = Experiment(name, description.strip(), layer, config)
    return ExperimentsFile(path, defaults, experiments)
