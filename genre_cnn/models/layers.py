"""Custom Keras layers of the genre CNN (imports Keras: load only when building or loading a model)."""

from __future__ import annotations

import numpy as np

from genre_cnn.runtime.backend import import_keras

keras = import_keras()
ops = keras.ops

__all__ = ["BandNormalization", "BandSummary", "SpectralSummary", "SpecAugment", "TemperatureScaling"]


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
    """What a chunk's sound is and how it moves: the descriptors of a classic genre classifier, in the network.

    Input ``(batch, n_mels, frames, 1)``; output ``(batch, n_features)``, the concatenation of:

    - per band (``6 * n_mels``): the mean, standard deviation, maximum and minimum over time (timbre
      and its range, as MFCC statistics carry), the mean rise from one frame to the next (onset
      strength: how percussive the band is) and the standard deviation of that change;
    - rhythm (``modulation_groups * modulation_bands``): the magnitude spectrum of the envelope of
      each of ``modulation_groups`` groups of adjacent bands (a fixed DFT over the chunk's frames),
      averaged into ``modulation_bands`` ranges of modulation frequency, ``log(1 + x)`` (not ``log1p``,
      which ONNX lacks): how strongly each register pulses at slow and fast rates;
    - co-movement (``g * (g - 1) / 2`` for ``g = correlation_groups``): the correlation over time
      between every two band groups' envelopes (do bass and treble move together?).

    Group and range counts shrink to what tiny inputs allow (fewer bands or frames). Every
    operation is a matrix product or an elementwise one, so LiteRT runs it as Keras does.
    """

    def __init__(self, *, modulation_groups: int = 8, modulation_bands: int = 12, correlation_groups: int = 16,
                 **kwargs):
        super().__init__(**kwargs)
        self.modulation_groups = int(modulation_groups)
        self.modulation_bands = int(modulation_bands)
        self.correlation_groups = int(correlation_groups)

    def _sizes(self, n_bands: int, n_frames: int) -> tuple[int, int, int, int]:
        bins = max(1, n_frames // 2)  # modulation frequencies 1 .. frames // 2
        return (min(self.modulation_groups, n_bands), min(self.modulation_bands, bins),
                min(self.correlation_groups, n_bands), bins)

    def build(self, input_shape):
        n_bands, n_frames = int(input_shape[1]), int(input_shape[2])
        mod_groups, mod_bands, corr_groups, bins = self._sizes(n_bands, n_frames)

        def averaging(n_items: int, n_groups: int) -> np.ndarray:  # (items, groups): the mean of each group
            matrix = np.zeros((n_items, n_groups), dtype="float32")
            for group, items in enumerate(np.array_split(np.arange(n_items), n_groups)):
                matrix[items, group] = 1.0 / len(items)
            return matrix

        frequencies = np.arange(1, bins + 1)[None, :] * np.arange(n_frames)[:, None] * (2 * np.pi / n_frames)
        self._constants = {
            "modulation_groups": averaging(n_bands, mod_groups),
            "cosine": np.cos(frequencies).astype("float32"),
            "sine": np.sin(frequencies).astype("float32"),
            "modulation_bands": averaging(bins, mod_bands),
            "correlation_groups": averaging(n_bands, corr_groups),
            "pairs": np.flatnonzero(np.triu(np.ones((corr_groups, corr_groups)), k=1)).astype("int32"),
        }
        super().build(input_shape)

    def call(self, inputs):
        constant = {name: ops.convert_to_tensor(value) if value.dtype.kind == "i" else
                    ops.cast(ops.convert_to_tensor(value), inputs.dtype) for name, value in self._constants.items()}
        bands = inputs[..., 0]  # (batch, n_bands, frames)
        change = bands[:, :, 1:] - bands[:, :, :-1]
        per_band = [ops.mean(bands, axis=2), ops.std(bands, axis=2), ops.max(bands, axis=2), ops.min(bands, axis=2),
                    ops.mean(ops.relu(change), axis=2), ops.std(change, axis=2)]
        over_time = ops.transpose(bands, (0, 2, 1))  # (batch, frames, n_bands)

        envelopes = ops.matmul(over_time, constant["modulation_groups"])  # (batch, frames, groups)
        envelopes = ops.transpose(envelopes - ops.mean(envelopes, axis=1, keepdims=True), (0, 2, 1))
        real = ops.matmul(envelopes, constant["cosine"])  # (batch, groups, bins)
        imaginary = ops.matmul(envelopes, constant["sine"])
        magnitude = ops.sqrt(ops.square(real) + ops.square(imaginary) + 1e-6)
        modulation = ops.log(1.0 + ops.matmul(magnitude, constant["modulation_bands"]))  # (batch, groups, ranges)

        groups = ops.matmul(over_time, constant["correlation_groups"])  # (batch, frames, groups)
        groups = groups - ops.mean(groups, axis=1, keepdims=True)
        groups = groups / (ops.std(groups, axis=1, keepdims=True) + 1e-3)
        correlation = ops.matmul(ops.transpose(groups, (0, 2, 1)), groups) / bands.shape[2]
        n_groups = correlation.shape[-1]
        pairs = ops.take(ops.reshape(correlation, (-1, n_groups * n_groups)), constant["pairs"], axis=1)

        return ops.concatenate([*per_band, ops.reshape(modulation, (-1, modulation.shape[1] * modulation.shape[2])),
                                pairs], axis=-1)

    def compute_output_shape(self, input_shape):
        n_bands, n_frames = int(input_shape[1]), int(input_shape[2])
        mod_groups, mod_bands, corr_groups, _ = self._sizes(n_bands, n_frames)
        return (input_shape[0], 6 * n_bands + mod_groups * mod_bands + corr_groups * (corr_groups - 1) // 2)

    def get_config(self):
        return {**super().get_config(), "modulation_groups": self.modulation_groups,
                "modulation_bands": self.modulation_bands, "correlation_groups": self.correlation_groups}


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


@keras.saving.register_keras_serializable(package="genre_cnn")
class TemperatureScaling(keras.layers.Layer):
    """Calibrate probabilities: ``softmax(log(max(p, 1e-7)) / temperature)`` (see :mod:`genre_cnn.models.calibration`).

    Appended to a network only when it is exported, so that the exported file gives the same
    calibrated chunk probabilities as ``classify``.

    Parameters
    ----------
    temperature : float
    """

    def __init__(self, temperature: float, **kwargs):
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, inputs):
        return ops.softmax(ops.log(ops.clip(inputs, 1e-7, 1.0)) / self.temperature, axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
