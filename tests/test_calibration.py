"""Calibrated probabilities: one temperature per model, fitted on songs it did not learn from, applied by
every consumer (classify, timelines, evaluate, serve, tag; exports: tests/test_export.py), measured (ECE,
Brier) before and after; the unsure threshold chosen on the same songs."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from genre_cnn.analysis.evaluate import evaluate_model
from genre_cnn.cli import main
from genre_cnn.errors import ConfigError, GenreCnnWarning, ModelError
from genre_cnn.inference.classifier import classify, load_classifier
from genre_cnn.inference.prediction import song_probabilities
from genre_cnn.models.calibration import UNCALIBRATED, Calibration
from genre_cnn.models.store import ModelDir
from genre_cnn.training.calibration import (
    MIN_CALIBRATION_SONGS,
    confidence_threshold,
    fit_song_temperature,
    fit_temperature,
)
from genre_cnn.training.metrics import (
    brier_score,
    calibration_error,
    chance_calibration_error,
    pooled_reliability,
    reliability_bins,
    reliability_dict,
)


def softmax(logits):
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def songs_with_known_confidence(rng, n=600, n_classes=4, sharpen=3.0):
    """Labels drawn from softmax(logits) (so those probabilities are calibrated), and the same logits
    sharpened ``sharpen`` times: an over-confident model whose right temperature is ``sharpen``."""
    logits = rng.normal(scale=1.5, size=(n, n_classes))
    truth = softmax(logits)
    labels = np.array([rng.choice(n_classes, p=p) for p in truth])
    return truth, softmax(sharpen * logits), labels


# --- the temperature ---------------------------------------------------------------------------------

def test_temperature_one_leaves_probabilities_as_they_are():
    p = np.array([[0.7, 0.2, 0.1]], dtype=np.float32)
    assert UNCALIBRATED.apply(p) is p or np.array_equal(UNCALIBRATED.apply(p), p)


def test_a_temperature_softens_or_sharpens_but_never_reorders():
    p = np.array([[0.7, 0.2, 0.1], [0.05, 0.15, 0.8]])
    soft, sharp = Calibration(temperature=2.0).apply(p), Calibration(temperature=0.5).apply(p)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0)
    assert (soft.argmax(axis=1) == p.argmax(axis=1)).all() and (sharp.argmax(axis=1) == p.argmax(axis=1)).all()
    assert (soft.max(axis=1) < p.max(axis=1)).all() and (sharp.max(axis=1) > p.max(axis=1)).all()
    np.testing.assert_allclose(soft[0], softmax(np.log(p[0]) / 2))


def test_calibrating_chunks_then_combining_them_gives_the_calibrated_song():
    chunks = softmax(np.random.default_rng(1).normal(scale=2, size=(7, 5)))
    calibration = Calibration(temperature=2.5)
    np.testing.assert_allclose(song_probabilities(calibration.apply(chunks)),
                               calibration.apply(song_probabilities(chunks)), atol=1e-9)


def test_fitting_recovers_the_temperature_of_an_over_confident_model():
    truth, over_confident, labels = songs_with_known_confidence(np.random.default_rng(0))
    calibration = fit_song_temperature(over_confident, labels, fitted_on="validation songs")
    assert calibration.temperature == pytest.approx(3.0, rel=0.2)
    assert calibration.calibrated and calibration.songs == 600
    assert calibration_error(over_confident, labels) > 0.1
    assert calibration_error(calibration.apply(over_confident), labels) < 0.05
    assert brier_score(calibration.apply(over_confident), labels) < brier_score(over_confident, labels)


def test_thirty_songs_all_right_do_not_make_the_model_certain():
    probabilities = np.array([[0.8, 0.1, 0.1], [0.1, 0.85, 0.05], [0.1, 0.1, 0.8]] * 10)
    calibration = fit_song_temperature(probabilities, np.array([0, 1, 2] * 10), fitted_on="validation songs")
    assert 0.2 < calibration.temperature < 1.0
    assert calibration.apply(probabilities).max() < 0.9999


def test_no_validation_songs_means_no_calibration():
    assert fit_temperature(np.zeros((0, 3)), labels=np.zeros(0, int), songs=[]) is UNCALIBRATED
    assert not UNCALIBRATED.calibrated and UNCALIBRATED.temperature == 1.0


def test_chunks_are_combined_per_song_before_the_temperature_is_fitted():
    rng = np.random.default_rng(2)
    truth, over_confident, labels = songs_with_known_confidence(rng, n=300)
    chunks = np.repeat(over_confident, 3, axis=0)  # three identical chunks per song
    calibration = fit_temperature(chunks, labels=np.repeat(labels, 3), songs=np.repeat(np.arange(300), 3).astype(str))
    assert calibration.songs == 300
    assert calibration.temperature == pytest.approx(
        fit_song_temperature(over_confident, labels, fitted_on="x").temperature, rel=1e-3)


@pytest.mark.parametrize("saved", [{"temperature": 0}, {"temperature": "hot"}, {"fitted_on": "x"}, [1.5],
                                   {"temperature": 1.2, "min_confidence": 1.5}, {"temperature": float("nan")}])
def test_a_damaged_calibration_is_refused_with_the_fix(saved):
    with pytest.raises(ModelError, match="refit the model"):
        Calibration.from_dict(saved, where="m/config.json")


# --- the measures ------------------------------------------------------------------------------------

def test_expected_calibration_error_and_brier_on_a_worked_example():
    # four songs at confidence 0.9 (three right), two at 0.6 (both right)
    probabilities = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 2)
    labels = np.array([0, 0, 0, 1, 0, 0])
    confidence, accuracy, count = reliability_bins(probabilities, labels)
    assert count[9] == 4 and count[6] == 2 and count.sum() == 6
    assert accuracy[9] == 0.75 and accuracy[6] == 1.0
    assert calibration_error(probabilities, labels) == pytest.approx((4 * 0.15 + 2 * 0.4) / 6)
    assert brier_score(probabilities, labels) == pytest.approx((3 * 0.02 + 1.62 + 2 * 0.32) / 6)


def test_calibrated_probabilities_have_a_small_error():
    truth, _, labels = songs_with_known_confidence(np.random.default_rng(3), n=4000)
    assert calibration_error(truth, labels) < 0.03


def test_the_error_chance_alone_gives_shrinks_with_more_songs_and_matches_what_perfect_probabilities_show():
    """A perfectly calibrated model's 40 songs show an error of ~0.1: the chance level says so, and it
    shrinks as the songs grow; an over-confident model's error stands clear of it."""
    chances = {}
    for n in (40, 400, 4000):
        truth, over_confident, labels = songs_with_known_confidence(np.random.default_rng(n), n=n)
        chances[n] = chance_calibration_error(reliability_dict(truth, labels))
        if n == 400:
            assert calibration_error(over_confident, labels) > 3 * chance_calibration_error(
                reliability_dict(over_confident, labels))
    assert chances[40] > chances[400] > chances[4000] > 0
    assert chances[40] > 0.05  # the 0.05 is out of reach of 40 songs, however good the probabilities
    # perfect probabilities: what they show is what chance alone predicts, within the draws' own spread
    repeats = [calibration_error(*songs_with_known_confidence(np.random.default_rng(100 + seed), n=40)[::2])
               for seed in range(60)]
    assert np.mean(repeats) == pytest.approx(chances[40], rel=0.35)
    assert chance_calibration_error({"confidence": [None] * 10, "accuracy": [None] * 10, "songs": [0] * 10}) is None


def test_pooled_bins_are_the_bins_of_one_set():
    truth, over_confident, labels = songs_with_known_confidence(np.random.default_rng(6), n=90)
    folds = [slice(0, 30), slice(30, 60), slice(60, 90)]
    pooled = pooled_reliability([reliability_dict(over_confident[f], labels[f]) for f in folds])
    whole = reliability_dict(over_confident, labels)
    assert pooled["songs"] == whole["songs"]
    for key in ("confidence", "accuracy"):
        assert [v is None for v in pooled[key]] == [v is None for v in whole[key]]
        assert [v for v in pooled[key] if v is not None] == pytest.approx([v for v in whole[key] if v is not None],
                                                                          abs=1e-5)


# --- a fitted model ----------------------------------------------------------------------------------

def test_fit_saves_the_temperature_and_reports_the_error_before_and_after(trained):
    folder = ModelDir(trained["result"].model_dir)
    calibration = folder.read_calibration()
    assert calibration.calibrated and calibration.fitted_on == "validation songs" and calibration.songs == 3
    metrics = json.loads((folder / folder.METRICS).read_text())
    assert metrics["temperature"] == pytest.approx(calibration.temperature)
    for key in ("ece", "brier", "ece_uncalibrated", "brier_uncalibrated", "ece_chance"):
        assert 0 <= metrics[key] <= 2
    assert sum(metrics["reliability"]["calibrated"]["songs"]) == metrics["test_songs"]
    # 3 test songs: even perfect probabilities would show a large error, and the model says so
    assert metrics["ece_chance"] == pytest.approx(chance_calibration_error(metrics["reliability"]["calibrated"]))
    from genre_cnn.report import format_metrics

    assert f"a perfectly calibrated model would show ~{metrics['ece_chance']:.3f} on 3 songs" in format_metrics(
        folder.read_metrics())
    assert (folder / folder.RELIABILITY_PLOT).stat().st_size > 5000


def test_every_consumer_gives_the_same_calibrated_numbers(trained):
    model_dir = trained["result"].model_dir
    song = trained["tracks"] / "tones" / "tones_0.mp3"
    classifier = load_classifier(model_dir)  # what classify runs: the LiteRT file (int8 weights, not Keras' float32)
    chunks = np.concatenate(list(classifier.network_inputs(song)))
    raw = classifier.runner.predict(chunks, batch_size=8)[:, :len(classifier.classes)]
    expected = classifier.calibration.apply(song_probabilities(raw))
    assert classifier.backend == "litert" and classifier.calibration.temperature != 1.0

    api = classify([song], model=model_dir)[0]
    np.testing.assert_allclose([api.probabilities[c] for c in classifier.classes], expected, atol=1e-5)
    cli = json.loads(CliRunner().invoke(main, ["classify", str(song), "--model", str(model_dir), "--json"]).stdout)
    np.testing.assert_allclose([cli[0]["probabilities"][c] for c in classifier.classes], expected, atol=1e-5)

    verdicts = classify([trained["tracks"]], model=model_dir)
    probabilities = np.array([[v.probabilities[c] for c in classifier.classes] for v in verdicts])
    labels = np.array([classifier.classes.index(v.path.split("/")[-2]) for v in verdicts])
    evaluation = evaluate_model(model_dir, trained["tracks"])
    assert evaluation["calibration_songs"] == 15
    assert evaluation["ece"] == pytest.approx(calibration_error(probabilities, labels), abs=1e-6)
    assert evaluation["brier"] == pytest.approx(brier_score(probabilities, labels), abs=1e-6)


def test_an_old_model_without_a_temperature_classifies_and_says_so_once(trained, tmp_path):
    old = tmp_path / "old-model"
    shutil.copytree(trained["result"].model_dir, old)
    config = json.loads((old / "config.json").read_text())
    del config["calibration"]
    (old / "config.json").write_text(json.dumps(config))
    with pytest.warns(GenreCnnWarning, match="temperature 1"):
        classifier = load_classifier(old, backend="keras")
    assert classifier.calibration is UNCALIBRATED

    result = CliRunner().invoke(main, ["classify", str(trained["tracks"] / "tones"), "--model", str(old)])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("Note:")]
    assert len(notes) == 1 and "refit the model to calibrate them" in notes[0]
    assert len(result.stdout.splitlines()) == 5


# --- unsure --------------------------------------------------------------------------------------------

def test_the_unsure_threshold_is_where_the_sure_songs_stop_being_right_often_enough():
    tops = (0.95, 0.93, 0.9, 0.88, 0.85, 0.8, 0.75, 0.7, 0.6, 0.55)
    probabilities = np.repeat([[p, 1 - p] for p in tops], 3, axis=0)  # 30 songs: enough to choose on
    labels = np.repeat([0] * 8 + [1] * 2, 3)  # the six least sure are wrong
    assert confidence_threshold(probabilities, labels, precision=0.9) == 0.7  # 24 of 24 at >= 0.7; 24 of 27 at 0.6
    assert confidence_threshold(probabilities, labels, precision=0.8) == 0.55  # 24 of 30 right at >= 0.55


def test_songs_equally_sure_count_together():
    probabilities = np.array([[0.95, 0.05]] * 21 + [[0.8, 0.2]] * 12)
    labels = np.array([0] * 21 + [0, 0, 1, 1] * 3)  # at 0.8: 27 of 33 right, below 90 %
    threshold = confidence_threshold(probabilities, labels, precision=0.9)
    assert threshold == 0.95
    sure = probabilities.max(axis=1) >= threshold
    assert (probabilities[sure].argmax(axis=1) == labels[sure]).mean() >= 0.9


def test_when_no_threshold_is_right_often_enough_every_verdict_is_unsure():
    probabilities = np.array([[0.9, 0.1]] * MIN_CALIBRATION_SONGS)
    assert confidence_threshold(probabilities, np.ones(MIN_CALIBRATION_SONGS, int)) == 1.0


def test_too_few_validation_songs_calibrate_nothing():
    probabilities = np.array([[0.9, 0.1]] * (MIN_CALIBRATION_SONGS - 1))
    assert confidence_threshold(probabilities, np.zeros(MIN_CALIBRATION_SONGS - 1, int)) is None
    calibration = fit_song_temperature(probabilities, np.zeros(MIN_CALIBRATION_SONGS - 1, int),
                                       fitted_on="validation songs")
    assert not calibration.calibrated and calibration.temperature == 1.0 and calibration.min_confidence is None
    assert calibration.fitted_on == (f"not calibrated: {MIN_CALIBRATION_SONGS - 1} validation songs, "
                                     f"fewer than {MIN_CALIBRATION_SONGS}")


def test_a_diverged_network_is_refused_with_the_fix():
    with pytest.raises(ModelError, match=r"training diverged; fit again with a lower learning_rate"):
        fit_song_temperature(np.full((MIN_CALIBRATION_SONGS, 3), np.nan), np.zeros(MIN_CALIBRATION_SONGS, int),
                             fitted_on="validation songs")


def test_fit_chooses_the_threshold_on_the_same_songs_as_the_temperature():
    truth, over_confident, labels = songs_with_known_confidence(np.random.default_rng(4))
    calibration = fit_song_temperature(over_confident, labels, fitted_on="validation songs")
    calibrated = calibration.apply(over_confident)
    sure = calibrated.max(axis=1) >= calibration.min_confidence
    assert 0 < sure.sum() < len(labels)
    assert (calibrated[sure].argmax(axis=1) == labels[sure]).mean() >= 0.9


def test_classify_says_unsure_and_names_the_two_likeliest_genres(trained):
    model_dir = str(trained["result"].model_dir)
    song = str(trained["tracks"] / "tones" / "tones_0.mp3")
    runner = CliRunner()
    everything_unsure = runner.invoke(main, ["classify", song, "--model", model_dir, "--min-confidence", "1"])
    [verdict] = classify([song], model=model_dir)
    first, second = (genre for genre, _ in verdict.top(2))
    assert everything_unsure.stdout.startswith(f"{song}  unsure: {first} or {second}  (")
    nothing_unsure = runner.invoke(main, ["classify", song, "--model", model_dir, "--min-confidence", "0", "--json"])
    assert json.loads(nothing_unsure.stdout)[0]["unsure"] is False
    threshold = ModelDir(model_dir).read_calibration().min_confidence
    assert verdict.unsure == (None if threshold is None else max(verdict.probabilities.values()) < threshold)


def test_a_threshold_that_is_not_a_probability_is_refused(trained):
    result = CliRunner().invoke(main, ["classify", str(trained["tracks"]), "--model", str(trained["result"].model_dir),
                                       "--min-confidence", "1.5"])
    assert result.exit_code == 2 and "--min-confidence" in result.output
    with pytest.raises(ConfigError, match=r"min_confidence=2 must be a probability in \[0, 1\]"):
        classify([trained["tracks"]], model=trained["result"].model_dir, min_confidence=2)


def test_evaluate_scores_the_unsure_flag(trained):
    model_dir = trained["result"].model_dir
    evaluation = evaluate_model(model_dir, trained["tracks"], min_confidence=0.9)
    verdicts = classify([trained["tracks"]], model=model_dir, min_confidence=0.9)
    flagged = [v for v in verdicts if v.unsure]
    sure = [v for v in verdicts if not v.unsure]
    genre = {v.path: v.path.split("/")[-2] for v in verdicts}
    unsure = evaluation["unsure"]
    assert unsure["min_confidence"] == 0.9 and unsure["songs"] == len(flagged) and unsure["share"] == len(flagged) / 15
    assert unsure["wrong"] == sum(v.genre != genre[v.path] for v in flagged)
    assert unsure["sure_accuracy"] == (sum(v.genre == genre[v.path] for v in sure) / len(sure) if sure else None)
    text = CliRunner().invoke(main, ["evaluate", "--model", str(model_dir), str(trained["tracks"]),
                                     "--min-confidence", "0.9"]).stdout
    assert f"unsure (top probability below 0.90): {len(flagged)} songs" in text


def test_timeline_windows_are_calibrated_like_songs(trained):
    import copy

    from genre_cnn.inference.timeline import classify_timeline

    calibrated = load_classifier(trained["result"].model_dir, backend="keras")
    raw = copy.copy(calibrated)
    raw.calibration = UNCALIBRATED
    song = trained["tracks"] / "tones" / "tones_0.mp3"
    windows = classify_timeline(song, calibrated, window=1.0)
    own = classify_timeline(song, raw, window=1.0)
    assert len(windows.probabilities) == 3
    np.testing.assert_allclose(windows.probabilities, calibrated.calibration.apply(own.probabilities), atol=1e-6)


def test_parallel_workers_flag_unsure_verdicts_with_the_threshold_they_were_given(trained):
    verdicts = classify([trained["tracks"]], model=trained["result"].model_dir, workers=2, min_confidence=1.0)
    assert len(verdicts) == 15 and all(v.unsure for v in verdicts)
    relaxed = classify([trained["tracks"]], model=trained["result"].model_dir, workers=2, min_confidence=0.0)
    assert not any(v.unsure for v in relaxed)


def test_the_error_of_every_folds_songs_together_is_the_error_of_one_set():
    from genre_cnn.training.metrics import pooled_calibration_error, reliability_dict

    truth, over_confident, labels = songs_with_known_confidence(np.random.default_rng(5), n=90)
    folds = [slice(0, 30), slice(30, 60), slice(60, 90)]
    pooled = pooled_calibration_error([reliability_dict(over_confident[f], labels[f]) for f in folds])
    assert pooled == pytest.approx(calibration_error(over_confident, labels), abs=1e-5)
