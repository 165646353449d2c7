"""Decode an audio file into mono float32 samples at a chosen sample rate."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import AudioDecodeError
from .native import native_stderr_silenced

__all__ = ["AUDIO_EXTENSIONS", "is_audio_file", "load_audio", "resample"]

#: File name endings treated as audio (compared case-insensitively).
AUDIO_EXTENSIONS = (".mp3", ".wav", ".ogg", ".oga", ".flac", ".au", ".snd", ".aif", ".aiff", ".aifc")


def is_audio_file(path: Path) -> bool:
    """True for a visible file whose name ends in one of :data:`AUDIO_EXTENSIONS`."""
    name = Path(path).name
    return not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS)


def load_audio(path: str | os.PathLike, *, sr: int) -> np.ndarray:
    """Decode a file to mono float32 samples at ``sr`` Hz.

    soundfile (libsndfile, which reads mp3, wav, ogg, flac, au and aiff) is tried first; audioread
    (ffmpeg or GStreamer, when installed) is the fallback for anything libsndfile cannot read.

    Parameters
    ----------
    path : path-like
        The audio file.
    sr : int
        Target sample rate in Hz.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
        Mono samples, channels averaged.

    Raises
    ------
    AudioDecodeError
        The file is missing, unreadable, not audio, holds no samples or holds NaN/inf.
    """
    path = Path(path)
    if not path.is_file():
        reason = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise AudioDecodeError(f"{path}: {reason}")
    try:
        samples, native_sr = _read_soundfile(path)
    except Exception as first_error:  # libsndfile's errors carry no stable type across versions
        try:
            samples, native_sr = _read_audioread(path)
        except Exception:
            raise AudioDecodeError(
                f"{path}: cannot decode audio ({_describe(first_error, path)}); "
                "is it a complete mp3/wav/ogg/flac/aiff file?"
            ) from None
    if samples.size == 0:
        raise AudioDecodeError(f"{path}: the file holds no audio samples")
    mono = samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else samples.astype(np.float32)
    if not np.isfinite(mono).all():
        raise AudioDecodeError(f"{path}: the audio contains NaN or infinite samples")
    return resample(mono, orig_sr=native_sr, target_sr=sr)


def resample(y: np.ndarray, *, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample mono float32 audio with soxr (high quality); a no-op when the rates match."""
    if orig_sr == target_sr:
        return np.ascontiguousarray(y, dtype=np.float32)
    import soxr

    return soxr.resample(y, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    with native_stderr_silenced():  # libmpg123 prints "Note: Illegal Audio-MPEG-Header" itself
        samples, native_sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    return samples, int(native_sr)


def _read_audioread(path: Path) -> tuple[np.ndarray, int]:
    import audioread

    with audioread.audio_open(str(path)) as decoder:
        native_sr, channels = decoder.samplerate, decoder.channels
        pcm = b"".join(decoder)
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    return samples.reshape(-1, channels), int(native_sr)


def _describe(error: Exception, path: Path) -> str:
    """libsndfile's message without the file name it repeats, e.g. 'format not recognised'."""
    if isinstance(error, PermissionError):
        return "permission denied"
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    for prefix in (f"Error opening {str(path)!r}:", f"Error opening {str(path)}:"):
        text = text.removeprefix(prefix)
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:]
