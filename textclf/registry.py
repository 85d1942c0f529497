"""Model registry: name -> parameters dataclass, builder and description.

Registration is light (no TensorFlow import): the builder is named as "module:function" and
imported only when a model is built, so `textclf models list` and `--help` stay fast.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from textclf.errors import ModelError


@dataclass(frozen=True)
class ModelEntry:
    """One registered model."""

    name: str
    description: str
    params_cls: type
    builder: str
    training_defaults: Mapping[str, Any] = field(default_factory=dict)

    def load_builder(self) -> Callable[..., Any]:
        """Import and return the builder function."""
        module, _, func = self.builder.partition(":")
        return getattr(importlib.import_module(module), func)


class Registry:
    """A name -> entry mapping; duplicates raise and a miss lists the known names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, ModelEntry] = {}

    def add(self, entry: ModelEntry) -> None:
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry

    def get(self, name: str) -> ModelEntry:
        _load_catalog()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise ModelError(f"unknown {self.kind} {name!r}; available: {known}") from None

    def names(self) -> list[str]:
        _load_catalog()
        return sorted(self._entries)

    def entries(self) -> list[ModelEntry]:
        return [self._entries[n] for n in self.names()]


MODELS = Registry("model")


def register_model(
    name: str,
    *,
    description: str,
    builder: str,
    training_defaults: Mapping[str, Any] | None = None,
) -> Callable[[type], type]:
    """Class decorator: register a parameters dataclass as model `name`."""

    def decorate(params_cls: type) -> type:
        MODELS.add(ModelEntry(name, description, params_cls, builder, dict(training_defaults or {})))
        return params_cls

    return decorate


def _load_catalog() -> None:
    importlib.import_module("textclf.models.catalog")
