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


class Interrupted(TextclfError):
    """Training stopped by Ctrl-C or SIGTERM; `run_dir` (if any) can be resumed."""

    def __init__(self, run_dir: Any = None, *, terminated: bool = False) -> None:
        super().__init__("terminated" if terminated else "interrupted")
        self.run_dir, self.terminated = run_dir, terminated


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
