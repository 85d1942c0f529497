"""Size limits shared by the token-sequence families (light: no TensorFlow)."""

from __future__ import annotations

MAX_POSITIONS = 512
# More layers than any text classifier here needs; a probe's 100,000 spent minutes building the graph before
# anything failed (a deep model's weights may still fit in memory, so check_fits does not catch it).
MAX_LAYERS = 64
TRAIN_BYTES_PER_WEIGHT = 16  # float32 weight, its gradient and Adam's two moments


def check_fits(parameters: int, sizes: str) -> None:
    """A config whose weights alone cannot be trained in this machine's memory fails at load."""
    import os

    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    need = parameters * TRAIN_BYTES_PER_WEIGHT
    if need > memory:
        from textclf.errors import ConfigError

        raise ConfigError(f"model_params: the model does not fit in memory ({parameters:,} weights: "
                          f"{need / 2**30:.1f} GB needed to train, {memory / 2**30:.1f} GB here); lower {sizes}")


MAX_SEQUENCE = 512  # longest max_length taken from the data (transformer and BERT)
