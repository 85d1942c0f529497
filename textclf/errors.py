"""User-fixable errors: the CLI prints their message as one line and exits non-zero."""


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
