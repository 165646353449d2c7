"""musicnn (Pons & Serra, 2019), trained on the Million Song Dataset, ported to Keras 3.

The original is a TensorFlow 1 graph shipped in the ``musicnn==0.1.0`` wheel (ISC licence,
© Music Technology Group, Universitat Pompeu Fabra, 2019). ``tools/convert_musicnn.py`` reads its
``MSD_musicnn`` checkpoint and writes the weights shipped in ``genre_cnn/models/backbones/`` (with the
licence notice); this module rebuilds the network around them, layer for layer.

Input: patches of :data:`PATCH_FRAMES` frames of the musicnn front end (:func:`musicnn_patches`),
shape ``(batch, 187, 96)``. Outputs: the 50 MSD tag probabilities, and the 200-d penultimate
layer used as an embedding.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from genre_cnn.errors import ModelError
from genre_cnn.runtime.backend import import_keras
from genre_cnn.signal.audio import load_audio
from genre_cnn.signal.segment import check_usable

__all__ = [
    "SR", "N_FFT", "HOP", "N_MELS", "PATCH_FRAMES", "MSD_TAGS", "WEIGHTS_FILE", "NOTICE_FILE",
    "musicnn_front_end", "musicnn_patches", "song_patches", "build_musicnn", "load_musicnn",
]

#: The front end musicnn was trained with.
SR = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
#: Frames per input patch (about 3 s).
PATCH_FRAMES = 187
#: The 50 tags of the Million Song Dataset model, in output order.
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock",
    "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
    "indie pop", "sad", "House", "happy",
)
BACKBONE_DIR = Path(__file__).with_name("backbones")
WEIGHTS_FILE = BACKBONE_DIR / "musicnn_msd.weights.h5"
NOTICE_FILE = BACKBONE_DIR / "MUSICNN-LICENSE.txt"


def musicnn_front_end(audio: np.ndarray) -> np.ndarray:
    """The musicnn input representation of mono audio at 16 kHz: ``log10(10000 * S + 1)``.

    ``S`` is librosa's power mel spectrogram (n_fft 512, hop 256, 96 Slaney bands, centred
    frames), rounded to float16 as in the original, then cast back to float32 *before* the
    multiplication (under numpy 2, ``10000 * float16`` would overflow to inf).

    Returns
    -------
    np.ndarray [shape=(n_frames, 96), dtype=float32]
    """
    import librosa

    mel = librosa.feature.melspectrogram(y=np.asarray(audio, dtype=np.float32), sr=SR, n_fft=N_FFT,
                                         hop_length=HOP, n_mels=N_MELS)
    mel = mel.T.astype(np.float16).astype(np.float32)
    return np.log10(10000.0 * mel + 1.0)


def musicnn_patches(front_end: np.ndarray) -> np.ndarray:
    """Non-overlapping patches of :data:`PATCH_FRAMES` frames (a shorter input is zero-padded to one).

    Returns
    -------
    np.ndarray [shape=(n_patches, 187, 96), dtype=float32]
    """
    front_end = np.asarray(front_end, dtype=np.float32)
    if len(front_end) < PATCH_FRAMES:
        front_end = np.pad(front_end, ((0, PATCH_FRAMES - len(front_end)), (0, 0)))
    n = len(front_end) // PATCH_FRAMES
    return front_end[: n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, N_MELS)


def song_patches(path) -> np.ndarray:
    """The musicnn input patches of one audio file (decoded whole at 16 kHz, mono).

    Unlike the log-mel stream this holds the whole song in memory (16 kHz float32: 3.8 MB per
    minute); ``timeline`` does not offer musicnn models for that reason.

    Returns
    -------
    np.ndarray [shape=(n_patches, 187, 96), dtype=float32]

    Raises
    ------
    AudioDecodeError
        The file cannot be decoded, or fails :func:`genre_cnn.signal.segment.check_usable` (too short, silent).
    """
    audio = load_audio(path, sr=SR)
    check_usable(path, audio, SR)
    return musicnn_patches(musicnn_front_end(audio))


def build_musicnn(*, name: str = "musicnn"):
    """The musicnn architecture (MSD variant: 64 mid-end filters, 200 back-end units), untrained.

    Returns
    -------
    keras.Model
        ``(batch, 187, 96)`` -> ``{"tags": (batch, 50), "embedding": (batch, 200)}``.
    """
    keras = import_keras()
    from keras import layers

    def batch_norm(label):
        return layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name=label)

    def pool_over_frequency(x, label):
        x = layers.MaxPooling2D(pool_size=(1, x.shape[2]), name=f"{label}_pool")(x)
        return layers.Reshape((PATCH_FRAMES, x.shape[3]), name=f"{label}_squeeze")(x)

    inputs = keras.Input(shape=(PATCH_FRAMES, N_MELS), name="musicnn_input")
    x = layers.Reshape((PATCH_FRAMES, N_MELS, 1), name="add_channel")(inputs)
    x = batch_norm("input_bn")(x)
    padded = layers.ZeroPadding2D(((3, 3), (0, 0)), name="timbral_pad")(x)
    front = []
    for label, width in (("timbral_74", int(0.4 * N_MELS)), ("timbral_77", int(0.7 * N_MELS))):
        y = layers.Conv2D(204, (7, width), padding="valid", activation="relu", name=f"{label}_conv")(padded)
        front.append(pool_over_frequency(batch_norm(f"{label}_bn")(y), label))
    for label, length in (("temporal_128", 128), ("temporal_64", 64), ("temporal_32", 32)):
        y = layers.Conv2D(51, (length, 1), padding="same", activation="relu", name=f"{label}_conv")(x)
        front.append(pool_over_frequency(batch_norm(f"{label}_bn")(y), label))
    front = layers.Concatenate(axis=2, name="front_end")(front)  # (batch, 187, 561)

    features = [layers.Reshape((PATCH_FRAMES, front.shape[2], 1), name="front_end_map")(front)]
    previous = features[0]
    for number in (1, 2, 3):
        y = layers.ZeroPadding2D(((3, 3), (0, 0)), name=f"mid{number}_pad")(previous)
        y = layers.Conv2D(64, (7, previous.shape[2]), padding="valid", activation="relu",
                          name=f"mid{number}_conv")(y)
        y = layers.Permute((1, 3, 2), name=f"mid{number}_transpose")(batch_norm(f"mid{number}_bn")(y))
        if number > 1:  # residual connections after the first mid-end layer
            y = layers.Add(name=f"mid{number}_residual")([y, previous])
        features.append(y)
        previous = y
    mid = layers.Concatenate(axis=2, name="mid_end")(features)  # (batch, 187, 753, 1)
    mid = layers.Reshape((PATCH_FRAMES, mid.shape[2]), name="mid_end_squeeze")(mid)
    pooled = layers.Concatenate(name="temporal_pool")([layers.GlobalMaxPooling1D(name="max_pool")(mid),
                                                       layers.GlobalAveragePooling1D(name="mean_pool")(mid)])
    y = batch_norm("pool_bn")(pooled)
    y = layers.Dropout(0.5, name="pool_dropout")(y)
    y = layers.Dense(200, activation="relu", name="penultimate_dense")(y)
    embedding = batch_norm("penultimate_bn")(y)
    y = layers.Dropout(0.5, name="penultimate_dropout")(embedding)
    tags = layers.Dense(len(MSD_TAGS), activation="sigmoid", name="tags")(y)
    return keras.Model(inputs, {"tags": tags, "embedding": embedding}, name=name)


def load_musicnn(weights: str | os.PathLike = WEIGHTS_FILE):
    """:func:`build_musicnn` with the converted MSD weights shipped in the package.

    Raises
    ------
    ModelError
        The weights file is missing (run ``tools/convert_musicnn.py``).
    """
    weights = Path(weights)
    if not weights.is_file():
        raise ModelError(f"{weights}: the musicnn weights are missing; reinstall genre-cnn or run "
                         "tools/convert_musicnn.py")
    model = build_musicnn()
    model.load_weights(weights)
    return model
