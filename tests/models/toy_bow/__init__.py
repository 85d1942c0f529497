"""A toy model family for tests: a bag of words as the mean of its word embeddings, then a dense layer.

It shows what a family is: this folder (params, builder, twin) plus one registration line
(`register_family(toy_bow.FAMILY)`); tests/models/test_families.py runs the family harness on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from textclf.errors import check
from textclf.registry import Family, ModelParams, Preset


@dataclass(frozen=True)
class ToyBowParams(ModelParams):
    vocab_size: int = 500
    embed_dim: int = 16
    max_length: int = 64

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embed_dim", "max_length"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")


FAMILY = Family(
    name="toy_bow",
    params=ToyBowParams,
    builder="toy_bow.model:build_toy_bow",
    presets=(Preset("toy-bow", "Mean of word embeddings -> dense (a test family).",
                    {"epochs": 3, "global_batch_size": 16, "learning_rate": 0.05, "schedule": "constant",
                     "warmup": 0}),),
    twin="toy_bow.twin:twin_arrays",
    runners={"toy_bow": "toy_bow.twin:ToyBowTwin"},
)
