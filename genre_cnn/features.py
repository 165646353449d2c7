"""The one feature function: log-mel spectrograms of chunks, for training and classification alike."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from .audio import audio_blocks
from .config import FeatureConfig
from .errors import AudioTooShortError, SilentAudioError
from .segment import iter_chunks, silent_chunks

__all__ = ["log_mel", "SongFeatureStream", "song_features"]


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


class SongFeatureStream:
    """Decode, segment and featurise one song in batches: the whole path from file to CNN input.

    Iterating yields ``(features, offsets)`` batches with memory bounded by one batch, however
    long the file. Silent chunks are dropped under ``config.silence="drop"`` and counted in
    :attr:`silent_chunks` once iteration ends.

    Parameters
    ----------
    path : path-like
    config : FeatureConfig
    batch_size : int
        Chunks per batch.

    Yields
    ------
    features : np.ndarray [shape=(k, n_mels, n_frames), dtype=float32]
    offsets : np.ndarray [shape=(k,), dtype=int64]
        Start of each chunk in samples at ``config.sr``.

    Raises
    ------
    AudioDecodeError
        The file cannot be decoded, is too short (:class:`AudioTooShortError`) or silent
        (:class:`SilentAudioError`); the message names the file.
    """

    def __init__(self, path: str | os.PathLike, config: FeatureConfig, *, batch_size: int = 64) -> None:
        self.path = Path(path)
        self.config = config
        self.batch_size = batch_size
        self.chunks = 0
        self.silent_chunks = 0

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        blocks = audio_blocks(self.path, sr=self.config.sr)
        try:
            for chunks, offsets in iter_chunks(blocks, self.config, batch_size=self.batch_size):
                self.chunks += len(chunks)
                if self.config.silence == "drop":
                    silent = silent_chunks(chunks, self.config)
                    self.silent_chunks += int(silent.sum())
                    chunks, offsets = chunks[~silent], offsets[~silent]
                if len(chunks):
                    yield log_mel(chunks, self.config), offsets
        except AudioTooShortError as exc:
            raise AudioTooShortError(f"{self.path}: {exc}") from None
        if self.chunks and self.silent_chunks == self.chunks:
            raise SilentAudioError(
                f"{self.path}: the audio is silent (all {self.chunks} chunk(s) peak at or below "
                f"{self.config.silence_db:g} dBFS); nothing to learn from"
            )


def song_features(
    path: str | os.PathLike, config: FeatureConfig
) -> tuple[np.ndarray, np.ndarray, int]:
    """All of one song's features at once (see :class:`SongFeatureStream`).

    Returns
    -------
    features : np.ndarray [shape=(n_chunks, n_mels, n_frames), dtype=float32]
    offsets : np.ndarray [shape=(n_chunks,), dtype=int64]
    silent_chunks : int
        Chunks dropped as silent.
    """
    stream = SongFeatureStream(path, config)
    batches = list(stream)
    features = np.concatenate([f for f, _ in batches])
    offsets = np.concatenate([o for _, o in batches])
    return features, offsets, stream.silent_chunks
