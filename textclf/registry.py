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
    param_defaults: Mapping[str, Any] = field(default_factory=dict)

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
        """The entry for `name`: a built-in model, or a model imported into the store."""
        _load_catalog()
        if name in self._entries:
            return self._entries[name]
        imported = _imported_entry(self, name)
        if imported is not None:
            return imported
        known = ", ".join(self.names())
        raise ModelError(f"unknown {self.kind} {name!r}; available: {known}")

    def builtin_names(self) -> list[str]:
        _load_catalog()
        return sorted(self._entries)

    def names(self) -> list[str]:
        """Built-in and imported model names."""
        from textclf.models import store

        return sorted(set(self.builtin_names()) | {m["name"] for m in store.list_models()})

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
    """Class decorator: register a parameters dataclass as model `name`.

    Stack it to register presets of one builder that differ only in their defaults.
    """

    def decorate(params_cls: type) -> type:
        MODELS.add(ModelEntry(name, description, params_cls, builder, dict(training_defaults or {}),
                              dict(param_defaults or {})))
        return params_cls

    return decorate


def _imported_entry(registry: Registry, name: str) -> ModelEntry | None:
    """An entry for a model imported with `textclf models import-hf` (a BERT in the store)."""
    from textclf.models import store

    path = store.find(name)
    if path is None:
        return None
    base = registry._entries["bert"]
    meta = store.read_meta(path)
    return ModelEntry(
        name,
        f"imported BERT ({meta.get('num_layers')} layers, hidden {meta.get('hidden_size')}) from {meta.get('source')}",
        base.params_cls, base.builder, base.training_defaults,
        {**base.param_defaults, "encoder": name},
    )


def _load_catalog() -> None:
    importlib.import_module("textclf.models.catalog")
