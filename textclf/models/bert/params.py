"""BERT encoders' parameters and their fine-tuning recipe (light: no TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass

from textclf.errors import check
from textclf.registry import ModelParams

BERT_PREPROCESS = "https://tfhub.dev/tensorflow/bert_en_uncased_preprocess/3"
# The lesson's fine-tuning recipe (AdamW, linear warmup over 10% of the steps, linear decay) with
# lr 5e-5 instead of its 3e-5: on a held-out 20% of the ag7600 training split, MiniLM reached
# 91.0% with 5e-5 (batch 32) and 90.4% with 3e-5 (batch 16); 3e-5 still underfits after 3 epochs.
BERT_TRAINING = {"epochs": 3, "global_batch_size": 32, "learning_rate": 5e-5, "optimizer": "adamw",
                 "weight_decay": 0.01, "schedule": "linear", "warmup": 0.1}


@dataclass(frozen=True)
class BertParams(ModelParams):
    """A TF Hub BERT encoder + preprocessing model with a dropout + dense head.

    `encoder` is a TF Hub handle, a local SavedModel path or the name of a model imported with
    `textclf models import-hf`; `preprocessor` defaults to the imported model's own, else to
    bert_en_uncased_preprocess/3. `trainable=False` freezes the encoder. `tokenizer="fast"`
    runs the preprocessing model's WordPiece vocabulary through tf-text's FastBertTokenizer
    (same ids, checked on every shared data set; no preprocessing SavedModel to load when a
    run predicts); "hub" calls the preprocessing model's own `tokenize`.
    """

    encoder: str = ""
    preprocessor: str = ""
    trainable: bool = True
    pooling: str = "mean"
    dropout: float = 0.1
    max_length: int = 0  # 0: the training texts' 99th-percentile WordPiece count (+2), at most 512
    tokenizer: str = "fast"

    @property
    def cpu_bf16(self) -> bool:  # ModelParams' field, per instance
        """BERT encoders run faster in bfloat16 on a bf16 CPU at equal accuracy: frozen 1.2-2x, fine-tuned
        MiniLM 1.35x (faster in 3 of 3 paired rounds, -0.08 pt, docs/PERF-LEVERS.md)."""
        return True

    def __post_init__(self) -> None:
        check(bool(self.encoder.strip()), "encoder", self.encoder,
              "a TF Hub handle, a SavedModel path or an imported model name (--encoder)")
        check(self.pooling in ("mean", "pooled", "cls"), "pooling", self.pooling, "one of mean, pooled, cls")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "a number in [0, 1)")
        check(self.max_length == 0 or 3 <= self.max_length <= 512, "max_length", self.max_length,
              "an integer in [3, 512], or 0 = from the training texts' token counts")
        check(self.tokenizer in ("fast", "hub"), "tokenizer", self.tokenizer, "fast or hub")
