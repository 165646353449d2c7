"""The CNN: stacked Conv2D + BatchNormalization + MaxPooling2D blocks over a log-mel chunk, softmax over the genres.

Two heads (:data:`HEADS`). The default, ``"wide"``, makes the genres' logits the sum of a linear path
from the chunk's spectral summary (:class:`genre_cnn.models.layers.SpectralSummary`: per-band
statistics, rhythm and co-movement), set by a logistic regression before training and frozen, and of
the convolutions' path, started at zero. ``"summary"`` (the previous default) feeds the pooled features
and each band's mean and standard deviation (:class:`genre_cnn.models.layers.BandSummary`) through one
dense layer. Measured (benchmarks/RESULTS.md, 2026-12-02): the wide head is ahead of the summary head
and of the scikit-learn baseline on real-genres, dev-music and the demo.
"""

from __future__ import annotations

from typing import Sequence

from genre_cnn.errors import ConfigError
from genre_cnn.runtime.backend import import_keras

__all__ = ["build_model", "BLOCK_FILTERS", "HEADS", "SUMMARY_LAYER", "WIDE_LAYER", "set_summary_statistics",
           "summary_network"]

# === Config ===
#: Filters of the convolution blocks; each block halves the time and frequency resolution.
BLOCK_FILTERS = (16, 32, 64, 128)
KERNEL_SIZE = 3
DENSE_UNITS = 64
DROPOUT = 0.3
#: Momentum of the batch-norm moving statistics. Keras' 0.99 needs hundreds of steps to forget its
#: initial values; a 10-epoch fit of a small dataset takes ~50, so inference would use stale
#: statistics (measured: song accuracy 0.42 with 0.99, 0.75 with 0.9, see benchmarks/RESULTS.md).
#: With 0.9 the validation loss still lagged on the demo's 5 steps per epoch and picked epoch 1
#: (test song accuracy 33 %); 0.5 follows the weights within an epoch (100 % on the same split).
BATCH_NORM_MOMENTUM = 0.5
#: With ``head="summary"`` (the previous default): feed each band's mean and standard deviation over time
#: to the head beside the pooled features (dev-music 5-fold song accuracy 0.566 ± 0.073 without,
#: 0.678 ± 0.087 with; +16k weights).
BAND_SUMMARY = True
#: How the head turns features into genres (the first is the default):
#: ``"wide"``: two sums of logits, a linear path from the standardised spectral summary
#: (:class:`~genre_cnn.models.layers.SpectralSummary`, set by a logistic regression before training)
#: plus the convolutions' path (initialised to add nothing), so training starts where a classic
#: descriptor classifier ends and the convolutions learn what it misses;
#: ``"summary"``: the pooled features and :class:`~genre_cnn.models.layers.BandSummary` through one dense layer.
HEADS = ("wide", "summary")
HEAD = "wide"
#: Layer names the training recipe reaches for (the wide path's input and its linear layer).
SUMMARY_LAYER = "standardise_summary"
WIDE_LAYER = "wide_logits"


def build_model(
    input_shape: tuple[int, int],
    n_classes: int,
    *,
    mel_mean: Sequence[float],
    mel_variance: Sequence[float],
    block_filters: Sequence[int] = BLOCK_FILTERS,
    band_summary: bool = BAND_SUMMARY,
    head: str = HEAD,
):
    """Build the (uncompiled) Keras model.

    The input is one raw log-mel chunk in dB; a :class:`genre_cnn.models.layers.BandNormalization` layer
    inside the model standardises each mel band with the training set's statistics, so whoever
    calls the model feeds the output of :func:`genre_cnn.signal.logmel.log_mel` unchanged.

    Parameters
    ----------
    input_shape : (n_mels, n_frames)
    n_classes : int
    mel_mean, mel_variance : sequence of float [shape=(n_mels,)]
        Per-band mean and variance of the training chunks.
    block_filters : sequence of int
        Filters of each Conv2D + MaxPooling2D block.
    band_summary : bool
        With ``head="summary"``: also give the head each normalised band's mean and standard deviation.
    head : {"wide", "summary"}
        See :data:`HEADS`. The wide path's standardisation and weights are set by the recipe
        (:func:`set_summary_statistics`, then a logistic regression); as built, they are neutral.

    Returns
    -------
    keras.Model
        Input ``(batch, n_mels, n_frames)``, output ``(batch, n_classes)`` probabilities.
    """
    keras = import_keras()
    from keras import layers

    # lazy: defines Keras layers: importing it imports TensorFlow
    from genre_cnn.models.layers import BandNormalization, BandSummary, SpectralSummary

    if head not in HEADS:
        raise ConfigError(f"head={head!r} must be one of {', '.join(map(repr, HEADS))}", parameter="head")
    n_mels, n_frames = input_shape
    inputs = keras.Input(shape=(n_mels, n_frames), name="log_mel")
    x = layers.Reshape((n_mels, n_frames, 1), name="add_channel")(inputs)
    normalise = BandNormalization(n_mels, name="normalise_bands")
    x = normalise(x)
    normalise.set_statistics(mel_mean, mel_variance)
    normalised = x
    for number, filters in enumerate(block_filters, start=1):
        x = layers.Conv2D(filters, KERNEL_SIZE, padding="same", use_bias=False, name=f"block{number}_conv")(x)
        x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f"block{number}_bn")(x)
        x = layers.ReLU(name=f"block{number}_relu")(x)
        x = layers.MaxPooling2D(2, padding="same", name=f"block{number}_pool")(x)
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    if head == "wide":
        # float32 even under mixed precision: the summary's sums over a chunk's frames overflow float16
        summary = SpectralSummary(name="spectral_summary", dtype="float32")(normalised)
        summary = BandNormalization(summary.shape[-1], name=SUMMARY_LAYER, dtype="float32")(summary)
        wide = layers.Dense(n_classes, name=WIDE_LAYER, dtype="float32")(summary)
        x = layers.Dropout(DROPOUT, name="dropout")(x)
        x = layers.Dense(DENSE_UNITS, activation="relu", name="dense")(x)
        deep = layers.Dense(n_classes, kernel_initializer="zeros", name="deep_logits")(x)
        logits = layers.Add(name="logits", dtype="float32")([wide, deep])
        # float32 output even under mixed precision: a float16 softmax loses small probabilities
        outputs = layers.Activation("softmax", dtype="float32", name="genre")(logits)
        return keras.Model(inputs, outputs, name="genre_cnn")
    if band_summary:
        x = layers.Concatenate(name="head_input")([x, BandSummary(name="band_summary")(normalised)])
    x = layers.Dropout(DROPOUT, name="dropout")(x)
    x = layers.Dense(DENSE_UNITS, activation="relu", name="dense")(x)
    # float32 output even under mixed precision: a float16 softmax loses small probabilities
    outputs = layers.Dense(n_classes, activation="softmax", dtype="float32", name="genre")(x)
    return keras.Model(inputs, outputs, name="genre_cnn")


def summary_network(model):
    """The part of a wide-headed ``model`` that computes the wide path's input from raw log-mel chunks.

    Parameters
    ----------
    model : keras.Model
        Built by :func:`build_model` with ``head="wide"``.

    Returns
    -------
    keras.Model
        Input ``(batch, n_mels, n_frames)``, output the spectral summary before standardisation.
    """
    keras = import_keras()
    return keras.Model(model.input, model.get_layer(SUMMARY_LAYER).input)


def set_summary_statistics(model, mean, variance) -> None:
    """Set the standardisation of the wide path's input.

    Parameters
    ----------
    model : keras.Model
        Built by :func:`build_model` with ``head="wide"``.
    mean, variance : array-like [shape=(n_features,)]
        Of the spectral summaries of the training chunks.
    """
    model.get_layer(SUMMARY_LAYER).set_statistics(mean, variance)
