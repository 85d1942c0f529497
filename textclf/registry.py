"""Model registry: model families and the named models (presets) they declare (generic; it knows no model).

A model family is a folder under textclf/models/ whose `__init__.py` declares a `Family`: its
parameters dataclass, its presets (the names `--model` takes), its builder, its twin and its
export hooks. Registration is light (no TensorFlow import): every hook is named as
"module:function" and imported only when used, so `textclf models list` and `--help` stay fast.
textclf.models.catalog registers the shipped families (one line each); use the registry through
`textclf.models.catalog.MODELS`, which is this one with the catalog loaded.
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
    # True when these parameters are fitted by the family's `solver` without TensorFlow (Family.solver).
    solved_without_tensorflow: ClassVar[bool] = False


@dataclass(frozen=True)
class ModelEntry:
    """One registered model."""

    name: str
    description: str
    params_cls: type
    builder: str
    training_defaults: Mapping[str, Any] = field(default_factory=dict)
    param_defaults: Mapping[str, Any] = field(default_factory=dict)
    # The name of the model family that declares it (see Family): what training, the twins and export
    # dispatch on (never the layers' names).
    family: str = ""

    def load_builder(self) -> Callable[..., Any]:
        """Import and return the builder function."""
        return load_hook(self.builder)

    def family_spec(self) -> "Family":
        return family(self.family)


def load_hook(path: str) -> Any:
    """The object named "module:attribute"."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Preset:
    """A named model of a family: `--model NAME` is its parameters' class with these defaults."""

    name: str
    description: str
    training_defaults: Mapping[str, Any] = field(default_factory=dict)
    param_defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """What a model family declares in its package's `__init__.py` (names only: nothing is imported).

    builder: "module:function" (params, train_texts, num_classes, multilabel=, ...) -> BuiltModel
      (textclf.models.base), whose `mode` says how it trains.
    twin: "module:function" (string-in Keras model, training texts) -> the arrays of its twin (a
      dict with "kind"), or None; "" when the family has no twin. `runners` maps each kind the
      family writes to "module:Class", the class that answers texts from those arrays without
      Keras (textclf.twins checks it agrees with the Keras model before a run keeps it).
    tflite: "module:function" (model, labels, folder, model name) -> the interface it wrote there
      (`export --format tflite`); "" when the family's model cannot be a TFLite model.
    text_ops: its SavedModel needs tensorflow_text's ops to load (export says so).
    solver: "module" that fits parameters whose `solved_without_tensorflow` is true without TensorFlow
      (`make_features`, `fit_linear`): such a run holds its model as twin arrays, and `from_arrays`
      ("module:function" (arrays, params) -> the string-in Keras model) builds the Keras model from them.
    source: further models of the family found outside the code (e.g. imported encoders).
    word_vectors: "module:function" (params, words) -> an array with a row per word, its input embedding in
      this family's model (NaN rows for words it has none for): what a distilled student whose model has
      word embeddings (BuiltModel.word_embeddings) starts from when this family's run is its teacher.
    predict_tokens: about how many tokens a prediction batch holds at most (textclf.prediction.work_batches;
      0: no bound but the batch's texts and characters): for a model whose activations per token are large,
      the batch that keeps them in cache.
    """

    name: str
    params: type
    builder: str
    presets: tuple[Preset, ...]
    twin: str = ""
    runners: Mapping[str, str] = field(default_factory=dict)
    tflite: str = ""
    text_ops: bool = False
    solver: str = ""
    from_arrays: str = ""
    source: "ModelSource | None" = None
    word_vectors: str = ""
    predict_tokens: int = 0


FAMILIES: dict[str, Family] = {}


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

    def remove(self, name: str) -> None:
        del self._entries[name]

    def remove_source(self, source: ModelSource) -> None:
        self._sources.remove(source)

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


def register_family(spec: Family) -> Family:
    """Register a model family and its presets (one line per family: textclf.models.catalog)."""
    if not issubclass(spec.params, ModelParams):
        raise TypeError(f"{spec.params.__name__} must derive from ModelParams")
    if spec.name in FAMILIES:
        raise ValueError(f"model family {spec.name!r} is already registered")
    kinds = {kind for other in FAMILIES.values() for kind in other.runners}
    if kinds & set(spec.runners):
        raise ValueError(f"model family {spec.name!r}: twin kinds {sorted(kinds & set(spec.runners))} are taken")
    names = [preset.name for preset in spec.presets]
    taken = sorted(set(names) & set(MODELS.builtin_names())) or sorted({n for n in names if names.count(n) > 1})
    if taken:  # checked before anything is added: a refused family leaves no preset behind
        raise ValueError(f"model family {spec.name!r}: model {taken[0]!r} is already registered")
    for preset in spec.presets:
        MODELS.add(ModelEntry(preset.name, preset.description, spec.params, spec.builder,
                              dict(preset.training_defaults), dict(preset.param_defaults), spec.name))
    FAMILIES[spec.name] = spec
    if spec.source is not None:
        MODELS.add_source(spec.source)
    return spec


def unregister_family(name: str) -> None:
    """Remove a family and its presets (tests that register a family of their own)."""
    spec = FAMILIES.pop(name)
    for preset in spec.presets:
        MODELS.remove(preset.name)
    if spec.source is not None:
        MODELS.remove_source(spec.source)


def family(name: str) -> Family:
    """The registered family `name` (ModelError naming the registered ones)."""
    if name not in FAMILIES:
        raise ModelError(unknown_name("model family", name, sorted(FAMILIES)))
    return FAMILIES[name]


def twin_runner(kind: str) -> Any:
    """The class that answers texts from twin arrays of `kind`: from the family that writes them."""
    for spec in FAMILIES.values():
        if kind in spec.runners:
            return load_hook(spec.runners[kind])
    raise ModelError(f"no model family answers twins of kind {kind!r}")


def unknown_name(kind: str, name: str, available, where: str = "") -> str:
    """"unknown KIND 'name'[ in WHERE]; did you mean X? available: ..." (the closest names, by difflib)."""
    import difflib

    available = list(available)
    close = difflib.get_close_matches(str(name), available, n=2, cutoff=0.6)
    guess = f"; did you mean {' or '.join(close)}?" if close else ";"
    return f"unknown {kind} {name!r}{f' in {where}' if where else ''}{guess} available: {', '.join(available)}"
