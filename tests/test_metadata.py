"""Datasets described by a metadata CSV: columns, groups that never straddle splits, safe paths."""

import csv

import pytest
from click.testing import CliRunner
from conftest import TINY_CLI_OPTIONS, write_tracks

from genre_cnn.cli import main
from genre_cnn.data.build import build_dataset
from genre_cnn.data.dataset import load_dataset
from genre_cnn.data.metadata import scan_labelled, scan_metadata
from genre_cnn.data.split import split_songs
from genre_cnn.errors import DatasetError


def write_csv(path, rows, header=("file", "genre", "artist", "fold")):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def described(tmp_path):
    """The synthetic songs in flat audio/ folder, with a CSV naming their genre, artist and fold."""
    tracks = write_tracks(tmp_path / "audio", songs=6, seconds=2)
    rows = []
    for song in sorted(tracks.rglob("*.mp3")):
        genre, index = song.parent.name, int(song.stem.split("_")[1])
        rows.append([song.relative_to(tracks).as_posix(), genre, f"{genre}-artist{index // 2}", index % 3 + 1])
    return write_csv(tmp_path / "meta.csv", rows), tracks


def test_csv_columns_become_songs_with_groups_and_folds(described):
    meta, audio = described
    tracks = scan_metadata(meta, audio_root=audio, path_column="file", label_column="genre",
                           group_column="artist", fold_column="fold")
    assert tracks.classes == ("chirps", "noise", "tones") and len(tracks.songs) == 18
    song = next(s for s in tracks.songs if s.relative == "tones/tones_3.mp3")
    assert (song.label, song.group, song.fold) == ("tones", "tones-artist1", "1")
    assert song.path == audio / "tones" / "tones_3.mp3"


def test_songs_of_one_group_never_straddle_splits():
    labels = ["a"] * 12 + ["b"] * 12
    groups = [f"a{i // 3}" for i in range(12)] + [f"b{i // 2}" for i in range(12)]
    for seed in range(20):
        splits = split_songs(labels, groups=groups, val_fraction=0.25, test_fraction=0.25, seed=seed)
        for group in set(groups):
            assert len({split for split, g in zip(splits, groups) if g == group}) == 1
        assert {"train", "val", "test"} <= set(splits[:12]) and {"train", "val", "test"} <= set(splits[12:])


def test_a_genre_needs_enough_groups_not_just_songs():
    with pytest.raises(DatasetError, match="genre 'a' has 1 usable groups; .* needs at least 3"):
        split_songs(["a"] * 5 + ["b"] * 5, groups=["x"] * 5 + list("vwxyz"), seed=0)


def test_build_dataset_from_csv_keeps_groups_together_and_records_folds(described, tmp_path, tiny_config):
    meta, audio = described
    tracks = scan_metadata(meta, audio_root=audio, path_column="file", label_column="genre",
                           group_column="artist", fold_column="fold")
    report = build_dataset(tracks, out=tmp_path / "ds", config=tiny_config, workers=1, val_fraction=0.3,
                           test_fraction=0.3)
    dataset = load_dataset(tmp_path / "ds")
    assert report.summary.groups == 9 and report.summary.folds == ["1", "2", "3"]
    for group in set(dataset.groups):
        assert len(set(dataset.splits[dataset.groups == group])) == 1
    assert set(dataset.folds) == {"1", "2", "3"} and dataset.classes == ("chirps", "noise", "tones")
    assert dataset.songs[0] == "chirps/chirps_0.mp3"


def test_missing_file_in_the_csv_is_skipped_with_its_reason(described, tmp_path, tiny_config):
    meta, audio = described
    (audio / "noise" / "noise_5.mp3").unlink()
    tracks = scan_metadata(meta, audio_root=audio, path_column="file", label_column="genre")
    report = build_dataset(tracks, out=tmp_path / "ds", config=tiny_config, workers=1)
    assert [entry["song"] for entry in report.summary.skipped] == ["noise/noise_5.mp3"]
    assert report.summary.songs == 17


@pytest.mark.parametrize("text", ["../secret.mp3", "tones/../../secret.mp3", "/etc/passwd"])
def test_paths_leading_outside_the_audio_root_are_refused(tmp_path, text):
    (tmp_path / "audio").mkdir()
    meta = write_csv(tmp_path / "audio" / "meta.csv", [["a.mp3", "rock"], [text, "jazz"]], header=("path", "label"))
    with pytest.raises(DatasetError, match=r"meta.csv line 3: path .* leads outside audio_root=.*; "
                                           r"paths must be relative and inside it"):
        scan_metadata(meta)


def test_csv_mistakes_name_the_file_line_and_fix(tmp_path):
    meta = write_csv(tmp_path / "m.csv", [["a.mp3", "rock"], ["b.mp3", ""]], header=("path", "label"))
    with pytest.raises(DatasetError, match=r"m.csv line 3: empty 'label' for b.mp3"):
        scan_metadata(meta)
    with pytest.raises(DatasetError, match=r"no column 'genre' \(its columns: path, label\); name the right one "
                                           r"with label_column=COLUMN"):
        scan_metadata(meta, label_column="genre")
    twice = write_csv(tmp_path / "twice.csv", [["a.mp3", "rock"], ["./a.mp3", "jazz"]], header=("path", "label"))
    with pytest.raises(DatasetError, match=r"line 3: ./a.mp3 is already listed on line 2"):
        scan_metadata(twice)
    with pytest.raises(DatasetError, match=r"metadata=.*nope.csv: does not exist"):
        scan_metadata(tmp_path / "nope.csv")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DatasetError, match=r"bin.csv: not a readable UTF-8 CSV"):
        scan_metadata(tmp_path / "bin.csv")


def test_scan_labelled_takes_a_folder_or_a_csv(described):
    meta, audio = described
    assert len(scan_labelled(audio).songs) == 18
    assert len(scan_labelled(meta, path_column="file", label_column="genre").songs) == 18


def test_build_dataset_command_with_metadata(described, tmp_path):
    meta, audio = described
    runner = CliRunner()
    result = runner.invoke(main, ["build-dataset", "--metadata", str(meta), "--audio-root", str(audio),
                                  "--path-column", "file", "--label-column", "genre", "--group-column", "artist",
                                  "--out", str(tmp_path / "ds"), *TINY_CLI_OPTIONS, "-q"])
    assert result.exit_code == 0, result.output
    assert set(load_dataset(tmp_path / "ds").groups) == {f"{g}-artist{i}" for g in ("chirps", "noise", "tones")
                                                          for i in range(3)}
    both = runner.invoke(main, ["build-dataset", str(audio), "--metadata", str(meta)])
    assert both.exit_code == 2 and "give one of TRACKS_DIR" in both.output and "not TRACKS_DIR and --metadata" in both.output
    stray = runner.invoke(main, ["build-dataset", str(audio), "--group-column", "artist"])
    assert stray.exit_code == 2 and "--group-column only apply with --metadata" in stray.output
    bad = runner.invoke(main, ["build-dataset", "--metadata", str(meta)])
    assert bad.exit_code == 1 and "no column 'path'" in bad.output
