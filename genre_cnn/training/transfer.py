"""Transfer learning from the pretrained musicnn backbone: patches, cached embeddings, a head on top.

A dataset made by ``build-dataset`` knows its songs and their splits; the backbone needs its own
input (the musicnn front end at 16 kHz, in 3 s patches), so that is computed from the songs'
audio once and cached in ``<dataset>/musicnn/`` together with the frozen backbone's embeddings.
Each patch then plays the part a chunk plays for the CNN trained from scratch: the same splits,
metrics (per patch and per song), plots, cross-validation, classify and export.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np

from genre_cnn.config import TrainConfig, read_json, write_json
from genre_cnn.data.arrays import NpyAppender
from genre_cnn.data.dataset import Dataset, read_summary
from genre_cnn.data.store import DatasetDir
from genre_cnn.errors import AudioDecodeError, DatasetError
from genre_cnn.kinds import options_of
from genre_cnn.models.musicnn import HOP, N_MELS, PATCH_FRAMES, SR, load_musicnn, song_patches
from genre_cnn.runtime.backend import import_keras
from genre_cnn.runtime.csvfiles import read_csv, write_csv
from genre_cnn.runtime.files import FolderKind, atomic_directory, exclusive_lock
from genre_cnn.training.weights import class_weights

__all__ = ["BACKBONES", "patch_dataset", "train_transfer", "CACHE_DIR"]

BACKBONES = ("musicnn",)
CACHE_DIR = DatasetDir.BACKBONE_CACHE
#: The per-dataset cache of musicnn patches and embeddings.
PATCH_CACHE = FolderKind("musicnn cache", ("patches.npy",))
#: Layers updated by fine-tuning: the mid-end convolutions and the back-end dense layer (batch
#: normalisation statistics stay frozen, as usual when fine-tuning on small datasets).
FINE_TUNED_LAYERS = ("mid1_conv", "mid2_conv", "mid3_conv", "penultimate_dense")
#: Fine-tuning uses the learning rate divided by this.
FINE_TUNE_LR_DIVISOR = 10.0


def patch_dataset(dataset: Dataset, *, log: Callable[[str], None] = print) -> Dataset:
    """The dataset's songs as musicnn patches (one row per patch), computed once and cached.

    The cache ``<dataset>/musicnn/`` holds ``patches.npy``, ``embeddings.npy`` (the frozen
    backbone's 200-d output per patch) and ``patches.csv``; it is rebuilt when the dataset's
    fingerprint changes.

    Returns
    -------
    Dataset
        ``features`` are the patches ``(n_patches, 187, 96)``; labels, songs, splits, groups and
        folds are those of each patch's song; ``offsets`` are patch starts in seconds.

    Raises
    ------
    DatasetError
        The songs' audio files are gone (the backbone needs them), or none could be read.
    """
    cache = dataset.path / CACHE_DIR
    source = cache / "source.json"
    fresh = source.is_file() and read_json(source, what="the backbone cache", error=DatasetError).get(
        "fingerprint") == dataset.fingerprint
    if not fresh:
        _build_cache(dataset, cache, log=log)
    rows = read_csv(cache / "patches.csv")[1]
    features = np.load(cache / "patches.npy", mmap_mode="r")
    index = {name: i for i, name in enumerate(dataset.classes)}
    return dataclasses.replace(
        dataset,
        features=features,
        labels=np.array([index[r["label"]] for r in rows], dtype=np.int64),
        songs=np.array([r["song"] for r in rows], dtype=str),
        splits=np.array([r["split"] for r in rows], dtype=str),
        offsets=np.array([float(r["offset_seconds"]) for r in rows]),
        groups=np.array([r["group"] for r in rows], dtype=str),
        folds=np.array([r["fold"] for r in rows], dtype=str),
    )


def embeddings_of(dataset: Dataset) -> np.ndarray:
    """The cached frozen-backbone embeddings of a :func:`patch_dataset` (``(n_patches, 200)``)."""
    return np.load(dataset.path / CACHE_DIR / "embeddings.npy")


def _build_cache(dataset: Dataset, cache: Path, *, log) -> None:
    root = Path(read_summary(dataset.path).tracks_dir)
    songs, first = dataset.song_rows()
    missing = [s for s in songs if not (root / s).exists()]
    if missing:
        raise DatasetError(
            f"{dataset.path}: the musicnn backbone computes its own input from the songs' audio, but "
            f"{len(missing)} of them are gone from {root} (e.g. {missing[0]}); restore them or rebuild the dataset"
        )
    log(f"Computing the musicnn input of {len(songs)} songs (once; cached in {cache})")
    trunk = load_musicnn()
    patch_seconds = PATCH_FRAMES * HOP / SR
    skipped = []
    with exclusive_lock(cache, command="genre-cnn fit --backbone musicnn"), \
            atomic_directory(cache, kind=PATCH_CACHE) as tmp:
        rows = []
        embeddings = []
        with NpyAppender(tmp / "patches.npy", row_shape=(PATCH_FRAMES, N_MELS)) as out:
            for song, row in zip(songs, first):
                try:
                    patches = song_patches(root / song)
                except AudioDecodeError as exc:
                    skipped.append(str(exc))
                    continue
                out.append(patches)
                embeddings.append(trunk.predict(patches, batch_size=32, verbose=0)["embedding"])
                rows += [[song, dataset.classes[dataset.labels[row]], dataset.splits[row], dataset.groups[row],
                          dataset.folds[row], f"{i * patch_seconds:.3f}"] for i in range(len(patches))]
        if not rows:
            raise DatasetError(f"{dataset.path}: none of the songs could be read for musicnn ({skipped[0]})")
        write_csv(tmp / "patches.csv", ["song", "label", "split", "group", "fold", "offset_seconds"], rows)
        np.save(tmp / "embeddings.npy", np.concatenate(embeddings).astype(np.float32))
        write_json(tmp / "source.json", {"fingerprint": dataset.fingerprint, "songs": len(songs) - len(skipped),
                                         "patches": len(rows), "skipped": skipped})
    for message in skipped:
        log(f"Skipped for musicnn: {message}")


def train_transfer(dataset: Dataset, *, train_rows, val_rows, config: TrainConfig, callbacks, verbose: int,
                   checkpoint=None):
    """Train a genre head on the musicnn backbone (frozen: on cached embeddings; or fine-tuned).

    Returns
    -------
    model : keras.Model
        Patches ``(batch, 187, 96)`` -> genre probabilities: backbone and head in one network.
    trainee : keras.Model
        The part that was fitted (the head alone when frozen), whose weights ``callbacks`` tracked.
    history : dict
    """
    # lazy: a Keras PyDataset: importing it imports TensorFlow
    from genre_cnn.training.batches import ChunkBatches

    keras = import_keras()
    from keras import layers


    n_classes = len(dataset.classes)
    backbone = load_musicnn()
    trunk = keras.Model(backbone.input, backbone.get_layer("penultimate_bn").output, name="musicnn")
    head = keras.Sequential([
        keras.Input(shape=(trunk.output_shape[-1],), name="embedding"),
        layers.Dropout(0.3, name="head_dropout"),
        layers.Dense(64, activation="relu", name="head_dense"),
        layers.Dense(n_classes, activation="softmax", dtype="float32", name="genre"),
    ], name="genre_head")
    inputs = keras.Input(shape=trunk.input_shape[1:], name="musicnn_input")
    model = keras.Model(inputs, head(trunk(inputs)), name="genre_musicnn")
    if checkpoint is not None:
        # lazy: Keras callbacks: importing it imports TensorFlow
        from genre_cnn.training.callbacks import BestCheckpoint

        callbacks = [*callbacks, BestCheckpoint(checkpoint, model=model, monitor=callbacks[0].monitor,
                                                  keep=callbacks[0].keep)]
    optimizers = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}
    class_weight = None
    if config.class_weight == "balanced":
        class_weight = dict(enumerate(class_weights(dataset.labels[train_rows], n_classes).tolist()))
    if not options_of(config).fine_tune:  # the backbone never changes: train the head on the cached embeddings
        embeddings = embeddings_of(dataset)
        head.compile(optimizer=optimizers[config.optimizer](learning_rate=config.learning_rate),
                     loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        batches = dict(features=embeddings, labels=dataset.labels, batch_size=config.batch_size, prefetch=1)
        history = head.fit(
            ChunkBatches(rows=train_rows, shuffle=True, seed=config.seed, **batches),
            validation_data=ChunkBatches(rows=val_rows, **batches) if len(val_rows) else None,
            epochs=config.epochs, callbacks=callbacks, verbose=verbose, class_weight=class_weight,
        )
        return model, head, history.history
    for layer in backbone.layers:
        layer.trainable = layer.name in FINE_TUNED_LAYERS
    model.compile(optimizer=optimizers[config.optimizer](learning_rate=config.learning_rate / FINE_TUNE_LR_DIVISOR),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    batches = dict(features=dataset.features, labels=dataset.labels, batch_size=config.batch_size)
    history = model.fit(
        ChunkBatches(rows=train_rows, shuffle=True, seed=config.seed, **batches),
        validation_data=ChunkBatches(rows=val_rows, **batches) if len(val_rows) else None,
        epochs=config.epochs, callbacks=callbacks, verbose=verbose, class_weight=class_weight,
    )
    return model, model, history.history
