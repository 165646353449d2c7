"""Cut a song into fixed-length chunks, with an explicit policy for the tail and short songs."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from genre_cnn.config import FeatureConfig
from genre_cnn.errors import AudioTooShortError, SilentAudioError

__all__ = ["chunk_offsets", "iter_chunks", "segment", "silent_chunks", "check_usable"]

_DEFAULTS = FeatureConfig()


def check_usable(path, audio: np.ndarray, sr: int, *, min_seconds: float = _DEFAULTS.min_seconds,
                 silence_db: float = _DEFAULTS.silence_db) -> None:
    """The usable-audio rule of the front ends that take a whole song (musicnn patches, descriptors).

    The same rule, with the same defaults, as the log-mel stream's chunk policy
    (:class:`~genre_cnn.config.FeatureConfig` ``min_seconds`` and ``silence_db``).

    Raises
    ------
    AudioTooShortError
        Shorter than ``min_seconds`` (or empty).
    SilentAudioError
        Peak level at or below ``silence_db`` dBFS.
    """
    seconds = len(audio) / sr
    if len(audio) == 0 or seconds < min_seconds:
        raise AudioTooShortError(f"{path}: only {seconds:.2f} s of audio; at least {min_seconds:g} s is needed")
    if np.abs(audio).max() <= 10.0 ** (silence_db / 20.0):
        raise SilentAudioError(f"{path}: the audio is silent (peak at or below {silence_db:g} dBFS); "
                               "nothing to learn from")


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


def iter_chunks(
    blocks: Iterable[np.ndarray], config: FeatureConfig, *, batch_size: int = 64
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Cut a stream of audio blocks into chunks, holding at most one chunk plus one block.

    Gives exactly the chunks of :func:`chunk_offsets` (the same policy), without needing the
    whole song in memory: songs of hours are chunked in bounded memory.

    Parameters
    ----------
    blocks : iterable of np.ndarray [shape=(n,)]
        Consecutive mono audio at ``config.sr`` (e.g. :func:`genre_cnn.signal.audio.audio_blocks`).
    config : FeatureConfig
    batch_size : int
        Chunks per yielded batch.

    Yields
    ------
    chunks : np.ndarray [shape=(k, config.chunk_samples), dtype=float32]
    offsets : np.ndarray [shape=(k,), dtype=int64]

    Raises
    ------
    AudioTooShortError
        Raised once the stream ends, if it was too short under the policy.
    """
    chunk, hop = config.chunk_samples, config.hop_samples
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0  # position of buffer[0] in the song
    next_offset = 0
    total = emitted = 0
    batch: list[np.ndarray] = []
    offsets: list[int] = []
    for block in blocks:
        total += len(block)
        # The buffer holds the unconsumed rest (under one chunk) plus this block: bounded.
        buffer = np.concatenate([buffer, np.asarray(block, dtype=np.float32)])
        while next_offset + chunk <= buffer_start + len(buffer):
            start = next_offset - buffer_start
            batch.append(buffer[start : start + chunk])
            offsets.append(next_offset)
            next_offset += hop
            emitted += 1
            if len(batch) == batch_size:
                yield np.stack(batch), np.array(offsets, dtype=np.int64)
                batch, offsets = [], []
        consumed = min(next_offset, buffer_start + len(buffer)) - buffer_start
        buffer, buffer_start = buffer[consumed:], buffer_start + consumed

    if emitted == 0:
        chunk_offsets(total, config)  # raises for songs too short under the policy
    tail_start = next_offset
    padded_tail = (
        emitted == 0 or (config.tail == "pad" and total - chunk / 2 >= tail_start and tail_start < total)
    )
    if padded_tail:
        piece = np.zeros(chunk, dtype=np.float32)
        rest = buffer[tail_start - buffer_start :]
        piece[: len(rest)] = rest
        batch.append(piece)
        offsets.append(tail_start)
    if batch:
        yield np.stack(batch), np.array(offsets, dtype=np.int64)


def segment(y: np.ndarray, config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Cut a whole song into chunks following :func:`chunk_offsets` (see :func:`iter_chunks`).

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
    pieces = list(iter_chunks([y], config))
    return np.concatenate([c for c, _ in pieces]), np.concatenate([o for _, o in pieces])


def silent_chunks(chunks: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Which chunks are silent: peak level at or below ``config.silence_db`` dBFS.

    Returns
    -------
    silent : np.ndarray [shape=(n_chunks,), dtype=bool]
    """
    threshold = 10.0 ** (config.silence_db / 20.0)
    return np.abs(chunks).max(axis=1) <= threshold
