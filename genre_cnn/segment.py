"""Cut a song into fixed-length chunks, with an explicit policy for the tail and short songs."""

from __future__ import annotations

import numpy as np

from .config import FeatureConfig
from .errors import AudioTooShortError

__all__ = ["chunk_offsets", "segment"]


def chunk_offsets(n_samples: int, config: FeatureConfig) -> np.ndarray:
    """Start offsets (in samples) of the chunks of a song ``n_samples`` long.

    The policy, in order:

    1. Songs shorter than ``config.min_seconds`` are rejected.
    2. Songs shorter than one chunk give one zero-padded chunk (``short="pad"``) or are rejected
       (``short="skip"``).
    3. Otherwise full chunks start at ``0, hop, 2 * hop, ...`` as long as they fit.
    4. With ``tail="pad"``, the audio after the last full chunk becomes one more zero-padded
       chunk when it is at least half a chunk long; with ``tail="drop"`` it is ignored.

    Parameters
    ----------
    n_samples : int
        Length of the song in samples at ``config.sr``.
    config : FeatureConfig
        Chunk length, hop and policies.

    Returns
    -------
    offsets : np.ndarray [shape=(n_chunks,), dtype=int64]

    Raises
    ------
    AudioTooShortError
        The song is too short under the policy; the message says how long it is and the minimum.
    """
    chunk, hop = config.chunk_samples, config.hop_samples
    seconds = n_samples / config.sr
    if n_samples == 0 or seconds < config.min_seconds:
        raise AudioTooShortError(
            f"only {seconds:.2f} s of audio; at least {config.min_seconds:g} s is needed"
        )
    if n_samples < chunk:
        if config.short == "skip":
            raise AudioTooShortError(
                f"only {seconds:.2f} s of audio, shorter than one chunk ({config.chunk_seconds:.2f} s) "
                "and the short-song policy is 'skip'"
            )
        return np.zeros(1, dtype=np.int64)
    offsets = np.arange(0, n_samples - chunk + 1, hop, dtype=np.int64)
    if config.tail == "pad":
        tail_start = offsets[-1] + hop
        if tail_start < n_samples and n_samples - tail_start >= chunk / 2:
            offsets = np.append(offsets, tail_start)
    return offsets


def segment(y: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Cut a song into chunks following :func:`chunk_offsets`.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio at ``config.sr``.
    config : FeatureConfig

    Returns
    -------
    chunks : np.ndarray [shape=(n_chunks, config.chunk_samples), dtype=float32]
        Chunks, zero-padded where the policy pads.
    offsets : np.ndarray [shape=(n_chunks,), dtype=int64]
        Start of each chunk in samples.
    """
    offsets = chunk_offsets(len(y), config)
    chunks = np.zeros((len(offsets), config.chunk_samples), dtype=np.float32)
    for row, start in enumerate(offsets):
        piece = y[start : start + config.chunk_samples]
        chunks[row, : len(piece)] = piece
    return chunks, offsets
