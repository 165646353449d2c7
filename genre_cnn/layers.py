"""Custom Keras layers of the genre CNN (imports Keras: load only when building or loading a model)."""

from __future__ import annotations

import numpy as np

from .backend import import_keras

keras = import_keras()
ops = keras.ops

__all__ = ["BandNormalization"]


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
