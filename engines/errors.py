"""Errors a user can cause. The CLI prints their message (no traceback) and exits non-zero.

Every message should say what went wrong and what to do about it.
"""


class StylestreamError(Exception):
    """Base class for errors caused by input, configuration or environment."""

    exit_code = 2


class InputError(StylestreamError):
    """An input (image, video, camera, URL, folder) cannot be read or is unusable."""


class OutputError(StylestreamError):
    """An output cannot be written (permissions, full disk, bad path)."""


class WeightsError(StylestreamError):
    """Network weights are missing, corrupt or do not fit the network."""


class ConfigError(StylestreamError):
    """A configuration file or option is invalid."""


class BackendUnavailable(StylestreamError):
    """A requested backend (CUDA, TensorRT, an onnxruntime provider) is not present."""


class OutOfMemory(StylestreamError):
    """The device ran out of memory even one frame at a time; the message says what to lower."""
