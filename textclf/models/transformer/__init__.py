"""The Transformer trained from scratch (the lesson's model): a model family.

params.py its sizes, model.py its layers and builder, twin.py its twin (TFLite on token ids in
LiteRT) and its TFLite export. Declared here by name only: importing this imports no TensorFlow.
"""

from __future__ import annotations

from textclf.registry import Family, Preset
from textclf.models.transformer.params import TransformerParams

FAMILY = Family(
    name="transformer",
    params=TransformerParams,
    builder="textclf.models.transformer.model:build_transformer",
    presets=(Preset(
        "transformer",
        "Transformer encoder trained from scratch (token+position embedding, self-attention blocks, masked mean "
        "pooling, dense head); the lesson's architecture.",
        # Tuned on a held-out 20% of the ag7600 training split (not its eval split).
        {"epochs": 8, "global_batch_size": 128, "learning_rate": 2e-3, "schedule": "cosine", "warmup": 0.1}),),
    twin="textclf.models.transformer.twin:twin_arrays",
    runners={"transformer": "textclf.models.transformer.twin:TransformerTwin"},
    tflite="textclf.models.transformer.twin:write_tflite",
)
