"""The one feature function: log-mel spectrograms of chunks, for training and classification alike."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .audio import load_audio
from .config import FeatureConfig

__all__ = ["log_mel", "song_features"]


def log_mel(chunks: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Log-mel spectrogram, in dB, of every chunk in one batched call.

    Power mel spectrogram (periodic Hann window, centred frames, Slaney mel scale as in librosa),
    then ``10 * log10(max(S, amin))``. The dB reference is fixed (1.0) and nothing is clipped
    relative to the loudest value, so a chunk's features never depend on the other chunks in the
    batch.

    Parameters
    ----------
    chunks : np.ndarray [shape=(n_chunks, config.chunk_samples)]
        Audio chunks at ``config.sr``.
    config : FeatureConfig

    Returns
    -------
    features : np.ndarray [shape=(n_chunks, config.n_mels, config.n_frames), dtype=float32]
    """
    import librosa

    chunks = np.ascontiguousarray(chunks, dtype=np.float32)
    if chunks.ndim != 2 or chunks.shape[1] != config.chunk_samples:
        raise ValueError(
            f"chunks must have shape (n, {config.chunk_samples}); got {chunks.shape}"
        )
    power = librosa.feature.melspectrogram(
        y=chunks,
        sr=config.sr,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
        power=2.0,
    )
    return (10.0 * np.log10(np.maximum(power, config.amin))).astype(np.float32, copy=False)


def song_features(path: str | os.PathLike, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Decode, segment and featurise one song: the whole path from file to CNN input.

    Returns
    -------
    features : np.ndarray [shape=(n_chunks, n_mels, n_frames), dtype=float32]
    offsets : np.ndarray [shape=(n_chunks,), dtype=int64]
        Start of each chunk in samples at ``config.sr``.

    Raises
    ------
    AudioDecodeError
        The file cannot be decoded or is too short (:class:`AudioTooShortError`); the message names
        the file.
    """
    from .errors import AudioTooShortError
    from .segment import segment

    y = load_audio(path, sr=config.sr)
    try:
        chunks, offsets = segment(y, config)
    except AudioTooShortError as exc:
        raise AudioTooShortError(f"{Path(path)}: {exc}") from None
    return log_mel(chunks, config), offsets
