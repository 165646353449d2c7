"""One way to score songs: fit, cv, the baseline and evaluate all report what score_songs measures."""

import numpy as np
import pytest

from genre_cnn.training.metrics import calibration_error, score_songs


def test_a_song_is_right_when_its_top_genre_is_its_genre():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
    scores = score_songs([0, 1, 1, 2], probabilities, classes=["jazz", "pop", "rock"])
    assert scores.songs == 4 and scores.accuracy == 0.75 and scores.chance == 0.5
    assert scores.confusion == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert scores.per_class["pop"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "songs": 2}
    assert scores.macro_f1 == pytest.approx(np.mean([2 / 3, 2 / 3, 1.0]))
    assert scores.ece == pytest.approx(calibration_error(probabilities, np.array([0, 1, 1, 2])))
    assert scores.ece_uncalibrated is None and set(scores.reliability) == {"calibrated"}


def test_songs_of_a_genre_the_model_does_not_know_are_wrong_and_left_out_of_calibration():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    raw = np.array([[0.99, 0.01], [0.1, 0.9], [0.7, 0.3]])
    scores = score_songs([0, 1, 2], probabilities, classes=["jazz", "pop", "polka"], uncalibrated=raw)
    assert scores.accuracy == pytest.approx(2 / 3)
    assert scores.confusion[2] == [1, 0, 0]  # the polka song, called jazz
    assert scores.calibration_songs == 2
    assert scores.ece == pytest.approx(calibration_error(probabilities[:2], np.array([0, 1])))
    assert scores.ece_uncalibrated == pytest.approx(calibration_error(raw[:2], np.array([0, 1])))
    assert scores.macro_f1 == pytest.approx(np.mean([2 / 3, 1.0]))  # over the genres the model knows
