"""Chunk- and song-level accuracy of predicted probabilities."""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from genre_cnn.inference.prediction import song_probabilities
from genre_cnn.models.calibration import UNCALIBRATED, Calibration

__all__ = ["SongScores", "score_songs", "probabilities_by_song", "evaluate_chunks", "calibration_error",
           "brier_score", "reliability_bins", "reliability_dict", "pooled_reliability", "pooled_calibration_error",
           "chance_calibration_error"]

#: Equal-width confidence bins of the expected calibration error.
ECE_BINS = 10
#: Simulated test sets behind :func:`chance_calibration_error`.
CHANCE_DRAWS = 2000


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
    return _weighted_gap(*reliability_bins(probabilities, labels, bins=bins))


def _weighted_gap(confidence: np.ndarray, accuracy: np.ndarray, count: np.ndarray) -> float:
    """The mean gap between confidence and accuracy, each bin weighted by its songs (empty bins: none)."""
    used = count > 0
    return float(np.sum(count[used] * np.abs(confidence[used] - accuracy[used])) / max(count.sum(), 1))


def brier_score(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean squared distance between the probabilities and the one-hot truth (0 best, 2 worst)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    truth = np.eye(probabilities.shape[1])[np.asarray(labels)]
    return float(np.mean(np.sum((probabilities - truth) ** 2, axis=1)))


@dataclasses.dataclass(frozen=True)
class SongScores:
    """How well a model's verdicts on some songs match their genres: the one scoring of fit, cv, the
    baseline and ``evaluate`` (see :func:`score_songs`).

    Attributes
    ----------
    songs : int
    accuracy : float
        Share of songs whose top genre is their genre.
    macro_f1 : float
        Mean F1 over the genres the model knows.
    chance : float
        Accuracy of always guessing the most common genre among these songs.
    per_class : dict
        ``{genre: {"precision", "recall", "f1", "songs"}}`` for every genre of ``classes``.
    confusion : list of list of int
        Rows: true genre, columns: predicted, in ``classes`` order.
    ece, brier : float or None
        Expected calibration error (10 bins) and Brier score of the songs of genres the model knows.
    ece_uncalibrated, brier_uncalibrated : float or None
        The same from the model's own probabilities, when they were given.
    ece_chance : float or None
        The expected calibration error a perfectly calibrated model would show on as many songs with the
        same confidences (:func:`chance_calibration_error`): ``ece`` near it is all chance can tell.
    reliability : dict
        ``{"calibrated": bins}`` and, with the model's own probabilities, ``"uncalibrated"``
        (:func:`reliability_dict`); empty when no song is of a known genre.
    calibration_songs : int
        How many songs the calibration scores are measured on (those of a genre the model knows).
    """

    songs: int
    accuracy: float
    macro_f1: float
    chance: float
    per_class: dict
    confusion: list
    ece: Optional[float]
    brier: Optional[float]
    ece_uncalibrated: Optional[float]
    brier_uncalibrated: Optional[float]
    reliability: dict
    calibration_songs: int
    ece_chance: Optional[float] = None


def score_songs(labels: Sequence[int], probabilities: np.ndarray, *, classes: Sequence[str],
                uncalibrated: Optional[np.ndarray] = None) -> SongScores:
    """Score one verdict per song against its genre.

    Parameters
    ----------
    labels : sequence of int [shape=(n_songs,)]
        Each song's genre, an index into ``classes`` (at least one song).
    probabilities : np.ndarray [shape=(n_songs, n_known)]
        The probabilities the model gives (calibrated, as ``classify`` reports them), one column per
        genre it knows: the first ``n_known`` of ``classes``. Genres after those (songs of a genre the
        model was not taught, in ``evaluate``) are always wrong and left out of the calibration scores.
    classes : sequence of str
    uncalibrated : np.ndarray, optional
        The model's own probabilities of the same songs, for the calibration scores before the temperature.

    Returns
    -------
    SongScores
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    labels = np.asarray(labels, dtype=int)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    known = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    everything = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=everything,
                                                                     zero_division=0)
    familiar = labels < known
    calibration = {"ece": None, "brier": None, "ece_uncalibrated": None, "brier_uncalibrated": None}
    reliability = {}
    if familiar.any():
        truth = labels[familiar]
        views = (("calibrated", "", probabilities), ("uncalibrated", "_uncalibrated", uncalibrated))
        for which, suffix, values in views:
            if values is not None:
                values = np.asarray(values, dtype=np.float64)[familiar]
                calibration[f"ece{suffix}"] = calibration_error(values, truth)
                calibration[f"brier{suffix}"] = brier_score(values, truth)
                reliability[which] = reliability_dict(values, truth)
    return SongScores(
        songs=len(labels),
        accuracy=float(np.mean(predicted == labels)),
        macro_f1=float(f1_score(labels, predicted, labels=list(range(known)), average="macro", zero_division=0)),
        chance=float(np.bincount(labels).max() / len(labels)),
        per_class={name: {"precision": float(p), "recall": float(r), "f1": float(f), "songs": int(n)}
                   for name, p, r, f, n in zip(classes, precision, recall, f1, support)},
        confusion=confusion_matrix(labels, predicted, labels=everything).tolist(),
        reliability=reliability, calibration_songs=int(familiar.sum()), **calibration,
        ece_chance=chance_calibration_error(reliability["calibrated"]) if reliability else None,
    )


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
        ``brier_uncalibrated``), what chance alone would give a perfectly calibrated model (``ece_chance``:
        :func:`chance_calibration_error`), their ``reliability`` bins (:func:`reliability_bins`: ``confidence``,
        ``accuracy``, ``songs``, None for an empty bin) and one entry per song.
    """
    from sklearn.metrics import confusion_matrix, f1_score

    labels = np.asarray(labels)
    everything = list(range(len(classes)))
    chunk_pred = probabilities.argmax(axis=1)
    names, raw_song_probs = probabilities_by_song(probabilities, songs)
    song_probs = probabilities_by_song(calibration.apply(probabilities), songs)[1]
    song_true = np.array([labels[np.asarray(songs) == name][0] for name in names])
    scores = score_songs(song_true, song_probs, classes=classes, uncalibrated=raw_song_probs)
    return {
        "test_songs": scores.songs,
        "test_chunks": int(len(labels)),
        "chunk_accuracy": float(np.mean(chunk_pred == labels)),
        "song_accuracy": scores.accuracy,
        "chance": scores.chance,
        "chunk_macro_f1": float(f1_score(labels, chunk_pred, labels=everything, average="macro", zero_division=0)),
        "song_macro_f1": scores.macro_f1,
        "per_class": scores.per_class,
        "temperature": float(calibration.temperature),
        "ece": scores.ece,
        "brier": scores.brier,
        "ece_uncalibrated": scores.ece_uncalibrated,
        "brier_uncalibrated": scores.brier_uncalibrated,
        "ece_chance": scores.ece_chance,
        "reliability": scores.reliability,
        "confusion_chunks": confusion_matrix(labels, chunk_pred, labels=everything).tolist(),
        "confusion_songs": scores.confusion,
        "songs": [
            {
                "song": name,
                "genre": classes[true],
                "predicted": classes[pred],
                "probabilities": {c: round(float(p), 6) for c, p in zip(classes, probs)},
            }
            for name, true, pred, probs in zip(names, song_true, song_probs.argmax(axis=1), song_probs)
        ],
    }


def reliability_dict(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """:func:`reliability_bins` as JSON: ``confidence``, ``accuracy`` (None for an empty bin) and ``songs``."""
    confidence, accuracy, count = reliability_bins(probabilities, labels)
    return {"confidence": [None if np.isnan(c) else round(float(c), 6) for c in confidence],
            "accuracy": [None if np.isnan(a) else round(float(a), 6) for a in accuracy],
            "songs": count.tolist()}


def pooled_reliability(bins: Sequence[dict]) -> dict:
    """Several sets of songs' :func:`reliability_dict` bins (e.g. every fold's test songs) as one.

    Parameters
    ----------
    bins : sequence of dict
        :func:`reliability_dict` of each set, all with the same number of bins.

    Returns
    -------
    dict
        The bins of all the songs together, as :func:`reliability_dict` gives them.
    """
    count = np.sum([b["songs"] for b in bins], axis=0).astype(float)
    confidence = np.sum([[0.0 if c is None else c * n for c, n in zip(b["confidence"], b["songs"])] for b in bins],
                        axis=0)
    right = np.sum([[0.0 if a is None else a * n for a, n in zip(b["accuracy"], b["songs"])] for b in bins], axis=0)
    with np.errstate(invalid="ignore"):
        mean_confidence, accuracy = confidence / count, right / count
    return {"confidence": [None if n == 0 else float(c) for c, n in zip(mean_confidence, count)],
            "accuracy": [None if n == 0 else float(a) for a, n in zip(accuracy, count)],
            "songs": count.astype(int).tolist()}


def pooled_calibration_error(bins: Sequence[dict]) -> float:
    """The expected calibration error of several sets of songs together (e.g. every fold's test songs), from
    their :func:`reliability_dict` bins: per-fold errors of a few dozen songs are dominated by chance."""
    return _weighted_gap(*_bin_arrays(pooled_reliability(bins)))


def _bin_arrays(bins: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`reliability_dict` bins as :func:`reliability_bins` gives them (NaN for an empty bin)."""
    confidence = np.array([np.nan if c is None else c for c in bins["confidence"]], dtype=float)
    accuracy = np.array([np.nan if a is None else a for a in bins["accuracy"]], dtype=float)
    return confidence, accuracy, np.asarray(bins["songs"], dtype=int)


def chance_calibration_error(bins: dict, *, draws: int = CHANCE_DRAWS, seed: int = 0) -> Optional[float]:
    """The expected calibration error that chance alone gives a *perfectly* calibrated model on as many songs.

    Even when of the songs given a top probability p exactly a share p are right, a few dozen songs show
    a gap: how many of a bin's songs are right is a binomial draw. This draws it ``draws`` times for each
    bin (its number of songs, each right with the bin's mean confidence: a binomial approximation of
    "consistency resampling", Bröcker and Smith 2007, which needs only the bins) and returns the mean
    error of the draws. A measured error near it cannot be told from perfect calibration. It depends on
    the number of songs and on their confidences: 30 songs at middling confidences show ~0.1, songs at
    0.99 far less.

    Parameters
    ----------
    bins : dict
        :func:`reliability_dict` of the songs (or :func:`pooled_reliability` of several sets).

    Returns
    -------
    float or None
        None without songs.
    """
    confidence, _, count = _bin_arrays(bins)
    if count.sum() == 0:
        return None
    used = count > 0
    right = np.random.default_rng(seed).binomial(count[used], confidence[used], size=(draws, int(used.sum())))
    gaps = np.abs(right - count[used] * confidence[used]).sum(axis=1) / count.sum()
    return float(gaps.mean())
