"""Chunk- and song-level accuracy of predicted probabilities."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from genre_cnn.inference.prediction import song_probabilities

__all__ = ["probabilities_by_song", "evaluate_chunks"]


def probabilities_by_song(probabilities: np.ndarray, songs: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Each song's probabilities from its chunks' (their normalised geometric mean, as ``classify`` makes them).

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_chunks, n_classes)]
    songs : sequence of str [shape=(n_chunks,)]
        Song of each chunk.

    Returns
    -------
    names : list of str
        Songs in order of first appearance.
    song_probs : np.ndarray [shape=(n_songs, n_classes)]
    """
    songs = np.asarray(songs)
    names = list(dict.fromkeys(songs.tolist()))
    song_probs = np.stack([song_probabilities(probabilities[songs == name]) for name in names])
    return names, song_probs


def evaluate_chunks(
    probabilities: np.ndarray,
    *,
    labels: np.ndarray,
    songs: Sequence[str],
    classes: Sequence[str],
) -> dict:
    """Accuracy and confusion matrices per chunk and per song (see :func:`probabilities_by_song`).

    Returns
    -------
    dict
        JSON-ready: ``test_songs``, ``test_chunks``, ``chunk_accuracy``, ``song_accuracy``,
        ``chance`` (accuracy of always guessing the most common test genre), ``chunk_macro_f1``,
        ``song_macro_f1``, ``per_class`` song-level precision/recall/F1, both confusion matrices
        (rows true, columns predicted, in ``classes`` order) and one entry per song.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = np.asarray(labels)
    everything = list(range(len(classes)))
    chunk_pred = probabilities.argmax(axis=1)
    names, song_probs = probabilities_by_song(probabilities, songs)
    song_true = np.array([labels[np.asarray(songs) == name][0] for name in names])
    song_pred = song_probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        song_true, song_pred, labels=everything, zero_division=0)
    return {
        "test_songs": len(names),
        "test_chunks": int(len(labels)),
        "chunk_accuracy": float(accuracy_score(labels, chunk_pred)),
        "song_accuracy": float(accuracy_score(song_true, song_pred)),
        "chance": float(np.bincount(song_true).max() / len(song_true)),
        "chunk_macro_f1": float(f1_score(labels, chunk_pred, labels=everything, average="macro", zero_division=0)),
        "song_macro_f1": float(f1_score(song_true, song_pred, labels=everything, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "songs": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support)
        },
        "confusion_chunks": confusion_matrix(labels, chunk_pred, labels=everything).tolist(),
        "confusion_songs": confusion_matrix(song_true, song_pred, labels=everything).tolist(),
        "songs": [
            {
                "song": name,
                "genre": classes[true],
                "predicted": classes[pred],
                "probabilities": {c: round(float(p), 6) for c, p in zip(classes, probs)},
            }
            for name, true, pred, probs in zip(names, song_true, song_pred, song_probs)
        ],
    }
