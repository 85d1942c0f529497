"""What a run reports while it trains (Listener, the CLI's progress), and what it produced (RunResult)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textclf import runs
from textclf.config import RunConfig


class Listener:
    """Progress hooks (the CLI draws a rich progress bar with them).

    Every hook is optional: subclass this, or pass any object with some of these methods;
    run_training calls only the ones it has.
    """

    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_batch(self, epoch: int, step: int, logs: dict[str, float]) -> None: ...
    def on_epoch(self, epoch: int, logs: dict[str, float]) -> None: ...
    def on_status(self, message: str) -> None: ...
    def on_note(self, line: str) -> None: ...


_HOOKS = ("on_start", "on_batch", "on_epoch", "on_status", "on_note", "on_work")


class _Hooks:
    """A listener's hooks, a no-op for each one it lacks (or for no listener)."""

    def __init__(self, listener: Any) -> None:
        self.listener = listener
        for name in _HOOKS:
            setattr(self, name, getattr(listener, name, None) or (lambda *args: None))
        # A listener without on_note hears notes as status lines.
        if listener is not None and not hasattr(listener, "on_note"):
            self.on_note = self.on_status


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    metrics: dict[str, Any]
    history: dict[str, list[float]]
    info: dict[str, Any] = field(default_factory=dict)


def config_epochs(run: "runs.Run") -> Any:
    return (run.config.get("training") or {}).get("epochs")


def run_name(config: RunConfig) -> str:
    """The name a run directory ends with: the model, and for a BERT encoder whether it was frozen or fine-tuned
    (`…-minilm-frozen`, `…-minilm-finetune`: two runs of one encoder, told apart by name)."""
    trainable = getattr(config.model_params, "trainable", None)
    return config.model if trainable is None else f"{config.model}-{'finetune' if trainable else 'frozen'}"
