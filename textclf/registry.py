"""Model registry: name -> parameters dataclass, builder and description (generic; it knows no model).

Registration is light (no TensorFlow import): the builder is named as "module:function" and
imported only when a model is built, so `textclf models list` and `--help` stay fast. The
models themselves are registered by textclf.models.catalog, which also hands in the source of
models that exist outside the code (imported encoders in the model store); use the registry
through `textclf.models.catalog.MODELS`, which is this one with the catalog loaded.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Protocol

from textclf.errors import ModelError


class ModelParams:
    """Base of every registered parameters dataclass: what the runtime may ask of any model.

    `cpu_bf16`: the model runs faster in bfloat16 on CPUs with bf16 instructions (measured
    per model family, docs/PERF-LEVERS.md); `auto` precision then picks mixed_bfloat16 there.
    """

    cpu_bf16: ClassVar[bool] = False


@dataclass(frozen=True)
class ModelEntry:
    """One registered model."""

    name: str
    description: str
    params_cls: type
    builder: str
    training_defaults: Mapping[str, Any] = field(default_factory=dict)
    param_defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """The model family: its builder's module (`textclf.models.ngram:build_ngram` -> `ngram`), what
        the twins and export dispatch on (never the layers' names)."""
        return self.builder.partition(":")[0].rsplit(".", 1)[-1]

    def load_builder(self) -> Callable[..., Any]:
        """Import and return the builder function."""
        module, _, func = self.builder.partition(":")
        return getattr(importlib.import_module(module), func)


class ModelSource(Protocol):
    """Models that are not in the code (e.g. imported into the model store): found by name."""

    def find(self, name: str, registry: "Registry") -> ModelEntry | None: ...
    def names(self) -> list[str]: ...


class Registry:
    """A name -> entry mapping plus sources of further entries; duplicates raise, a miss lists the names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, ModelEntry] = {}
        self._sources: list[ModelSource] = []

    def add(self, entry: ModelEntry) -> None:
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry

    def add_source(self, source: ModelSource) -> None:
        self._sources.append(source)

    def builtin(self, name: str) -> ModelEntry:
        """A registered (not sourced) entry."""
        return self._entries[name]

    def get(self, name: str) -> ModelEntry:
        """The entry for `name`: a registered model, or one a source finds."""
        if name in self._entries:
            return self._entries[name]
        for source in self._sources:
            found = source.find(name, self)
            if found is not None:
                return found
        raise ModelError(unknown_name(self.kind, name, self.names()))

    def builtin_names(self) -> list[str]:
        return sorted(self._entries)

    def names(self) -> list[str]:
        """Registered and sourced model names."""
        return sorted(set(self._entries).union(*(source.names() for source in self._sources)))

    def entries(self) -> list[ModelEntry]:
        return [self.get(n) for n in self.names()]


MODELS = Registry("model")


def register_model(
    name: str,
    *,
    description: str,
    builder: str,
    training_defaults: Mapping[str, Any] | None = None,
    param_defaults: Mapping[str, Any] | None = None,
) -> Callable[[type], type]:
    """Class decorator: register a parameters dataclass (a ModelParams) as model `name`.

    Stack it to register presets of one builder that differ only in their defaults.
    """

    def decorate(params_cls: type) -> type:
        if not issubclass(params_cls, ModelParams):
            raise TypeError(f"{params_cls.__name__} must derive from ModelParams")
        MODELS.add(ModelEntry(name, description, params_cls, builder, dict(training_defaults or {}),
                              dict(param_defaults or {})))
        return params_cls

    return decorate


def unknown_name(kind: str, name: str, available, where: str = "") -> str:
    """"unknown KIND 'name'[ in WHERE]; did you mean X? available: ..." (the closest names, by difflib)."""
    import difflib

    available = list(available)
    close = difflib.get_close_matches(str(name), available, n=2, cutoff=0.6)
    guess = f"; did you mean {' or '.join(close)}?" if close else ";"
    return f"unknown {kind} {name!r}{f' in {where}' if where else ''}{guess} available: {', '.join(available)}"
