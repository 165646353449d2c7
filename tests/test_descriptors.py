"""Handcrafted descriptors, exploration plots, the scikit-learn baseline, and comparing models."""

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import write_tracks

from genre_cnn.analysis.explore import explore
from genre_cnn.cli import main
from genre_cnn.data.descriptor_table import descriptor_table_version, read_descriptor_table
from genre_cnn.errors import AudioTooShortError, ConfigError, GenreCnnWarning, SilentAudioError
from genre_cnn.inference.classifier import classify, open_classifier
from genre_cnn.inference.prediction import Classifier
from genre_cnn.kinds.baseline import BaselineClassifier, fit_baseline
from genre_cnn.plots import plot_class_balance, plot_pca
from genre_cnn.signal.descriptors import DESCRIPTOR_VERSION, descriptor_columns, song_descriptors

SR = 22050


def harmonic_tone(path, f0, seconds=3.0):
    t = np.arange(int(seconds * SR)) / SR
    y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3))
    soundfile.write(path, (0.3 * y).astype(np.float32), SR)
    return path


def click_track(path, bpm, seconds=10.0):
    y = np.zeros(int(seconds * SR), np.float32)
    click = np.sin(2 * np.pi * 1500 * np.arange(400) / SR) * np.hanning(400)
    for start in np.arange(0, seconds, 60 / bpm):
        i = int(start * SR)
        y[i : i + 400] += click[: len(y) - i]
    soundfile.write(path, y, SR)
    return path


def test_pitch_of_a_known_tone(tmp_path):
    values = song_descriptors(harmonic_tone(tmp_path / "a3.wav", 220.0))
    assert values["f0_median"] == pytest.approx(220, rel=0.02)
    assert values["f0_p5"] == pytest.approx(220, rel=0.05) and values["f0_p95"] == pytest.approx(220, rel=0.05)
    assert values["voiced_fraction"] > 0.8
    assert values["duration"] == pytest.approx(3.0, abs=0.01)
    assert list(values) == descriptor_columns()


def test_tempo_and_onsets_of_a_click_track(tmp_path):
    values = song_descriptors(click_track(tmp_path / "clicks.wav", 120))
    assert values["tempo"] == pytest.approx(120, rel=0.05)
    assert values["onsets_per_second"] == pytest.approx(2.0, abs=0.3)


def test_unpitched_audio_gives_nan_pitch_and_finite_everything_else(tmp_path):
    clicks = np.where(np.arange(SR * 2) % (SR // 10) == 0, 0.5, 0.0).astype(np.float32)  # 10 Hz: below any pitch
    soundfile.write(tmp_path / "clicks.wav", clicks, SR)
    values = song_descriptors(tmp_path / "clicks.wav")
    assert values["voiced_fraction"] == 0
    assert all(np.isnan(values[name]) for name in ("f0_mean", "f0_median", "f0_std", "f0_p5", "f0_p95"))
    assert all(np.isfinite(value) for name, value in values.items() if not name.startswith("f0_"))


@pytest.mark.slow
def test_processes_describing_songs_at_once_on_a_fresh_install_do_not_crash(tmp_path):
    """librosa's numba cache, filled by processes compiling at once, crashed every reader (numba#10128)."""
    song = harmonic_tone(tmp_path / "a3.wav", 220.0)
    fresh_install = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    describe = ["-c", f"from genre_cnn.signal.descriptors import song_descriptors; song_descriptors({str(song)!r})"]
    at_once = [subprocess.Popen([sys.executable, *describe], env=fresh_install, stderr=subprocess.PIPE, text=True)
               for _ in range(3)]
    for process in at_once:
        assert process.wait(timeout=300) == 0, process.stderr.read()[-2000:]
    later = subprocess.run([sys.executable, *describe], env=fresh_install, capture_output=True, text=True, timeout=300)
    assert later.returncode == 0, later.stderr[-2000:]


@pytest.mark.parametrize("samples, error", [(np.zeros(SR * 2), SilentAudioError),
                                            (np.full(SR // 4, 0.5), AudioTooShortError)],
                         ids=["silent", "too-short"])
def test_the_descriptors_follow_the_same_usable_audio_rule_as_the_chunks(tmp_path, samples, error):
    soundfile.write(tmp_path / "song.wav", samples.astype(np.float32), SR)
    with pytest.raises(error, match="song.wav: "):
        song_descriptors(tmp_path / "song.wav")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """Descriptor table of a synthetic 3-genre set (6 songs per genre), written by the CLI."""
    root = tmp_path_factory.mktemp("descriptors")
    tracks = write_tracks(root / "tracks", songs=6, seconds=2.0, fmt="WAV")
    (tracks / "noise" / "broken.wav").write_text("not audio")
    result = CliRunner().invoke(main, ["features", str(tracks), "--out", str(root / "features.csv"), "-q"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"18 song(s) described in {root / 'features.csv'}\n"
    assert "Skipped: " in result.stderr and "broken.wav: cannot decode audio" in result.stderr
    return {"root": root, "tracks": tracks, "csv": root / "features.csv"}


def test_table_has_one_row_per_song_and_the_documented_columns(table):
    with open(table["csv"], newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == ["song", "genre", *descriptor_columns(), "descriptor_version"]
    assert len(rows) == 18 and {row["genre"] for row in rows} == {"chirps", "noise", "tones"}
    assert {row["descriptor_version"] for row in rows} == {str(DESCRIPTOR_VERSION)}
    songs, genres, values, columns = read_descriptor_table(table["csv"])
    assert values.shape == (18, len(descriptor_columns())) and songs[0] == "chirps/chirps_0.wav"


def test_explore_writes_every_plot_and_a_summary(table, tmp_path):
    summary = explore(table["csv"], out=tmp_path / "eda")
    for name in ("class_balance.png", "histograms.png", "correlation.png", "pca.png"):
        assert (tmp_path / "eda" / name).stat().st_size > 5000, name
    assert summary.splitlines()[0] == "18 songs, 3 genres: chirps 6, noise 6, tones 6"
    assert summary.splitlines()[1] == "imbalance ratio (largest / smallest genre): 1.00"
    assert (tmp_path / "eda" / "summary.txt").read_text().strip() == summary


def test_plots_have_their_labels(tmp_path):
    balance = plot_class_balance(["a", "a", "b"], tmp_path / "b.png")
    ax = balance.axes[0]
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("Songs per genre", "genre", "songs")
    assert [bar.get_height() for bar in ax.patches] == [2, 1]
    scatter = plot_pca(np.array([[0, 1], [1, 0], [2, 2]]), ["a", "b", "b"], [0.6, 0.3], tmp_path / "p.png")
    ax = scatter.axes[0]
    assert ax.get_xlabel() == "PC1 (60% of variance)" and ax.get_ylabel() == "PC2 (30% of variance)"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["a", "b"]


def test_baseline_beats_chance_and_reloads_identically(table, tmp_path):
    result = fit_baseline(table["csv"], out=tmp_path / "baseline", test_fraction=0.34, folds=3)
    assert result.metrics.song_accuracy > 0.6  # chance is 1/3
    assert result.metrics.cv_folds == 3
    with open(tmp_path / "baseline" / "cv_results.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 8  # 6 logistic + 2 forest settings
    assert (tmp_path / "baseline" / "confusion.png").stat().st_size > 5000
    loaded = open_classifier(tmp_path / "baseline")  # the one factory, for every kind
    assert isinstance(loaded, BaselineClassifier) and isinstance(loaded, Classifier)
    assert (loaded.kind, loaded.backend, loaded.makes_timelines) == ("baseline", "sklearn", False)
    _, _, values, _ = read_descriptor_table(table["csv"])
    np.testing.assert_array_equal(loaded.pipeline.predict_proba(values), result.pipeline.predict_proba(values))


def test_a_baseline_fitted_on_older_descriptors_still_classifies_and_says_so(table, tmp_path):
    import warnings

    fit_baseline(table["csv"], out=tmp_path / "baseline", folds=3)
    config = json.loads((tmp_path / "baseline" / "config.json").read_text())
    assert config["descriptor_version"] == DESCRIPTOR_VERSION
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the current version: nothing to say
        open_classifier(tmp_path / "baseline")
    assert read_descriptor_table(table["csv"])[3] == descriptor_columns()  # the version is not a descriptor
    # a table written before the version was recorded (no descriptor_version column) is version 1
    with open(table["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    unversioned = tmp_path / "unversioned.csv"
    with open(unversioned, "w", newline="") as handle:
        writer = csv.DictWriter(handle, [name for name in rows[0] if name != "descriptor_version"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    assert descriptor_table_version(unversioned) == 1
    # a table of another computation of the descriptors: its baseline says so when opened, and still works
    other = tmp_path / "other-features.csv"
    other.write_text(re.sub(rf",{DESCRIPTOR_VERSION}(\r?\n)", rf",{DESCRIPTOR_VERSION + 1}\1", table["csv"].read_text()))
    fit_baseline(other, out=tmp_path / "other-baseline", folds=3)
    config = json.loads((tmp_path / "other-baseline" / "config.json").read_text())
    assert config["descriptor_version"] == DESCRIPTOR_VERSION + 1
    with pytest.warns(GenreCnnWarning, match=f"descriptors computed by another genre-cnn .version {DESCRIPTOR_VERSION + 1}"):
        old = open_classifier(tmp_path / "other-baseline")
    assert old.classify_file(table["tracks"] / "tones" / "tones_1.wav").ok


def test_the_baseline_is_calibrated_on_its_cross_validated_training_songs(table, tmp_path, monkeypatch):
    from genre_cnn.training import calibration

    monkeypatch.setattr(calibration, "MIN_CALIBRATION_SONGS", 12)  # the table's 12 training songs (a real one: 30)
    result = fit_baseline(table["csv"], out=tmp_path / "baseline", test_fraction=0.34, folds=3)
    loaded = open_classifier(tmp_path / "baseline")
    assert loaded.calibration.fitted_on == "cross-validated training songs" and loaded.calibration.songs == 12
    assert result.metrics.temperature == pytest.approx(loaded.calibration.temperature)
    assert result.metrics.ece is not None and result.metrics.ece_uncalibrated is not None
    assert (tmp_path / "baseline" / "reliability.png").stat().st_size > 5000
    song = table["tracks"] / "tones" / "tones_1.wav"
    values = np.array([[song_descriptors(song)[c] for c in loaded.columns]])
    expected = loaded.calibration.apply(result.pipeline.predict_proba(values)[0])
    verdict = loaded.classify_file(song)
    np.testing.assert_allclose([verdict.probabilities[c] for c in loaded.classes], expected)


def test_classify_and_compare_with_the_baseline(table, tmp_path, trained, monkeypatch):
    from genre_cnn.training import novelty

    monkeypatch.setattr(novelty, "MIN_NOVELTY_SONGS", 10)  # a reference of the table's 14 training songs
    fit_baseline(table["csv"], out=tmp_path / "baseline", folds=3)
    song = table["tracks"] / "tones" / "tones_1.wav"
    result = CliRunner().invoke(main, ["classify", str(song), "--model", str(tmp_path / "baseline"), "--json"])
    assert result.exit_code == 0
    [entry] = json.loads(result.stdout)
    assert set(entry["probabilities"]) == {"chirps", "noise", "tones"} and entry["n_chunks"] == 1
    assert sum(entry["probabilities"].values()) == pytest.approx(1)
    assert entry["unfamiliar"] is False and 0 < entry["novelty"]  # in the space of its standardised descriptors
    from test_novelty import foreign_sounds

    foreign = classify([*foreign_sounds(tmp_path / "foreign")], model=tmp_path / "baseline")
    assert all(verdict.unfamiliar for verdict in foreign), [verdict.novelty for verdict in foreign]

    result = CliRunner().invoke(main, ["compare", str(trained["result"].model_dir), str(tmp_path / "baseline"),
                                       str(table["tracks"])])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["model", "kind", "songs", "failed", "song", "accuracy"]
    assert lines[2].split()[1:4] == ["cnn", "18", "1"] and lines[3].split()[1:4] == ["baseline", "18", "1"]


def test_bad_table(tmp_path):
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="not a descriptor table"):
        fit_baseline(tmp_path / "t.csv", out=tmp_path / "m")
    with pytest.raises(ConfigError, match="no such file; make it with 'genre-cnn features"):
        explore(tmp_path / "missing.csv", out=tmp_path / "e")


def test_a_baseline_fitted_with_its_tracks_can_be_monitored(table, tmp_path):
    import soundfile

    from genre_cnn.errors import ModelError
    from genre_cnn.monitoring import load_profile, monitor

    fit_baseline(table["csv"], out=tmp_path / "plain", folds=3)
    with pytest.raises(ModelError, match="--tracks TRACKS_DIR"):
        monitor(tmp_path / "plain", [table["tracks"]], min_songs=5)

    result = CliRunner().invoke(main, ["baseline", str(table["csv"]), "--out", str(tmp_path / "baseline"), "--folds",
                                       "3", "--test-fraction", "0.34", "--tracks", str(table["tracks"])])
    assert result.exit_code == 0, result.output
    profile = load_profile(tmp_path / "baseline")
    assert profile.n_songs == 18 and len(profile.embeddings) == 0 and 0 < len(profile.genres) < 18
    quiet = tmp_path / "quiet"
    for song in sorted(table["tracks"].rglob("*_[0-9].wav")):
        y, sr = soundfile.read(song)
        (quiet / song.parent.name).mkdir(parents=True, exist_ok=True)
        soundfile.write(quiet / song.parent.name / song.name, y * 10 ** (-12 / 20), sr)
    report = monitor(tmp_path / "baseline", [quiet], min_songs=5)
    verdicts = {check.name: check for check in report.checks}
    assert verdicts["loudness"].drifted
    assert verdicts["embeddings"].p_value is None


def test_a_metadata_csv_with_artists_gives_a_table_whose_baseline_holds_out_whole_artists(table, tmp_path, monkeypatch):
    from genre_cnn.kinds import baseline

    songs = sorted(p for p in table["tracks"].rglob("*.wav") if p.name != "broken.wav")
    lines = ["file,genre,artist"] + [f"{p.relative_to(table['tracks']).as_posix()},{p.parent.name},"
                                     f"{p.parent.name}-{int(p.stem.split('_')[1]) // 2}" for p in songs]
    (tmp_path / "meta.csv").write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["features", str(tmp_path / "meta.csv"), "--audio-root", str(table["tracks"]),
                                       "--path-column", "file", "--label-column", "genre", "--group-column", "artist",
                                       "--out", str(tmp_path / "by-artist.csv"), "-q"])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "by-artist.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:3] == ["song", "genre", "group"] and len({row["group"] for row in rows}) == 9
    names, _, values, columns = read_descriptor_table(tmp_path / "by-artist.csv")
    assert columns == descriptor_columns()  # the group is not a descriptor

    splits, calibrated = [], []
    split, fit_temperature = baseline.split_songs, baseline.baseline_temperature
    monkeypatch.setattr(baseline, "split_songs", lambda *a, **k: splits.append(split(*a, **k)) or splits[-1])
    monkeypatch.setattr(baseline, "baseline_temperature", lambda *a, groups, **k:
                        calibrated.append(groups) or fit_temperature(*a, groups=groups, **k))
    fit_baseline(tmp_path / "by-artist.csv", out=tmp_path / "baseline", test_fraction=0.34, folds=2)
    artist_of = {row["song"]: row["group"] for row in rows}
    test = {artist_of[name] for name, where in zip(names, splits[0]) if where == "test"}
    train = {artist_of[name] for name, where in zip(names, splits[0]) if where == "train"}
    assert test and train and not test & train  # whole artists held out
    assert set(calibrated[0]) == train  # the temperature's folds keep an artist together


def test_csv_options_on_a_genre_folder_are_refused_by_name(table, tmp_path):
    result = CliRunner().invoke(main, ["features", str(table["tracks"]), "--group-column", "artist",
                                       "--out", str(tmp_path / "f.csv"), "-q"])
    assert result.exit_code == 1
    assert "--group-column artist only applies to a metadata CSV" in result.output
    assert not (tmp_path / "f.csv").exists()
