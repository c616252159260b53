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


class CameraError(EdgeactError):
    """A camera that cannot be opened or read."""


class ActuatorError(EdgeactError):
    """The actuator cannot be opened at start (wrong port, permissions, busy)."""


class ProtocolError(EdgeactError, ValueError):
    """A serial line that breaks the Pi <-> Arduino protocol (checksum, format, range)."""


class ExportError(EdgeactError):
    """The export failed a check (parity, graph) or could not run."""


class QuantizeError(EdgeactError):
    """Quantization could not run or its inputs are wrong."""


class ToolchainError(EdgeactError):
    """An external build or flash tool (avr-gcc, the Arduino core, avrdude) is missing or failed."""


class RemoteError(EdgeactError):
    """The Pi could not be reached over ssh, or a command or copy there failed."""


class DeployError(RemoteError):
    """The Pi refused or failed a deploy step."""


class DeviceLostError(BackendError):
    """An accelerator stopped answering mid-run (a Hailo NPU's HAILO_COMMUNICATION_CLOSED, a driver
    timeout): the run goes neutral, and a backend with ``reopen()`` may be brought back."""
