"""Learning-rate schedules (warmup wraps any decay) and optimizers (Adam, Model Garden AdamW)."""

from __future__ import annotations

from textclf._tf import keras
from textclf.config import TrainingConfig


def warmup_steps(cfg: TrainingConfig, total_steps: int) -> int:
    """`warmup` is a fraction of the total steps when < 1, else a number of steps."""
    steps = cfg.warmup * total_steps if cfg.warmup < 1 else cfg.warmup
    return int(min(round(steps), total_steps))


def build_schedule(cfg: TrainingConfig, total_steps: int):
    """constant | linear (to 0) | cosine (to 0) over all steps, with linear warmup in front.

    As in Model Garden's create_optimizer, the decay counts from step 0 and warmup
    replaces its first `warmup_steps` steps.
    """
    lr, total = cfg.learning_rate, max(1, total_steps)
    if cfg.schedule == "linear":
        schedule = keras.optimizers.schedules.PolynomialDecay(lr, total, end_learning_rate=0.0, power=1.0)
    elif cfg.schedule == "cosine":
        schedule = keras.optimizers.schedules.CosineDecay(lr, total)
    else:
        schedule = keras.optimizers.schedules.PolynomialDecay(lr, total, end_learning_rate=lr)
    n_warmup = warmup_steps(cfg, total)
    if n_warmup > 0:
        from official.nlp.optimization import WarmUp

        schedule = WarmUp(initial_learning_rate=lr, decay_schedule_fn=schedule, warmup_steps=n_warmup)
    return schedule


def build_optimizer(cfg: TrainingConfig, total_steps: int) -> keras.optimizers.Optimizer:
    """Adam, or Model Garden's AdamWeightDecay (decay skips LayerNorm and biases); both OptimizerV2."""
    schedule = build_schedule(cfg, total_steps)
    if cfg.optimizer == "adamw":
        from official.nlp.optimization import AdamWeightDecay

        return AdamWeightDecay(
            learning_rate=schedule,
            weight_decay_rate=cfg.weight_decay,
            beta_1=0.9,
            beta_2=0.999,
            epsilon=1e-6,
            exclude_from_weight_decay=["LayerNorm", "layer_norm", "norm", "bias"],
        )
    # The OptimizerV2 Adam (as AdamWeightDecay above is): one fused ResourceApplyAdam kernel per
    # variable where tf_keras' newer Adam runs several element-wise ops. Measured on ngram-mlp's
    # 34k x 64 first kernel (16 steps of batch 512): 0.15-0.22 s vs 0.23-0.27 s, and its
    # train function traces in 0.42 s vs 0.65 s. Same update rule.
    return keras.optimizers.legacy.Adam(learning_rate=schedule)
