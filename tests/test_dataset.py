"""Scanning a tracks folder, splitting by song, writing and reading a dataset."""

import csv
import json

import numpy as np
import pytest
import soundfile
from conftest import synth_song, write_tracks

from genre_cnn.data.build import build_dataset
from genre_cnn.data.dataset import load_dataset, read_summary
from genre_cnn.data.split import split_songs
from genre_cnn.data.summary import BuildSummary
from genre_cnn.data.tracks import scan_tracks
from genre_cnn.errors import ConfigError, DatasetError


def read_manifest(path):
    with open(path / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


# --- scanning ---------------------------------------------------------------------------------

def test_genres_are_the_folders_with_audio(tmp_path):
    root = write_tracks(tmp_path / "t", genres=("tones", "noise"), songs=2, seconds=1)
    (root / "licenses").mkdir()
    (root / "licenses" / "GPL.txt").write_text("licence")
    (root / "tones" / "live").mkdir()
    soundfile.write(root / "tones" / "live" / "LOUD.WAV", np.zeros(8000), 8000)
    (root / "tones" / ".DS_Store").write_text("")
    (root / "tones" / "._tones_0.mp3").write_text("")
    tracks = scan_tracks(root)
    assert tracks.classes == ("noise", "tones")
    assert sorted(s.relative for s in tracks.songs if s.label == "tones") == [
        "tones/live/LOUD.WAV", "tones/tones_0.mp3", "tones/tones_1.mp3"]
    assert tracks.notes == (f"{root / 'licenses'}: no audio files, not a genre (skipped)",)


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"missing: does not exist; pass a folder with one sub-folder"):
        scan_tracks(tmp_path / "missing")


def test_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="found no genre folder with audio; a classifier needs at least two"):
        scan_tracks(tmp_path)


def test_one_genre_is_not_enough(tmp_path):
    root = write_tracks(tmp_path / "t", genres=("tones",), songs=2, seconds=1)
    with pytest.raises(DatasetError, match="found only the genre 'tones'; a classifier needs at least two"):
        scan_tracks(root)


# --- splitting --------------------------------------------------------------------------------

def test_split_is_stratified_per_genre_and_seeded():
    labels = ["a"] * 10 + ["b"] * 5
    splits = split_songs(labels, val_fraction=0.2, test_fraction=0.2, seed=3)
    for genre, n_test, n_val in (("a", 2, 2), ("b", 1, 1)):
        mine = splits[np.array(labels) == genre]
        assert (mine == "test").sum() == n_test and (mine == "val").sum() == n_val
    np.testing.assert_array_equal(splits, split_songs(labels, val_fraction=0.2, test_fraction=0.2, seed=3))
    assert not np.array_equal(splits, split_songs(labels, val_fraction=0.2, test_fraction=0.2, seed=4))


def test_fractions_of_zero_keep_everything_for_training():
    assert set(split_songs(["a", "b"] * 3, val_fraction=0, test_fraction=0)) == {"train"}


def test_genre_with_too_few_songs():
    with pytest.raises(DatasetError, match="genre 'b' has 2 usable song.s.; with val_fraction=0.15 and "
                                           "test_fraction=0.2 every genre needs at least 3"):
        split_songs(["a"] * 5 + ["b"] * 2, val_fraction=0.15, test_fraction=0.2)


@pytest.mark.parametrize("val, test, message", [
    (0.6, 0.5, "must be below 1"), (-0.1, 0.2, "val_fraction=-0.1 must be in"),
    (0.1, 1.0, "test_fraction=1.0 must be in")], ids=["sum", "negative", "one"])
def test_bad_fractions(val, test, message):
    with pytest.raises(ConfigError, match=message):
        split_songs(["a"] * 9, val_fraction=val, test_fraction=test)


# --- building ---------------------------------------------------------------------------------

def test_build_writes_a_complete_dataset(tracks_dir, tiny_config, tmp_path):
    report = build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1, seed=1)
    files = sorted(p.name for p in (tmp_path / "ds").iterdir())
    assert files == ["chunk_offsets.npy", "classes.json", "feature_config.json", "features.npy", "manifest.csv",
                     "mel_filterbank.npy", "skipped.csv", "songs.csv", "summary.json"]
    assert report.summary.songs == 15 and report.summary.chunks == 45
    data = load_dataset(tmp_path / "ds")
    assert data.classes == ("chirps", "noise", "tones")
    assert data.feature_config == tiny_config
    assert data.features.shape == (45, 16, 63) and isinstance(data.features, np.memmap)
    rows = read_manifest(tmp_path / "ds")
    assert rows[0] == {"song": "chirps/chirps_0.mp3", "label": "chirps", "chunk": "0",
                       "offset_seconds": "0.0000", "split": rows[0]["split"], "group": "", "fold": ""}
    assert [r["offset_seconds"] for r in rows[:3]] == ["0.0000", "1.0000", "2.0000"]


def test_no_song_has_chunks_in_two_splits(tracks_dir, tiny_config, tmp_path):
    build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1, val_fraction=0.2, test_fraction=0.2)
    split_of = {}
    for row in read_manifest(tmp_path / "ds"):
        assert split_of.setdefault(row["song"], row["split"]) == row["split"], row["song"]
    assert set(split_of.values()) == {"train", "val", "test"}
    summary = json.loads((tmp_path / "ds" / "summary.json").read_text())
    for genre in ("chirps", "noise", "tones"):
        assert {s: summary["per_class"][genre][s]["songs"] for s in ("train", "val", "test")} == \
            {"train": 3, "val": 1, "test": 1}


def test_the_summary_is_a_type_saved_as_json_and_read_back_unchanged(tracks_dir, tiny_config, tmp_path):
    report = build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1)
    assert isinstance(report.summary, BuildSummary)
    assert read_summary(tmp_path / "ds") == report.summary
    assert json.loads((tmp_path / "ds" / "summary.json").read_text()) == report.summary.to_dict()
    assert report.summary.songs == 15
    saved = report.summary.to_dict()
    saved["added_by_a_newer_version"] = 1
    assert BuildSummary.from_dict(saved) == report.summary
    del saved["chunks"]
    with pytest.raises(DatasetError, match=r"ds/summary.json: is damaged \(no chunks\); rebuild the dataset"):
        BuildSummary.from_dict(saved, where="ds/summary.json")


def test_the_same_features_are_written_with_several_workers(tracks_dir, tiny_config, tmp_path):
    build_dataset(tracks_dir, out=tmp_path / "one", config=tiny_config, workers=1)
    build_dataset(tracks_dir, out=tmp_path / "two", config=tiny_config, workers=2)
    np.testing.assert_array_equal(np.load(tmp_path / "one" / "features.npy"),
                                  np.load(tmp_path / "two" / "features.npy"))
    assert read_manifest(tmp_path / "one") == read_manifest(tmp_path / "two")


def test_unreadable_files_are_skipped_and_listed(tracks_dir, tiny_config, tmp_path):
    (tracks_dir / "tones" / "broken.mp3").write_bytes(b"\x00not an mp3" * 10)
    report = build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1)
    assert report.summary.songs == 15
    [skipped] = report.summary.skipped
    assert skipped["song"] == "tones/broken.mp3"
    assert "broken.mp3: cannot decode audio" in skipped["reason"]
    with open(tmp_path / "ds" / "skipped.csv", newline="") as handle:
        assert [row["song"] for row in csv.DictReader(handle)] == ["tones/broken.mp3"]


def test_a_failed_rebuild_leaves_the_previous_dataset_intact(tracks_dir, tiny_config, tmp_path):
    build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1)
    before = (tmp_path / "ds" / "manifest.csv").read_bytes()
    for song in sorted((tracks_dir / "noise").iterdir())[1:]:
        song.write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="genre 'noise' has 1 usable song"):
        build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1)
    assert (tmp_path / "ds" / "manifest.csv").read_bytes() == before
    assert load_dataset(tmp_path / "ds").features.shape[0] == 45
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_genre_without_usable_songs_is_left_out_with_a_note(tracks_dir, tiny_config, tmp_path):
    for song in (tracks_dir / "noise").iterdir():
        song.write_bytes(b"garbage")
    report = build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1)
    assert report.summary.classes == ["chirps", "tones"]
    assert "genre 'noise': none of its songs could be used, left out" in report.summary.notes
    assert len(report.summary.skipped) == 5


def test_nothing_usable(tmp_path, tiny_config):
    for genre in ("a", "b"):
        (tmp_path / "t" / genre).mkdir(parents=True)
        (tmp_path / "t" / genre / "x.mp3").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="none of the 2 audio files could be used"):
        build_dataset(tmp_path / "t", out=tmp_path / "ds", config=tiny_config, workers=1)
    assert not (tmp_path / "ds").exists()


def test_load_dataset_that_does_not_exist(tmp_path):
    with pytest.raises(DatasetError, match=r"No dataset at .*nothing. Run 'genre-cnn build-dataset TRACKS_DIR"):
        load_dataset(tmp_path / "nothing")


# --- incremental rebuilds ---------------------------------------------------------------------

def test_rebuild_reuses_unchanged_songs_and_decodes_only_changes(tracks_dir, tiny_config, tmp_path):
    first = build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1)
    assert (first.summary.reused_songs, first.summary.decoded_songs) == (0, 15)
    again = build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1)
    assert (again.summary.reused_songs, again.summary.decoded_songs) == (15, 0)

    soundfile.write(tracks_dir / "tones" / "tones_1.mp3", synth_song("chirps", 7, seconds=3), 8000)  # changed
    write_tracks(tracks_dir, genres=("noise",), songs=6, seconds=3)  # rewrites noise_0..4, adds noise_5
    (tracks_dir / "chirps" / "chirps_4.mp3").unlink()  # removed
    changed = build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=2)
    assert (changed.summary.reused_songs, changed.summary.decoded_songs) == (8, 7)
    incremental = load_dataset(tmp_path / "ds")
    forced = build_dataset(tracks_dir, out=tmp_path / "forced", config=tiny_config, workers=1, force=True)
    assert forced.summary.reused_songs == 0
    reference = load_dataset(tmp_path / "forced")
    np.testing.assert_array_equal(incremental.features, reference.features)
    assert read_manifest(tmp_path / "ds") == read_manifest(tmp_path / "forced")


def test_another_feature_config_decodes_everything(tracks_dir, tiny_config, tmp_path):
    import dataclasses

    build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1)
    other = dataclasses.replace(tiny_config, n_mels=24)
    report = build_dataset(tracks_dir, out=tmp_path / "ds", config=other, workers=1)
    assert report.summary.reused_songs == 0
    assert load_dataset(tmp_path / "ds").features.shape[1] == 24
