"""Knowledge distillation: a musicnn teacher labels the training chunks with soft genre probabilities.

The teacher is the musicnn backbone (frozen) with a small head trained on the cached embeddings of
the **training songs only**, cross-fitted: each training song is labelled by a head that never saw
it (Hinton et al., 2015, "Distilling the knowledge in a neural network"). Its temperature-softened
probabilities of each training chunk say how much a chunk sounds like every genre; the small CNN
learns from them and from the true genre. Validation and test songs never reach the teacher's
training, and the teacher is not part of the saved model.
"""

from __future__ import annotations

import numpy as np

from genre_cnn.data.dataset import Dataset
from genre_cnn.models.musicnn import HOP, PATCH_FRAMES, SR
from genre_cnn.runtime.backend import import_keras
from genre_cnn.training.transfer import embeddings_of, patch_dataset

__all__ = ["TEACHERS", "TEACHER_EPOCHS", "teacher_targets", "tempered", "chunk_teacher_probabilities",
           "cross_fitted_probabilities",
           "distillation_loss", "true_label_accuracy"]

TEACHERS = ("musicnn",)
#: Epochs of the teacher's head on the cached embeddings (seconds of work).
TEACHER_EPOCHS = 30
#: Parts of the training songs for cross-fitting the teacher (each part labelled by a head trained on the rest).
TEACHER_FOLDS = 4
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


def cross_fitted_probabilities(embeddings: np.ndarray, labels: np.ndarray, songs: np.ndarray, *, n_classes: int,
                               seed: int, train_head) -> np.ndarray:
    """Each patch's probabilities from a teacher head that never trained on the patch's song.

    The songs are dealt into :data:`TEACHER_FOLDS` parts; the patches of each part are labelled
    by a head trained on the other parts. The soft targets then carry the teacher's real doubts
    instead of its near one-hot answers on songs it memorised.

    Parameters
    ----------
    embeddings : np.ndarray [shape=(n_patches, d)]
    labels : np.ndarray [shape=(n_patches,), dtype=int]
    songs : np.ndarray [shape=(n_patches,), dtype=str]
    n_classes, seed : int
    train_head : callable
        ``train_head(x, y, seed)`` fits a head and returns a function from embeddings to probabilities.

    Returns
    -------
    np.ndarray [shape=(n_patches, n_classes)]
    """
    names = np.array(sorted(set(songs.tolist())))
    part_of_song = dict(zip(names, np.random.default_rng(seed).permutation(len(names)) % TEACHER_FOLDS))
    part = np.array([part_of_song[song] for song in songs])
    probabilities = np.zeros((len(songs), n_classes))
    for held_out in sorted(set(part.tolist())):
        learn, label = part != held_out, part == held_out
        if not learn.any():  # a single song: nothing else to learn from, the head labels it in-sample
            learn = label
        predict = train_head(embeddings[learn], labels[learn], seed + held_out)
        probabilities[label] = predict(embeddings[label])
    return probabilities


def teacher_targets(dataset: Dataset, train_rows: np.ndarray, *, temperature: float, seed: int,
                    log=print) -> np.ndarray:
    """Soft targets of every chunk of ``dataset`` from a musicnn teacher trained on ``train_rows``' songs.

    Only the songs of ``train_rows`` train the teacher's head; the result's rows of other chunks
    are their one-hot labels (they are never used as targets).

    Parameters
    ----------
    dataset : Dataset
        The chunk dataset the student trains on.
    train_rows : np.ndarray of int
        The student's training chunks.
    temperature : float
        Softens the teacher's probabilities.
    seed : int
        Seeds its head.

    Returns
    -------
    np.ndarray [shape=(n_chunks, n_classes), dtype=float32]
        Tempered teacher probabilities; one-hot rows where the teacher has no patch.
    """
    keras = import_keras()
    from keras import layers

    patches = patch_dataset(dataset, log=log)
    embeddings = embeddings_of(patches)
    train_songs = set(dataset.songs[train_rows].tolist())
    teach = np.flatnonzero(np.isin(patches.songs, list(train_songs)))
    assert set(patches.songs[teach].tolist()) <= train_songs, "only training songs teach"
    n_classes = len(dataset.classes)

    def train_head(x, y, seed):
        keras.utils.set_random_seed(seed)
        head = keras.Sequential([
            keras.Input(shape=(embeddings.shape[1],)),
            layers.Dropout(0.3),
            layers.Dense(64, activation="relu"),
            layers.Dense(n_classes, activation="softmax"),
        ], name="teacher_head")
        head.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        head.fit(x, y, batch_size=32, epochs=TEACHER_EPOCHS, verbose=0)
        return lambda rows: head.predict(rows, batch_size=256, verbose=0)

    patch_probabilities = tempered(
        cross_fitted_probabilities(embeddings[teach], patches.labels[teach], patches.songs[teach],
                                   n_classes=n_classes, seed=seed, train_head=train_head),
        temperature)
    soft, covered = chunk_teacher_probabilities(
        dataset.songs[train_rows], dataset.offsets[train_rows], dataset.feature_config.chunk_seconds,
        patches.songs[teach], patches.offsets[teach], PATCH_FRAMES * HOP / SR, patch_probabilities,
    )
    targets = np.eye(n_classes, dtype=np.float32)[dataset.labels]
    targets[train_rows[covered]] = soft[covered]
    return targets


def distillation_loss(n_classes: int, *, temperature: float, weight: float):
    """The Keras loss of a student whose targets are ``[one-hot | teacher probabilities]`` rows.

    ``w * CE(label, p) + (1 - w) * T**2 * KL(teacher || softmax(log(p) / T))`` with ``w = weight`` (the
    CNN's ``distill_weight`` option) and ``T = temperature``; ``log(p) / T`` softens the student
    exactly like ``logits / T`` (the two differ by a constant per row). The ``T**2`` keeps the
    soft term's gradients on the scale of the hard one (Hinton et al.).
    """
    ops = import_keras().ops
    weight, temperature = float(weight), float(temperature)

    def distillation(y_true, y_pred):
        hard, soft = y_true[:, :n_classes], y_true[:, n_classes:]
        log_p = ops.log(ops.clip(ops.cast(y_pred, "float32"), EPSILON, 1.0))
        cross_entropy = -ops.sum(hard * log_p, axis=-1)
        student = ops.log_softmax(log_p / temperature, axis=-1)
        divergence = ops.sum(soft * (ops.log(ops.clip(soft, EPSILON, 1.0)) - student), axis=-1)
        return weight * cross_entropy + (1.0 - weight) * temperature**2 * divergence

    return distillation


def true_label_accuracy(n_classes: int):
    """Accuracy against the one-hot half of ``[one-hot | teacher]`` targets, logged as ``accuracy``."""
    ops = import_keras().ops

    def accuracy(y_true, y_pred):
        return ops.cast(ops.equal(ops.argmax(y_true[:, :n_classes], axis=-1), ops.argmax(y_pred, axis=-1)), "float32")

    return accuracy
