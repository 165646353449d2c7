"""Chunk- and song-level accuracy of predicted probabilities."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from genre_cnn.inference.prediction import song_probabilities
from genre_cnn.models.calibration import UNCALIBRATED, Calibration

__all__ = ["probabilities_by_song", "evaluate_chunks", "calibration_error", "brier_score", "reliability_bins",
           "reliability_dict", "pooled_calibration_error"]

#: Equal-width confidence bins of the expected calibration error.
ECE_BINS = 10


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


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = ECE_BINS):
    """Songs grouped by their top probability into ``bins`` equal-width bins of [0, 1].

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n, n_classes)]
    labels : np.ndarray [shape=(n,), dtype=int]

    Returns
    -------
    confidence, accuracy : np.ndarray [shape=(bins,)]
        Mean top probability and share right in each bin (NaN for an empty bin).
    count : np.ndarray [shape=(bins,), dtype=int]
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    top = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == np.asarray(labels)
    which = np.minimum((top * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        confidence = np.bincount(which, weights=top, minlength=bins) / count
        accuracy = np.bincount(which, weights=right.astype(float), minlength=bins) / count
    return confidence, accuracy, count


def calibration_error(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the gap between confidence and accuracy, averaged over ``bins``
    equal-width bins of the top probability, weighted by their share of songs (Naeini et al. 2015).

    0 means that of the songs said to be genre X with probability p, a share p really are.
    """
    confidence, accuracy, count = reliability_bins(probabilities, labels, bins=bins)
    used = count > 0
    return float(np.sum(count[used] * np.abs(confidence[used] - accuracy[used])) / max(count.sum(), 1))


def brier_score(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared distance between the probabilities and the one-hot truth (0 best, 2 worst)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    truth = np.eye(probabilities.shape[1])[np.asarray(labels)]
    return float(np.mean(np.sum((probabilities - truth) ** 2, axis=1)))


def evaluate_chunks(
    probabilities: np.ndarray,
    *,
    labels: np.ndarray,
    songs: Sequence[str],
    classes: Sequence[str],
    calibration: Calibration = UNCALIBRATED,
) -> dict:
    """Accuracy, calibration and confusion matrices per chunk and per song (see :func:`probabilities_by_song`).

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_chunks, n_classes)]
        The network's (uncalibrated) chunk probabilities.
    calibration : Calibration
        The model's temperature: the songs' probabilities are reported as ``classify`` gives them.

    Returns
    -------
    dict
        JSON-ready: ``test_songs``, ``test_chunks``, ``chunk_accuracy``, ``song_accuracy``,
        ``chance`` (accuracy of always guessing the most common test genre), ``chunk_macro_f1``,
        ``song_macro_f1``, ``per_class`` song-level precision/recall/F1, both confusion matrices
        (rows true, columns predicted, in ``classes`` order), the songs' expected calibration error
        and Brier score with and without the temperature (``ece``, ``brier``, ``ece_uncalibrated``,
        ``brier_uncalibrated``), their ``reliability`` bins (:func:`reliability_bins`: ``confidence``,
        ``accuracy``, ``songs``, None for an empty bin) and one entry per song.
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = np.asarray(labels)
    everything = list(range(len(classes)))
    chunk_pred = probabilities.argmax(axis=1)
    names, raw_song_probs = probabilities_by_song(probabilities, songs)
    song_probs = probabilities_by_song(calibration.apply(probabilities), songs)[1]
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
        "temperature": float(calibration.temperature),
        "ece": calibration_error(song_probs, song_true),
        "brier": brier_score(song_probs, song_true),
        "ece_uncalibrated": calibration_error(raw_song_probs, song_true),
        "brier_uncalibrated": brier_score(raw_song_probs, song_true),
        "reliability": {"calibrated": reliability_dict(song_probs, song_true),
                        "uncalibrated": reliability_dict(raw_song_probs, song_true)},
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


def reliability_dict(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """:func:`reliability_bins` as JSON: ``confidence``, ``accuracy`` (None for an empty bin) and ``songs``."""
    confidence, accuracy, count = reliability_bins(probabilities, labels)
    return {"confidence": [None if np.isnan(c) else round(float(c), 6) for c in confidence],
            "accuracy": [None if np.isnan(a) else round(float(a), 6) for a in accuracy],
            "songs": count.tolist()}


def pooled_calibration_error(bins: Sequence[dict]) -> float:
    """The expected calibration error of several sets of songs together (e.g. every fold's test songs), from
    their :func:`reliability_dict` bins: per-fold errors of a few dozen songs are dominated by chance."""
    count = np.sum([b["songs"] for b in bins], axis=0).astype(float)
    confidence = np.sum([[0.0 if c is None else c * n for c, n in zip(b["confidence"], b["songs"])] for b in bins], axis=0)
    right = np.sum([[0.0 if a is None else a * n for a, n in zip(b["accuracy"], b["songs"])] for b in bins], axis=0)
    return float(np.sum(np.abs(confidence - right)) / max(count.sum(), 1.0))
