"""Training-time augmentation of log-mel chunks (numpy; the Keras SpecAugment layer is in layers.py).

The dataset stores log-mel chunks in dB, not audio, so the signal augmentations are applied to
those chunks through the dB / power equivalent of the waveform operation:

``gain``
    Multiplying the waveform by ``g`` adds ``20 log10 g`` dB to every bin: exact.
``noise``
    Noise is uncorrelated with the music, so the noisy mel power is the chunk's mel power plus
    the noise's (white: flat spectrum; pink: 1/f). The noise power is set so that the chunk's
    signal-to-noise ratio is ``noise_snr_db`` and gets the random fluctuation of a periodogram
    (a gamma variable per mel bin with the band's degrees of freedom).
``shift``
    A random chunk offset within the song: the chunk is cut again at a random start between its
    own start and the next chunk's, from the frames of the two consecutive chunks.
``stretch``
    Time stretch by a random rate: the time axis is resampled (linear interpolation).
``pitch``
    Pitch shift by a random number of semitones: the frequency axis is rescaled (the band at
    ``f`` takes the value of the original at ``f / 2**(semitones/12)``), like resampling-based
    pitch shifting, so it moves the whole spectral envelope.

Each operation is applied to a chunk with probability :data:`PROBABILITY`, with random numbers
from the generator the caller passes (seeded per batch, so training stays reproducible). Only
training batches are augmented: validation and test chunks are never touched.
"""

from __future__ import annotations

import numpy as np

from genre_cnn.config import AUGMENTATIONS, FeatureConfig

__all__ = ["AUGMENTATIONS", "SIGNAL_AUGMENTATIONS", "PROBABILITY", "ChunkAugmenter", "mixup"]

#: The ones applied by :class:`ChunkAugmenter` (SpecAugment is a Keras layer, mixup mixes pairs).
SIGNAL_AUGMENTATIONS = ("shift", "stretch", "pitch", "gain", "noise")
#: Chance that each signal augmentation is applied to a given chunk.
PROBABILITY = 0.5


class ChunkAugmenter:
    """Apply the CNN's signal augmentations (:class:`genre_cnn.kinds.cnn.CnnOptions`) to batches of log-mel chunks.

    Parameters
    ----------
    feature_config : FeatureConfig
        How the chunks were made (frames per chunk, hop between chunks, mel bands, dB floor).
    options : genre_cnn.kinds.cnn.CnnOptions
        Which augmentations (``options.augment``) and their strengths (``gain_db``, ``stretch``...).
    filterbank : np.ndarray [shape=(n_mels, 1 + n_fft // 2)]
        The dataset's mel filterbank (gives the noise's mel spectrum and the band frequencies).
    """

    def __init__(self, feature_config: FeatureConfig, options, *, filterbank: np.ndarray):
        self.names = tuple(name for name in options.augment if name in SIGNAL_AUGMENTATIONS)
        self.options = options
        self.floor_db = 10.0 * np.log10(feature_config.amin)
        self.n_frames = feature_config.n_frames
        #: frames between the starts of two consecutive chunks
        self.hop_frames = max(1, min(self.n_frames, round(feature_config.hop_samples / feature_config.hop_length)))
        filterbank = np.asarray(filterbank, dtype=np.float64)
        freqs = np.linspace(0, feature_config.sr / 2, filterbank.shape[1])
        weight = filterbank.sum(axis=1)
        self.band_hz = (filterbank @ freqs) / np.maximum(weight, 1e-12)  # centre of mass of each band
        pink = 1.0 / np.maximum(freqs, freqs[1])
        self.noise_profiles = np.stack([filterbank @ np.ones_like(freqs), filterbank @ pink])  # white, pink
        self.noise_profiles /= self.noise_profiles.sum(axis=1, keepdims=True)
        # degrees of freedom of a band's power (sum of chi-square(2) bins with the filter's weights)
        self.band_dof = np.maximum(weight**2 / np.maximum((filterbank**2).sum(axis=1), 1e-24), 1.0)

    @property
    def needs_next_chunk(self) -> bool:
        """Whether :meth:`__call__` uses each chunk's successor (for ``shift`` and ``stretch``)."""
        return "shift" in self.names or "stretch" in self.names

    def __call__(self, chunks: np.ndarray, rng: np.random.Generator, *, next_chunks=None, has_next=None) -> np.ndarray:
        """Augmented copies of ``chunks``.

        Parameters
        ----------
        chunks : np.ndarray [shape=(batch, n_mels, n_frames)]
            Log-mel chunks in dB.
        rng : np.random.Generator
        next_chunks : np.ndarray [shape=(batch, n_mels, n_frames)], optional
            The chunk that follows each chunk in its song (needed by ``shift`` and ``stretch``).
        has_next : np.ndarray [shape=(batch,), dtype=bool], optional
            False where a chunk is the last of its song (its ``next_chunks`` row is ignored).

        Returns
        -------
        np.ndarray [shape=(batch, n_mels, n_frames), dtype=float32]
        """
        x = np.array(chunks, dtype=np.float32)
        if not self.names or len(x) == 0:
            return x
        batch = len(x)
        if self.needs_next_chunk:
            if next_chunks is None or has_next is None:
                raise ValueError("shift and stretch need next_chunks and has_next")
            x = self._shift_and_stretch(x, next_chunks, np.asarray(has_next, bool), rng)
        if "pitch" in self.names:
            semitones = rng.uniform(-1, 1, batch) * self.options.pitch_semitones
            semitones[rng.random(batch) >= PROBABILITY] = 0.0
            x = self.shift_pitch(x, semitones)
        if "gain" in self.names:
            gain = rng.uniform(-1, 1, batch) * self.options.gain_db
            gain[rng.random(batch) >= PROBABILITY] = 0.0
            x = np.maximum(x + gain[:, None, None].astype(np.float32), self.floor_db)
        if "noise" in self.names:
            x = self._noise(x, rng.random(batch) < PROBABILITY, rng)
        return x.astype(np.float32, copy=False)

    def _shift_and_stretch(self, x, next_chunks, has_next, rng) -> np.ndarray:
        batch, _, frames = x.shape
        hop = self.hop_frames
        # the frames of this chunk, then those that only the next chunk has: one strip of the song
        tail = np.where(has_next[:, None, None], next_chunks[:, :, frames - hop :], x[:, :, -1:])
        strip = np.concatenate([x, tail], axis=2)
        rate = np.ones(batch)
        if "stretch" in self.names:
            span = np.log1p(self.options.stretch)
            rate = np.exp(rng.uniform(-span, span, batch))
            rate[rng.random(batch) >= PROBABILITY] = 1.0
        start = np.zeros(batch)
        if "shift" in self.names:
            last = np.where(has_next, strip.shape[2] - 1, frames - 1)  # no successor: stay in the chunk
            room = np.maximum(last - (frames - 1) * rate, 0.0)
            start = rng.uniform(0, 1, batch) * room
            start[rng.random(batch) >= PROBABILITY] = 0.0
        position = np.clip(start[:, None] + np.arange(frames)[None, :] * rate[:, None], 0, strip.shape[2] - 1)
        return _interpolate(strip, position, axis=2)

    def shift_pitch(self, x: np.ndarray, semitones: np.ndarray) -> np.ndarray:
        """Shift every chunk of ``x`` by its number of ``semitones`` (frequency axis rescaled)."""
        source_hz = self.band_hz[None, :] / (2.0 ** (semitones[:, None] / 12.0))
        position = np.stack([np.interp(hz, self.band_hz, np.arange(len(self.band_hz))) for hz in source_hz])
        return _interpolate(x, position, axis=1)

    def _noise(self, x, apply, rng) -> np.ndarray:
        if not apply.any():
            return x
        picked = x[apply].astype(np.float64)
        power = 10.0 ** (picked / 10.0)
        noise_total = power.sum(axis=(1, 2)) / 10.0 ** (self.options.noise_snr_db / 10.0)
        colour = rng.integers(0, 2, len(picked))  # 0 white, 1 pink
        profile = self.noise_profiles[colour][:, :, None] * (noise_total / picked.shape[2])[:, None, None]
        dof = self.band_dof[None, :, None]
        fluctuation = rng.gamma(dof, 1.0 / dof, size=picked.shape)
        noisy = 10.0 * np.log10(np.maximum(power + profile * fluctuation, 10.0 ** (self.floor_db / 10.0)))
        x = x.copy()
        x[apply] = noisy
        return x


def _interpolate(x: np.ndarray, position: np.ndarray, *, axis: int) -> np.ndarray:
    """Linear interpolation of ``x`` (batch, bands, frames) at fractional ``position`` (batch, n) along ``axis``."""
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, x.shape[axis] - 1)
    frac = (position - low).astype(np.float32)
    shape = (len(x), -1, 1) if axis == 1 else (len(x), 1, -1)
    low, high, frac = low.reshape(shape), high.reshape(shape), frac.reshape(shape)
    a = np.take_along_axis(x, low, axis=axis)
    b = np.take_along_axis(x, high, axis=axis)
    return a + (b - a) * frac


def mixup(features: np.ndarray, targets: np.ndarray, rng: np.random.Generator, *, alpha: float):
    """Mix every chunk with a random partner of the same batch (Zhang et al., 2018).

    ``lam ~ Beta(alpha, alpha)`` per chunk; features and one-hot targets become
    ``lam * own + (1 - lam) * partner``, so every target row still sums to 1.

    Parameters
    ----------
    features : np.ndarray [shape=(batch, ...)]
    targets : np.ndarray [shape=(batch, n_classes)]
        One-hot (or already soft) targets.
    rng : np.random.Generator
    alpha : float

    Returns
    -------
    features, targets : np.ndarray
    """
    batch = len(features)
    lam = rng.beta(alpha, alpha, batch).astype(np.float32)
    partner = rng.permutation(batch)
    mixed = lam.reshape((-1,) + (1,) * (features.ndim - 1)) * features + \
        (1 - lam).reshape((-1,) + (1,) * (features.ndim - 1)) * features[partner]
    return mixed.astype(np.float32), (lam[:, None] * targets + (1 - lam[:, None]) * targets[partner]).astype(np.float32)
