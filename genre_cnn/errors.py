"""Exceptions and warnings raised by genre-cnn."""

__all__ = [
    "GenreCnnError",
    "ConfigError",
    "AudioDecodeError",
    "AudioTooShortError",
    "SilentAudioError",
    "DatasetError",
    "ModelError",
    "GenreCnnWarning",
]


class GenreCnnError(Exception):
    """Root of every error genre-cnn raises on purpose.

    The command line turns these into a one-line ``Error: ...`` message and a non-zero exit code;
    anything else escaping is a bug.
    """


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


class GenreCnnWarning(UserWarning):
    """Something worked, but not the way the user probably expects."""
