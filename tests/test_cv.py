"""genre-cnn cv: folds by song or group, every song tested once by a model that never saw it."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_CLI_OPTIONS, write_tracks

from genre_cnn.cli import main
from genre_cnn.config import TrainConfig
from genre_cnn.data.build import build_dataset
from genre_cnn.data.dataset import load_dataset
from genre_cnn.data.metadata import scan_metadata
from genre_cnn.errors import DatasetError
from genre_cnn.training.cv import compare_recipes, cross_validate, song_folds


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    """Six songs per genre, two per artist, with a CSV giving artist and a fold (1-3) per artist."""
    from genre_cnn.config import FeatureConfig

    root = tmp_path_factory.mktemp("grouped")
    tracks = write_tracks(root / "audio", songs=6, seconds=2)
    lines = ["path,label,artist,fold"]
    for song in sorted(tracks.rglob("*.mp3")):
        index = int(song.stem.split("_")[1])
        lines.append(f"{song.relative_to(tracks).as_posix()},{song.parent.name},{song.parent.name}{index // 2},"
                     f"{index // 2 + 1}")
    (root / "audio" / "meta.csv").write_text("\n".join(lines) + "\n")
    config = FeatureConfig(sr=8000, chunk_samples=8000, hop_samples=8000, n_fft=256, hop_length=128, n_mels=16)
    songs = scan_metadata(root / "audio" / "meta.csv", group_column="artist", fold_column="fold")
    build_dataset(songs, out=root / "ds", config=config, workers=1)
    return root / "ds"


def test_stratified_folds_keep_groups_together_and_balance_genres(grouped):
    dataset = load_dataset(grouped)
    songs, fold = song_folds(dataset, folds=3, seed=0)
    group_of = dict(zip(dataset.songs, dataset.groups))
    label_of = dict(zip(dataset.songs, dataset.labels))
    for group in set(group_of.values()):
        assert len({f for s, f in zip(songs, fold) if group_of[s] == group}) == 1
    for number in range(3):
        in_fold = [label_of[s] for s, f in zip(songs, fold) if f == number]
        assert sorted(np.bincount(in_fold, minlength=3)) == [2, 2, 2]


def test_folds_of_the_csv_are_used_when_asked(grouped):
    dataset = load_dataset(grouped)
    songs, fold = song_folds(dataset, folds=None)
    csv_fold = dict(zip(dataset.songs, dataset.folds))
    assert all(int(csv_fold[s]) == f + 1 for s, f in zip(songs, fold))


def test_folds_need_enough_songs_and_a_fold_column(trained):
    dataset = load_dataset(trained["dataset"])
    with pytest.raises(DatasetError, match="a genre has only 5 songs, too few for folds=6; use folds=5"):
        song_folds(dataset, folds=6)
    with pytest.raises(DatasetError, match="no fold column; rebuild it with a metadata fold column, or give folds=K"):
        song_folds(dataset, folds=None)


def test_every_song_is_tested_once_by_a_model_that_never_saw_it(grouped, tmp_path):
    result = cross_validate(grouped, config=TrainConfig(epochs=1, batch_size=8), folds=None, val_fraction=0.3,
                            out=tmp_path / "cv", log=lambda m: None)
    dataset = load_dataset(grouped)
    tested = [song for fold in result.folds for song in fold["test_songs"]]
    assert sorted(tested) == sorted(set(dataset.songs))
    group_of = dict(zip(dataset.songs, dataset.groups))
    for fold in result.folds:
        seen = set(fold["train_songs"]) | set(fold["val_songs"])
        assert not seen & set(fold["test_songs"])
        assert not {group_of[s] for s in seen} & {group_of[s] for s in fold["test_songs"]}
        assert fold["val_songs"]
    summary = result.summary
    assert summary["folds"] == 3 and summary["fold_source"] == "metadata CSV"
    assert summary["song_accuracy"]["mean"] == pytest.approx(np.mean([f["song_accuracy"] for f in result.folds]))
    assert summary["song_accuracy"]["std"] == pytest.approx(np.std([f["song_accuracy"] for f in result.folds]))
    assert np.array(summary["confusion_songs"]).sum() == 18
    assert np.array(summary["confusion_chunks"]).sum() == len(dataset.songs)
    saved = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert saved["summary"]["song_macro_f1"] == summary["song_macro_f1"]
    assert (tmp_path / "cv" / "confusion.png").stat().st_size > 5000
    for fold in result.folds:  # each fold: a temperature (1 with fewer than 30 validation songs), its test songs
        assert fold["temperature"] > 0 and 0 <= fold["ece"] <= 1 and 0 <= fold["ece_uncalibrated"] <= 1
    assert summary["ece"]["mean"] == pytest.approx(np.mean([f["ece"] for f in result.folds]))
    assert 0 <= summary["ece_pooled"] <= 1 and 0 <= summary["ece_uncalibrated_pooled"] <= 1
    assert 0 < summary["ece_pooled_chance"] < 1  # what 18 songs would show if their probabilities were perfect


def test_cv_command_uses_the_fit_options(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tracks(tmp_path / "tracks", songs=4, seconds=2)
    runner = CliRunner()
    assert runner.invoke(main, ["build-dataset", "tracks", "-q", *TINY_CLI_OPTIONS]).exit_code == 0
    result = runner.invoke(main, ["cv", "--folds", "2", "--epochs", "1", "--batch-size", "8", "--augment", "gain",
                                  "--class-weight", "balanced", "--out", "cvrun", "-q"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("2-fold cross-validation (stratified by song), 12 songs")
    assert any(line.startswith("song accuracy") and "±" in line for line in lines)
    assert any(line.startswith("ece  ") and "±" in line for line in lines)  # each fold's calibration error
    assert any(line.startswith("expected calibration error of every fold's test songs together: ") for line in lines)
    saved = json.loads((tmp_path / "cvrun" / "cv.json").read_text())["summary"]["train_config"]
    assert saved["options"]["augment"] == ["gain"] and saved["class_weight"] == "balanced"
    bad = runner.invoke(main, ["cv", "--folds", "9"])
    assert bad.exit_code == 1 and "too few for --folds 9" in bad.output


def test_folds_that_leave_a_genre_one_group_say_to_drop_validation(grouped, tmp_path):
    from genre_cnn.config import FeatureConfig

    audio = grouped.parent / "audio"
    lines = ["path,label,album"]  # two albums per genre: outside either fold, one album is left to train on
    for song in sorted(audio.rglob("*.mp3")):
        lines.append(f"{song.relative_to(audio).as_posix()},{song.parent.name},"
                     f"{song.parent.name}{int(song.stem.split('_')[1]) // 3}")
    (audio / "albums.csv").write_text("\n".join(lines) + "\n")
    config = FeatureConfig(sr=8000, chunk_samples=8000, hop_samples=8000, n_fft=256, hop_length=128, n_mels=16)
    data = build_dataset(scan_metadata(audio / "albums.csv", group_column="album"), out=tmp_path / "ds",
                         config=config, workers=1, val_fraction=0, test_fraction=0).path
    with pytest.raises(DatasetError) as caught:
        cross_validate(data, config=TrainConfig(epochs=1, batch_size=8), folds=2, out=tmp_path / "cv",
                       log=lambda m: None)
    message = str(caught.value)
    assert "outside fold 1, genre 'chirps' has 1 usable groups" in message  # the genre by name, not its number
    assert message.endswith("use --val-fraction 0 (keep the last epoch) or fewer --folds")
    result = cross_validate(data, config=TrainConfig(epochs=1, batch_size=8), folds=2, val_fraction=0.0,
                            out=tmp_path / "cv", log=lambda m: None)
    assert result.summary["folds"] == 2


def test_the_baselines_temperature_is_fitted_on_folds_that_keep_an_artist_together(grouped, tmp_path, monkeypatch):
    from genre_cnn.kinds import baseline
    from genre_cnn.training import calibration

    monkeypatch.setattr(calibration, "MIN_CALIBRATION_SONGS", 12)  # each fold's 12 training songs (a real one: 30)
    searched, calibrated = [], []
    tune, fit_temperature = baseline.tuned_baseline, baseline.baseline_temperature
    monkeypatch.setattr(baseline, "tuned_baseline",
                        lambda *args, groups, **kwargs: searched.append(groups) or tune(*args, groups=groups, **kwargs))
    monkeypatch.setattr(baseline, "baseline_temperature", lambda *args, groups, **kwargs:
                        calibrated.append(groups) or fit_temperature(*args, groups=groups, **kwargs))
    result = compare_recipes(grouped, recipes=["baseline"], folds=None, out=tmp_path / "cv", log=lambda message: None)
    dataset = load_dataset(grouped)
    artists = set(dataset.groups)
    assert len(searched) == len(calibrated) == 3  # one model and one temperature a fold
    for songs, groups in zip(searched, calibrated):
        assert len(set(songs)) == len(songs)  # the grid is searched on folds of songs
        assert set(groups) <= artists and len(set(groups)) == len(groups) // 2  # the temperature's keep artists
    assert all(fold["temperature"] != 1.0 for fold in result.folds["baseline"])


def test_a_temperature_from_songs_whose_artist_was_heard_leaves_new_artists_over_confident():
    from genre_cnn.training.baseline import baseline_temperature, tuned_baseline

    rng = np.random.default_rng(0)  # 3 genres x 6 artists x 4 songs: an artist's songs are alike, genres barely differ
    labels = np.repeat(np.arange(3), 24)
    artists = np.repeat(np.arange(18), 4)
    values = (0.3 * labels[:, None] + 3.0 * rng.normal(size=(18, 8))[artists] + 0.1 * rng.normal(size=(72, 8)))
    songs = np.arange(72)
    pipeline = tuned_baseline(values, labels, groups=songs, folds=3)
    by_song = baseline_temperature(pipeline, values, labels, groups=songs, folds=3)
    by_artist = baseline_temperature(pipeline, values, labels, groups=artists, folds=3)
    assert by_artist.temperature > 1.5 * by_song.temperature  # new artists: softer probabilities


def test_a_recipe_of_another_kind_says_which_of_the_runs_options_do_not_apply(grouped, tmp_path):
    messages = []
    compare_recipes(grouped, recipes=["baseline"], folds=None, out=tmp_path / "cv", log=messages.append,
                    config=TrainConfig(options={"augment": "gain", "head": "summary"}))
    assert "Recipe baseline: (trains the baseline kind: augment, head do not apply)" in messages
    messages.clear()
    compare_recipes(grouped, recipes=["baseline"], folds=None, out=tmp_path / "cv2", log=messages.append)
    assert "Recipe baseline:" in messages  # nothing set, nothing to say
