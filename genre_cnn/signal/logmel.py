"""The one feature function: log-mel spectrograms of chunks, for training and classification alike."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from genre_cnn.config import FeatureConfig
from genre_cnn.errors import AudioTooShortError, SilentAudioError
from genre_cnn.signal.audio import LevelMeter, audio_blocks, audio_info
from genre_cnn.signal.cleaning import reduce_noise, trim_silence
from genre_cnn.signal.segment import iter_chunks, silent_chunks

__all__ = ["BATCH_BYTES", "chunks_per_batch", "mel_filterbank", "mel_band_edges", "log_mel", "SongFeatureStream",
           "song_features", "song_band_means"]


@functools.lru_cache(maxsize=8)
def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """The mel filterbank of ``config``: Slaney-scale, Slaney-normalised triangles.

    The same numbers as ``librosa.filters.mel`` (htk=False, norm="slaney"; tested), computed with
    numpy alone: importing librosa costs about a second (scipy.signal, numba) that every build
    and every cold ``classify`` would pay. Saved beside every dataset and model
    (``mel_filterbank.npy``).

    Returns
    -------
    filterbank : np.ndarray [shape=(n_mels, 1 + n_fft // 2), dtype=float32]
    """
    fmax = config.sr / 2 if config.fmax is None else config.fmax
    fft_hz = np.fft.rfftfreq(config.n_fft, d=1.0 / config.sr)
    edges_hz = _mel_to_hz(np.linspace(_hz_to_mel(config.fmin), _hz_to_mel(fmax), config.n_mels + 2))
    widths = np.diff(edges_hz)
    ramps = np.subtract.outer(edges_hz, fft_hz)
    weights = np.zeros((config.n_mels, len(fft_hz)), dtype=np.float32)
    for band in range(config.n_mels):
        rising = -ramps[band] / widths[band]
        falling = ramps[band + 2] / widths[band + 1]
        weights[band] = np.maximum(0, np.minimum(rising, falling))
    weights *= (2.0 / (edges_hz[2 : config.n_mels + 2] - edges_hz[: config.n_mels]))[:, np.newaxis]
    return weights


#: The Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_MEL_HZ_STEP = 200.0 / 3
_LOG_START_HZ = 1000.0
_LOG_START_MEL = _LOG_START_HZ / _MEL_HZ_STEP
_LOG_STEP = np.log(6.4) / 27.0


def mel_band_edges(n_bands: int, *, fmax: float, fmin: float = 0.0) -> np.ndarray:
    """Frequency edges (Hz) of ``n_bands`` mel bands from ``fmin`` to ``fmax`` (Slaney's mel scale, as
    :func:`mel_filterbank`), ``n_bands + 1`` of them: where each band of a log-mel sits, for labels."""
    return _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_bands + 1))


def _hz_to_mel(hz):
    hz = np.asanyarray(hz, dtype=np.float64)
    linear = hz / _MEL_HZ_STEP
    logarithmic = _LOG_START_MEL + np.log(np.maximum(hz, _LOG_START_HZ) / _LOG_START_HZ) / _LOG_STEP
    return np.where(hz >= _LOG_START_HZ, logarithmic, linear)


def _mel_to_hz(mel):
    mel = np.asanyarray(mel, dtype=np.float64)
    linear = _MEL_HZ_STEP * mel
    logarithmic = _LOG_START_HZ * np.exp(_LOG_STEP * (np.maximum(mel, _LOG_START_MEL) - _LOG_START_MEL))
    return np.where(mel >= _LOG_START_MEL, logarithmic, linear)


#: Memory for one batch of chunks on its way through classification: the audio, the features and
#: the network's widest activations (the first block's 16 feature maps, a few live copies).
BATCH_BYTES = 48 * 2**20
_ACTIVATION_COPIES = 64


def chunks_per_batch(config: FeatureConfig, *, budget_bytes: int = BATCH_BYTES) -> int:
    """How many chunks of ``config`` fit in ``budget_bytes`` of audio, features and activations.

    Bounds the memory of classifying (and building) by bytes, not by a chunk count, so a small
    machine stays small whatever the chunk length and however long the file.
    """
    n_mels, n_frames = config.input_shape
    per_chunk = 4 * (config.chunk_samples + n_mels * n_frames * (1 + _ACTIVATION_COPIES))
    return max(1, budget_bytes // per_chunk)


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    """Periodic Hann window (what librosa and scipy use for spectral analysis)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def _filter_bands(filterbank: np.ndarray, *, groups: int = 8) -> list[tuple[int, int, int, int, np.ndarray]]:
    """The filterbank as consecutive groups of filters, each with the range of bins it covers.

    Mel filters are narrow triangles, so multiplying each group by its bins alone skips the ~87 %
    of the dense product that multiplies zeros (the same sums, at a fifth of the work).

    Returns
    -------
    list of (first, stop, low, high, weights)
        Filters ``first:stop`` cover bins ``low:high``; ``weights`` is their ``(high - low, stop - first)`` block.
    """
    bands = []
    for rows in np.array_split(np.arange(len(filterbank)), min(groups, len(filterbank))):
        covered = np.flatnonzero(filterbank[rows].any(axis=0))
        low, high = (int(covered[0]), int(covered[-1]) + 1) if len(covered) else (0, 1)
        bands.append((int(rows[0]), int(rows[-1]) + 1, low, high,
                      np.ascontiguousarray(filterbank[rows[0] : rows[-1] + 1, low:high].T)))
    return bands


def log_mel(
    chunks: np.ndarray,
    config: FeatureConfig,
    *,
    filterbank: Optional[np.ndarray] = None,
    block: int = 4,
) -> np.ndarray:
    """Log-mel spectrogram, in dB, of every chunk: the one feature function.

    Exactly librosa's ``power_to_db(melspectrogram(...), ref=1.0, top_db=None)`` with librosa
    0.11's defaults (periodic Hann window, centred frames padded with zeros, power 2, Slaney mel
    scale), computed with scipy's real FFT so that classification needs no librosa import. The dB
    reference is fixed (1.0) and nothing is clipped relative to the loudest value, so a chunk's
    features never depend on the other chunks in the batch.

    Parameters
    ----------
    chunks : np.ndarray [shape=(n_chunks, config.chunk_samples)]
        Audio chunks at ``config.sr``.
    config : FeatureConfig
    filterbank : np.ndarray [shape=(n_mels, 1 + n_fft // 2)], optional
        The saved filterbank of a dataset or model; default :func:`mel_filterbank`.
    block : int
        Chunks transformed at a time (bounds the memory of the framed signal; small blocks stay
        in the CPU cache).

    Returns
    -------
    features : np.ndarray [shape=(n_chunks, config.n_mels, config.n_frames), dtype=float32]
    """
    import scipy.fft

    chunks = np.asarray(chunks, dtype=np.float32)
    if chunks.ndim != 2 or chunks.shape[1] != config.chunk_samples:
        raise ValueError(
            f"chunks must have shape (n, {config.chunk_samples}); got {chunks.shape}"
        )
    if filterbank is None:
        filterbank = mel_filterbank(config)
    n_fft, hop = config.n_fft, config.hop_length
    window = _hann(n_fft)
    bands = _filter_bands(np.asarray(filterbank, dtype=np.float32))
    out = np.empty((len(chunks), config.n_mels, config.n_frames), dtype=np.float32)
    for start in range(0, len(chunks), block):
        padded = np.pad(chunks[start : start + block], ((0, 0), (n_fft // 2, n_fft // 2)))
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=1)[:, ::hop]
        spectrum = scipy.fft.rfft(frames * window, axis=2, overwrite_x=True)
        pairs = spectrum.view(np.float32)  # re, im, re, im...
        np.square(pairs, out=pairs)
        power = pairs[..., 0::2] + pairs[..., 1::2]  # |X|² without the square root of np.abs
        mel = np.empty((*power.shape[:2], config.n_mels), dtype=np.float32)
        for first, stop, low, high, weights in bands:  # only the bins each group of filters covers
            np.matmul(power[..., low:high], weights, out=mel[..., first:stop])
        np.maximum(mel, config.amin, out=mel)
        np.log10(mel, out=mel)
        mel *= 10.0
        out[start : start + block] = mel.transpose(0, 2, 1)
    return out


class SongFeatureStream:
    """Decode, segment and featurise one song in batches: the whole path from file to CNN input.

    Iterating yields ``(features, offsets)`` batches with memory bounded by one batch, however
    long the file. Silent chunks are dropped under ``config.silence="drop"`` and counted in
    :attr:`silent_chunks` once iteration ends.

    Parameters
    ----------
    path : path-like
    config : FeatureConfig
    batch_size : int, optional
        Chunks per batch; default :func:`chunks_per_batch` (a byte budget).
    filterbank : np.ndarray, optional
        Saved mel filterbank (see :func:`log_mel`).
    measure_levels : bool
        Also measure the song's levels as it is decoded (:class:`~genre_cnn.signal.audio.LevelMeter`,
        before any cleaning) and its header's rate and channels: :attr:`stats` then holds them
        (``build-dataset`` records them; classifying does not pay for them).

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

    def __init__(
        self,
        path: str | os.PathLike,
        config: FeatureConfig,
        *,
        batch_size: Optional[int] = None,
        filterbank: Optional[np.ndarray] = None,
        measure_levels: bool = False,
    ) -> None:
        self.path = Path(path)
        self.config = config
        self.filterbank = filterbank
        self.batch_size = batch_size or chunks_per_batch(config)
        self.chunks = 0
        self.silent_chunks = 0
        self.trimmed_seconds = 0.0
        self.denoise_db = 0.0
        self.meter = LevelMeter(config.sr) if measure_levels else None
        self.header: Optional[dict] = None

    @property
    def stats(self) -> dict:
        """What the stream dropped or cleaned, and with ``measure_levels`` the song's levels, once iteration
        has ended."""
        stats = {"silent_chunks": self.silent_chunks, "trimmed_seconds": round(self.trimmed_seconds, 3),
                 "denoise_db": round(self.denoise_db, 2)}
        if self.meter is not None:
            stats.update(self.header or {}, **self.meter.levels)
        return stats

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        blocks = audio_blocks(self.path, sr=self.config.sr)
        if self.meter is not None:
            info = audio_info(self.path)
            self.header = {"sample_rate": info.sample_rate, "channels": info.channels}
            blocks = self.meter.metered(blocks)
        if self.config.trim_db is not None or self.config.denoise:
            blocks = [self._cleaned(np.concatenate(list(blocks)))]  # cleaning needs the whole song
        try:
            for chunks, offsets in iter_chunks(blocks, self.config, batch_size=self.batch_size):
                self.chunks += len(chunks)
                if self.config.silence == "drop":
                    silent = silent_chunks(chunks, self.config)
                    self.silent_chunks += int(silent.sum())
                    chunks, offsets = chunks[~silent], offsets[~silent]
                if len(chunks):
                    yield log_mel(chunks, self.config, filterbank=self.filterbank), offsets
        except AudioTooShortError as exc:
            raise AudioTooShortError(f"{self.path}: {exc}") from None
        if self.chunks and self.silent_chunks == self.chunks:
            raise SilentAudioError(
                f"{self.path}: the audio is silent (all {self.chunks} chunk(s) peak at or below "
                f"{self.config.silence_db:g} dBFS); nothing to learn from"
            )


    def _cleaned(self, y: np.ndarray) -> np.ndarray:
        if self.config.trim_db is not None:
            y, removed = trim_silence(y, sr=self.config.sr, top_db=self.config.trim_db)
            self.trimmed_seconds = removed
        if self.config.denoise:
            y, reduction = reduce_noise(y, sr=self.config.sr)
            self.denoise_db = reduction
        return y


def song_features(
    path: str | os.PathLike, config: FeatureConfig
) -> tuple[np.ndarray, np.ndarray, dict]:
    """All of one song's features at once (see :class:`SongFeatureStream`).

    Returns
    -------
    features : np.ndarray [shape=(n_chunks, n_mels, n_frames), dtype=float32]
    offsets : np.ndarray [shape=(n_chunks,), dtype=int64]
    stats : dict
        ``silent_chunks`` dropped, ``trimmed_seconds`` of silence trimmed, ``denoise_db`` by which
        noise reduction lowered the level (see :attr:`SongFeatureStream.stats`).
    """
    stream = SongFeatureStream(path, config)
    batches = list(stream)
    features = np.concatenate([f for f, _ in batches])
    offsets = np.concatenate([o for _, o in batches])
    return features, offsets, stream.stats


def song_band_means(
    path: str | os.PathLike, config: FeatureConfig, *, filterbank: Optional[np.ndarray] = None
) -> np.ndarray:
    """Mean log-mel level of each mel band over a song's (non-silent) chunks, in dB.

    The song's spectral balance in the same features the model sees: what ``serve --log``
    records for each song, so incoming audio can be compared with the training data.

    Returns
    -------
    np.ndarray [shape=(n_mels,), dtype=float64]
    """
    total, frames = np.zeros(config.n_mels), 0
    for features, _ in SongFeatureStream(path, config, filterbank=filterbank):
        total += features.sum(axis=(0, 2), dtype=np.float64)
        frames += features.shape[0] * features.shape[2]
    return total / frames
