"""Fit a model's temperature on held-out songs, and measure how well its probabilities are calibrated."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from genre_cnn.errors import ModelError
from genre_cnn.models.calibration import FLOOR, UNCALIBRATED, UNSURE_PRECISION, Calibration
from genre_cnn.training.metrics import probabilities_by_song

__all__ = ["fit_temperature", "fit_song_temperature", "confidence_threshold", "TEMPERATURE_RANGE", "PRIOR_STRENGTH",
           "MIN_CALIBRATION_SONGS"]

#: The temperatures searched.
TEMPERATURE_RANGE = (0.05, 20.0)
#: Weight of the prior ``0.5 * log(T)**2`` added to the summed negative log-likelihood: with a handful of
#: validation songs, all right, the likelihood alone would drive ``T`` towards 0 (certainty); the prior
#: keeps it near 1 until enough songs say otherwise (the likelihood grows with the songs, the prior does not).
PRIOR_STRENGTH = 1.0
#: Fewer validation songs than this calibrate nothing: no temperature, no unsure threshold. On the demo's 6
#: validation songs, all right, the temperature came out at 0.48 and made the test songs' calibration worse
#: (ECE 0.156 -> 0.165); on dev-music's 16 a fold it made every fold's test songs together worse on two seeds
#: (0.085 -> 0.152, 0.099 -> 0.135; a stronger pull towards 1 did not cure it); on real-genres' 48 it helps
#: (0.071 -> 0.038, at chance level). One or two right songs would set a threshold at their own confidence.
MIN_CALIBRATION_SONGS = 30


def fit_song_temperature(song_probabilities: np.ndarray, labels: np.ndarray, *, fitted_on: str) -> Calibration:
    """The temperature that makes the songs' probabilities most likely (with a weak prior towards 1).

    Parameters
    ----------
    song_probabilities : np.ndarray [shape=(n_songs, n_classes)]
        Uncalibrated probabilities of songs the model did not learn from.
    labels : np.ndarray [shape=(n_songs,), dtype=int]
        Their true genres.
    fitted_on : str
        What the songs are, for the record ("validation songs").

    Returns
    -------
    Calibration
        Temperature 1 and no threshold (``calibrated`` False) with fewer than :data:`MIN_CALIBRATION_SONGS`
        songs.
    """
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) < MIN_CALIBRATION_SONGS:
        return UNCALIBRATED if len(labels) == 0 else Calibration(
            fitted_on=f"not calibrated: {len(labels)} {fitted_on}, fewer than {MIN_CALIBRATION_SONGS}")
    song_probabilities = np.asarray(song_probabilities, dtype=np.float64)
    if not np.isfinite(song_probabilities).all():
        raise ModelError("the model gives NaN or infinite probabilities on its validation songs: training "
                         "diverged; fit again with a lower learning_rate (--lr) or another seed",
                         parameter="learning_rate")
    logs = np.log(np.clip(song_probabilities, FLOOR, 1.0))

    def objective(log_t: float) -> float:
        scaled = logs / np.exp(log_t)
        scaled -= scaled.max(axis=1, keepdims=True)
        log_softmax = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
        return float(-log_softmax[np.arange(len(labels)), labels].sum() + PRIOR_STRENGTH * 0.5 * log_t**2)

    low, high = np.log(TEMPERATURE_RANGE)
    best = minimize_scalar(objective, bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    temperature = float(np.exp(best.x))
    calibrated = Calibration(temperature=temperature).apply(song_probabilities)
    return Calibration(temperature=temperature, fitted_on=fitted_on, songs=int(len(labels)),
                       min_confidence=confidence_threshold(calibrated, labels))


def confidence_threshold(song_probabilities: np.ndarray, labels: np.ndarray, *,
                         precision: float = UNSURE_PRECISION) -> Optional[float]:
    """The lowest top probability at which the songs at least that sure were right ``precision`` of the time.

    Every distinct top probability ``t`` of the songs is a candidate; the threshold is the lowest one
    whose songs at or above it reach ``precision`` (ties count together). When none does, 1.0:
    every verdict is unsure.

    Parameters
    ----------
    song_probabilities : np.ndarray [shape=(n_songs, n_classes)]
        Calibrated probabilities of songs the model did not learn from.
    labels : np.ndarray [shape=(n_songs,), dtype=int]
    precision : float

    Returns
    -------
    float or None
        None with fewer than :data:`MIN_CALIBRATION_SONGS` songs: too few to choose a threshold on.
    """
    if len(labels) < MIN_CALIBRATION_SONGS:
        return None
    top = song_probabilities.max(axis=1)
    right = song_probabilities.argmax(axis=1) == np.asarray(labels)
    candidates = np.unique(top)[::-1]  # distinct values, surest first
    reaching = [t for t in candidates if right[top >= t].mean() >= precision]
    return float(reaching[-1]) if reaching else 1.0


def fit_temperature(chunk_probabilities: np.ndarray, *, labels: np.ndarray, songs: Sequence[str],
                    fitted_on: str = "validation songs") -> Calibration:
    """The temperature of a network from its chunk probabilities on held-out songs.

    The chunks are combined per song first, as ``classify`` combines them, so the temperature is the
    one that calibrates what users see: song probabilities.

    Parameters
    ----------
    chunk_probabilities : np.ndarray [shape=(n_chunks, n_classes)]
    labels : np.ndarray [shape=(n_chunks,), dtype=int]
    songs : sequence of str [shape=(n_chunks,)]
    fitted_on : str

    Returns
    -------
    Calibration
    """
    if len(chunk_probabilities) == 0:
        return UNCALIBRATED
    names, song_probs = probabilities_by_song(np.asarray(chunk_probabilities), songs)
    songs = np.asarray(songs)
    labels = np.asarray(labels)
    song_labels = np.array([labels[songs == name][0] for name in names])
    return fit_song_temperature(song_probs, song_labels, fitted_on=fitted_on)
