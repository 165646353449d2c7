"""Custom Keras layers of the genre CNN (imports Keras: load only when building or loading a model)."""

from __future__ import annotations

import numpy as np

from genre_cnn.runtime.backend import import_keras

keras = import_keras()
ops = keras.ops

__all__ = ["BandNormalization", "BandSummary", "SpectralSummary", "SpecAugment"]


@keras.saving.register_keras_serializable(package="genre_cnn")
class BandNormalization(keras.layers.Layer):
    """Standardise each mel band: ``(x - mean[band]) / sqrt(variance[band])``.

    The statistics are non-trainable weights (saved in the ``.keras`` file, frozen into every
    export), so the model takes raw dB log-mel chunks.

    Parameters
    ----------
    n_bands : int
        Size of axis 1 of the input (the mel bands).
    epsilon : float
        Added to the variance before the square root.
    """

    def __init__(self, n_bands: int, *, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.n_bands = int(n_bands)
        self.epsilon = float(epsilon)
        self.mean = self.add_weight(name="mean", shape=(self.n_bands,), initializer="zeros", trainable=False)
        self.variance = self.add_weight(name="variance", shape=(self.n_bands,), initializer="ones",
                                        trainable=False)

    def set_statistics(self, mean, variance) -> None:
        """Load per-band mean and variance (shape ``(n_bands,)`` each)."""
        self.mean.assign(np.asarray(mean, dtype="float32"))
        self.variance.assign(np.asarray(variance, dtype="float32"))

    def call(self, inputs):
        shape = (1, self.n_bands) + (1,) * (len(inputs.shape) - 2)
        mean = ops.reshape(ops.cast(self.mean, inputs.dtype), shape)
        scale = ops.reshape(ops.rsqrt(ops.cast(self.variance, inputs.dtype) + self.epsilon), shape)
        return (inputs - mean) * scale

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "n_bands": self.n_bands, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="genre_cnn")
class BandSummary(keras.layers.Layer):
    """Each mel band's mean and standard deviation over time: a chunk's spectral envelope and its movement.

    Input ``(batch, n_mels, frames, 1)``, output ``(batch, 2 * n_mels)``. Fed beside the
    convolutions' pooled features, it gives the head the timbre summary that handcrafted MFCC
    statistics give a logistic regression, which global pooling of deep features blurs.
    """

    def call(self, inputs):
        bands = inputs[..., 0]
        return ops.concatenate([ops.mean(bands, axis=2), ops.std(bands, axis=2)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2 * input_shape[1])


@keras.saving.register_keras_serializable(package="genre_cnn")
class SpectralSummary(keras.layers.Layer):
    """What a chunk's sound is and how it moves, per mel band: the descriptors of a classic genre classifier.

    Input ``(batch, n_mels, frames, 1)``; output ``(batch, 4 * n_mels)``: each band's mean and
    standard deviation over time (timbre and its spread, as MFCC statistics carry), the mean rise
    from one frame to the next (onset strength: how percussive the band is) and the standard
    deviation of that change (how fast it moves).
    """

    def call(self, inputs):
        bands = inputs[..., 0]
        change = bands[:, :, 1:] - bands[:, :, :-1]
        return ops.concatenate([ops.mean(bands, axis=2), ops.std(bands, axis=2),
                                ops.mean(ops.relu(change), axis=2), ops.std(change, axis=2)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 4 * input_shape[1])


@keras.saving.register_keras_serializable(package="genre_cnn")
class SpecAugment(keras.layers.Layer):
    """SpecAugment (Park et al., 2019): mask random bands and frame ranges, in training only.

    Each chunk gets ``freq_masks`` bands ranges of up to ``max_freq_fraction`` of the bands and
    ``time_masks`` frame ranges of up to ``max_time_fraction`` of the frames (widths and places
    drawn per chunk), filled with ``fill`` (the training mean of each band, so that masked values
    are 0 after band normalisation). At inference (``training=False``) the layer returns its input.

    Parameters
    ----------
    fill : sequence of float [shape=(n_bands,)]
        Value written into masked cells, per band.
    freq_masks, time_masks : int
    max_freq_fraction, max_time_fraction : float
    seed : int, optional
    """

    def __init__(self, fill, *, freq_masks: int = 2, max_freq_fraction: float = 0.15, time_masks: int = 2,
                 max_time_fraction: float = 0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.fill = [float(v) for v in np.asarray(fill).ravel()]
        self.freq_masks = int(freq_masks)
        self.max_freq_fraction = float(max_freq_fraction)
        self.time_masks = int(time_masks)
        self.max_time_fraction = float(max_time_fraction)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _masks(self, batch, size: int, count: int, fraction: float):
        """Boolean ``(batch, size)``: True inside any of ``count`` random ranges of up to ``fraction * size``."""
        widest = max(1, int(round(size * fraction)))
        index = ops.arange(size)[None, :]
        masked = ops.zeros((batch, size), dtype="bool")
        for _ in range(count):
            width = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator) * (widest + 1))
            start = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator) * (size - width + 1))
            width, start = ops.cast(width, "int32"), ops.cast(start, "int32")
            masked = ops.logical_or(masked, ops.logical_and(index >= start, index < start + width))
        return masked

    def call(self, inputs, training=False):
        if not training:
            return inputs
        batch = ops.shape(inputs)[0]
        bands, frames = inputs.shape[1], inputs.shape[2]
        bands_masked = self._masks(batch, bands, self.freq_masks, self.max_freq_fraction)
        frames_masked = self._masks(batch, frames, self.time_masks, self.max_time_fraction)
        masked = ops.logical_or(bands_masked[:, :, None], frames_masked[:, None, :])
        fill = ops.cast(ops.reshape(ops.convert_to_tensor(self.fill), (1, bands, 1)), inputs.dtype)
        return ops.where(masked, fill, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "fill": self.fill, "freq_masks": self.freq_masks,
                "max_freq_fraction": self.max_freq_fraction, "time_masks": self.time_masks,
                "max_time_fraction": self.max_time_fraction, "seed": self.seed}
