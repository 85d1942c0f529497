"""User-fixable errors: the CLI prints their message as one line and exits non-zero.

Also the field checks that config dataclasses (run config, model parameters) run in
`__post_init__`: `check` raises FieldError, which `config.from_dict` turns into a ConfigError
naming the field path.
"""

from typing import Any


class TextclfError(Exception):
    """Base class for errors the user can fix; the message is shown as is."""


class ConfigError(TextclfError):
    """An option, config field or experiment is invalid."""


class DataError(TextclfError):
    """A data source is missing, unreadable or malformed."""


class ModelError(TextclfError):
    """A model name, model file or checkpoint is unknown or unusable."""


class RunError(TextclfError):
    """A run directory is missing, incomplete or unreadable."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the CLI's handler so a run is marked like a Ctrl-C."""


# Every SIGTERM the CLI's handler takes is recorded here: one that arrived where an exception is swallowed (a
# weakref callback, a __del__: Python prints "Exception ignored" and goes on) is raised at the next safe point
# (raise_deferred_termination), and the CLI's exit turns a would-be success after one into `terminated`.
_DEFERRED: list[bool] = []


def defer_termination() -> None:
    _DEFERRED.append(True)


def termination_pending() -> bool:
    return bool(_DEFERRED)


def termination_handled() -> None:
    """The recorded SIGTERMs were the command's own way to end (serve: a clean stop), not an interruption."""
    _DEFERRED.clear()


def raise_deferred_termination() -> None:
    """Raise Terminated if a SIGTERM was recorded and not yet raised here: training's batch ends, a group's next
    run, a prediction's next batch. From then on a second SIGTERM ends the process at once."""
    if _DEFERRED:
        import signal

        _DEFERRED.clear()
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except ValueError:  # not the main thread (serve's batcher): the handler stays
            pass
        raise Terminated()


class Interrupted(TextclfError):
    """Training stopped by Ctrl-C or SIGTERM; `run_dir` (if any) can be resumed."""

    def __init__(self, run_dir: Any = None, *, terminated: bool = False, hint: str | None = None) -> None:
        super().__init__("terminated" if terminated else "interrupted")
        self.run_dir, self.terminated, self.hint = run_dir, terminated, hint


class FieldError(ValueError):
    """Raised by a dataclass check; `config.from_dict` adds the field path."""

    def __init__(self, name: str, value: Any, expected: str) -> None:
        super().__init__(expected)
        self.name, self.value, self.expected = name, value, expected


def check(ok: bool, name: str, value: Any, expected: str) -> None:
    """Raise FieldError for `name` unless `ok`."""
    if not ok:
        raise FieldError(name, value, expected)


def choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    check(value in choices, name, value, "one of " + ", ".join(choices))


def write_failure(err: BaseException) -> str:
    """Why a write failed, in a few words: the OS's reason (also inside TensorFlow's and h5py's
    messages, e.g. SaveV2 on a full disk), else the first line of the message."""
    strerror = getattr(err, "strerror", None)
    if strerror:
        return strerror
    text = str(getattr(err, "message", "") or err)
    for marker in ("No space left on device", "Permission denied", "Read-only file system", "Disk quota exceeded"):
        if marker in text:
            return marker
    return (text.strip().splitlines() or [type(err).__name__])[0][:160]

