"""Knowledge distillation: a musicnn teacher labels the training chunks with soft genre probabilities.

The teacher is the musicnn backbone (frozen) with a small head trained on the cached embeddings of
the **training songs only** (Hinton et al., 2015, "Distilling the knowledge in a neural network").
Its temperature-softened probabilities of each training chunk say how much a chunk sounds like
every genre; the small CNN learns from them and from the true genre. Validation and test songs
never reach the teacher's training, and the teacher is not part of the saved model.
"""

from __future__ import annotations

import numpy as np

from .config import TrainConfig
from .dataset import Dataset

__all__ = ["TEACHERS", "TEACHER_EPOCHS", "teacher_targets", "tempered", "chunk_teacher_probabilities"]

TEACHERS = ("musicnn",)
#: Epochs of the teacher's head on the cached embeddings (seconds of work).
TEACHER_EPOCHS = 30
#: Floor of probabilities before taking logarithms.
EPSILON = 1e-7


def tempered(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Soften probabilities: ``softmax(log(p) / T)`` per row, the same as ``softmax(logits / T)``.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n, n_classes)]
    temperature : float
        1 keeps them; above 1 flattens them.
    """
    logits = np.log(np.clip(probabilities, EPSILON, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    soft = np.exp(logits)
    return soft / soft.sum(axis=1, keepdims=True)


def chunk_teacher_probabilities(
    chunk_songs: np.ndarray, chunk_starts: np.ndarray, chunk_seconds: float,
    patch_songs: np.ndarray, patch_starts: np.ndarray, patch_seconds: float, patch_probabilities: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each chunk's teacher probabilities: the mean of the patches it overlaps, weighted by overlap.

    Returns
    -------
    probabilities : np.ndarray [shape=(n_chunks, n_classes)]
    covered : np.ndarray [shape=(n_chunks,), dtype=bool]
        False where no patch of the chunk's song overlaps it (the song could not be read at the
        teacher's rate); those rows are zero.
    """
    probabilities = np.zeros((len(chunk_songs), patch_probabilities.shape[1]))
    covered = np.zeros(len(chunk_songs), dtype=bool)
    by_song: dict[str, np.ndarray] = {}
    for index, song in enumerate(patch_songs):
        by_song.setdefault(song, []).append(index)
    for row, (song, start) in enumerate(zip(chunk_songs, chunk_starts)):
        patches = np.asarray(by_song.get(song, []), dtype=np.int64)
        if not len(patches):
            continue
        lo, hi = patch_starts[patches], patch_starts[patches] + patch_seconds
        overlap = np.clip(np.minimum(hi, start + chunk_seconds) - np.maximum(lo, start), 0.0, None)
        if overlap.sum() <= 0:
            overlap = (np.abs(lo - start) == np.abs(lo - start).min()).astype(float)  # past the last patch
        probabilities[row] = overlap @ patch_probabilities[patches] / overlap.sum()
        covered[row] = True
    return probabilities, covered


def teacher_targets(dataset: Dataset, train_rows: np.ndarray, config: TrainConfig, *, log=print) -> np.ndarray:
    """Soft targets of every chunk of ``dataset`` from a musicnn teacher trained on ``train_rows``' songs.

    Only the songs of ``train_rows`` train the teacher's head; the result's rows of other chunks
    are their one-hot labels (they are never used as targets).

    Parameters
    ----------
    dataset : Dataset
        The chunk dataset the student trains on.
    train_rows : np.ndarray of int
        The student's training chunks.
    config : TrainConfig
        ``temperature`` softens the teacher; ``seed`` seeds its head.

    Returns
    -------
    np.ndarray [shape=(n_chunks, n_classes), dtype=float32]
        Tempered teacher probabilities; one-hot rows where the teacher has no patch.
    """
    from .backend import import_keras
    from .musicnn import HOP, PATCH_FRAMES, SR
    from .transfer import embeddings_of, patch_dataset

    keras = import_keras()
    from keras import layers

    patches = patch_dataset(dataset, log=log)
    embeddings = embeddings_of(patches)
    train_songs = set(dataset.songs[train_rows].tolist())
    teach = np.flatnonzero(np.isin(patches.songs, list(train_songs)))
    assert set(patches.songs[teach].tolist()) <= train_songs, "only training songs teach"
    n_classes = len(dataset.classes)
    keras.utils.set_random_seed(config.seed)
    head = keras.Sequential([
        keras.Input(shape=(embeddings.shape[1],)),
        layers.Dropout(0.3),
        layers.Dense(64, activation="relu"),
        layers.Dense(n_classes, activation="softmax"),
    ], name="teacher_head")
    head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    head.fit(embeddings[teach], patches.labels[teach], batch_size=32, epochs=TEACHER_EPOCHS, verbose=0, shuffle=True)
    patch_probabilities = tempered(head.predict(embeddings[teach], batch_size=256, verbose=0), config.temperature)
    soft, covered = chunk_teacher_probabilities(
        dataset.songs[train_rows], dataset.offsets[train_rows], dataset.feature_config.chunk_seconds,
        patches.songs[teach], patches.offsets[teach], PATCH_FRAMES * HOP / SR, patch_probabilities,
    )
    targets = np.eye(n_classes, dtype=np.float32)[dataset.labels]
    targets[train_rows[covered]] = soft[covered]
    return targets
