"""Errors a user can act on: each message names the problem and the fix."""


class EdgeactError(Exception):
    """Base of every error edgeact raises on purpose (the CLI prints these without a traceback)."""


class ConfigError(EdgeactError):
    """A configuration edgeact cannot honour."""


class CheckpointError(EdgeactError):
    """A checkpoint that is missing, corrupt or does not fit the model."""


class InputError(EdgeactError):
    """An observation of the wrong shape, dtype or range."""


class DataError(EdgeactError):
    """A malformed episode or dataset."""


class BackendError(EdgeactError):
    """An unknown backend, or one whose runtime or hardware is absent."""


class DeployError(EdgeactError):
    """The Pi could not be reached, or refused or failed a deploy step."""
