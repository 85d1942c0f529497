"""Registered models and their parameters (light: importing this does not import TF)."""

from __future__ import annotations

from dataclasses import dataclass

from textclf.config import check, choice
from textclf.registry import register_model


@register_model(
    "transformer",
    description="Transformer encoder trained from scratch (token+position embedding, "
    "self-attention blocks, masked mean pooling, dense head); the lesson's architecture.",
    builder="textclf.models.transformer:build_transformer",
    training_defaults={"epochs": 5, "global_batch_size": 64, "learning_rate": 1e-3},
)
@dataclass(frozen=True)
class TransformerParams:
    """Sizes of the from-scratch Transformer (the lesson used 20000/256/32/2/32/1)."""

    vocab_size: int = 20000
    max_length: int = 128
    embed_dim: int = 64
    num_heads: int = 2
    ff_dim: int = 64
    num_layers: int = 1
    hidden_dim: int = 20
    dropout: float = 0.1
    standardize: str = "news"

    def __post_init__(self) -> None:
        check(self.vocab_size >= 3, "vocab_size", self.vocab_size, "an integer >= 3")
        check(self.max_length >= 1, "max_length", self.max_length, "an integer >= 1")
        for name in ("embed_dim", "num_heads", "ff_dim", "num_layers", "hidden_dim"):
            value = getattr(self, name)
            check(value >= 1, name, value, "an integer >= 1")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "a number in [0, 1)")
        choice("standardize", self.standardize, ("news", "lower_and_strip_punctuation"))
