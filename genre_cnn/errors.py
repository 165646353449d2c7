"""Exceptions and warnings raised by genre-cnn."""

from __future__ import annotations

__all__ = [
    "GenreCnnError",
    "ConfigError",
    "AudioDecodeError",
    "AudioTooShortError",
    "SilentAudioError",
    "DatasetError",
    "ModelError",
    "TagError",
    "TooLongError",
    "LockedError",
    "OutputError",
    "MonitorError",
    "GenreCnnWarning",
]


class GenreCnnError(Exception):
    """Root of every error genre-cnn raises on purpose.

    Messages name what is wrong the way a Python caller wrote it (``val_fraction=1.2 must be in
    [0, 1)``); the command line turns them into a one-line ``Error: ...`` in its own spelling
    (``--val-fraction 1.2 ...``) and a non-zero exit code. Anything else escaping is a bug.

    Parameters
    ----------
    message : str
    parameter : str, optional
        The parameter at fault, when one is (``"val_fraction"``).
    """

    def __init__(self, message: str = "", *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class ConfigError(GenreCnnError, ValueError):
    """An option or a configuration value is out of range or inconsistent."""


class AudioDecodeError(GenreCnnError):
    """A file could not be read as audio (missing, unreadable, corrupt, not audio, empty)."""


class AudioTooShortError(AudioDecodeError):
    """A file decoded fine but holds too little audio to make one chunk under the chosen policy."""


class SilentAudioError(AudioDecodeError):
    """Every chunk of a file is silent, so there is nothing to learn from or classify."""


class DatasetError(GenreCnnError):
    """A tracks folder or a dataset on disk cannot be used."""


class ModelError(GenreCnnError):
    """A model directory is missing, incomplete or incompatible with this version."""


class TagError(GenreCnnError):
    """A file's tags cannot be read, or cannot be written without risk to the file."""


class TooLongError(AudioDecodeError):
    """The recording is longer than the server accepts."""


class LockedError(GenreCnnError):
    """Another live process is writing the same output."""


class OutputError(GenreCnnError):
    """An output path would replace or mix with something that is not the command's own output."""


class MonitorError(GenreCnnError):
    """The incoming songs cannot be compared (too few, none readable, a bad log)."""


class GenreCnnWarning(UserWarning):
    """Something worked, but not the way the user probably expects."""
