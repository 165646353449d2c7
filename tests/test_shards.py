"""Sharded builds (any scheduler, or Dask) merge into the dataset a single build makes."""

import csv

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_CLI_OPTIONS

from genre_cnn.cli import main
from genre_cnn.data.build import build_dataset
from genre_cnn.data.dataset import load_dataset, read_summary
from genre_cnn.data.shards import build_with_dask, merge_datasets, parse_shard
from genre_cnn.data.split import shard_of
from genre_cnn.errors import ConfigError, DatasetError


def rows_by_song(path):
    """Manifest rows and feature rows keyed by (song, chunk): the order of shards does not matter."""
    dataset = load_dataset(path)
    with open(path / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {(r["song"], r["chunk"]): (r["split"], r["offset_seconds"], dataset.features[i])
            for i, r in enumerate(rows)}


def assert_same_dataset(a, b):
    first, second = rows_by_song(a), rows_by_song(b)
    assert first.keys() == second.keys()
    for key in first:
        assert first[key][:2] == second[key][:2], key
        np.testing.assert_array_equal(first[key][2], second[key][2])


def test_shards_are_stable_and_cover_every_song():
    names = [f"g/song{i}.mp3" for i in range(200)]
    assignment = [shard_of(name, 4) for name in names]
    assert set(assignment) == {0, 1, 2, 3}
    assert assignment == [shard_of(name, 4) for name in names]
    assert [shard_of(name, 4) for name in names[:100]] == assignment[:100]  # independent of the others


def test_shard_by_shard_then_merge_equals_one_build(tracks_dir, tiny_config, tmp_path):
    options = dict(config=tiny_config, val_fraction=0.2, test_fraction=0.2, workers=1)
    build_dataset(tracks_dir, out=tmp_path / "whole", **options)
    for i in range(3):
        report = build_dataset(tracks_dir, out=tmp_path / "shards" / str(i), shard=(i, 3), **options)
        assert report.summary.shard == [i, 3]
    merged = merge_datasets([tmp_path / "shards" / str(i) for i in range(3)], out=tmp_path / "merged")
    assert merged.summary.songs == 15 and merged.summary.chunks == 45
    assert_same_dataset(tmp_path / "whole", tmp_path / "merged")
    whole = read_summary(tmp_path / "whole")  # the merged summary counts what one build counts
    assert read_summary(tmp_path / "merged") == merged.summary
    for field in ("classes", "songs", "chunks", "per_class", "groups", "folds", "val_fraction", "test_fraction",
                  "seed", "decoded_songs"):
        assert getattr(merged.summary, field) == getattr(whole, field), field


def test_rerunning_a_shard_after_adding_music_decodes_only_its_new_songs(tracks_dir, tiny_config, tmp_path):
    import soundfile
    from conftest import SR, synth_song

    options = dict(config=tiny_config, val_fraction=0.2, test_fraction=0.2, workers=1, shard=(0, 3))
    first = build_dataset(tracks_dir, out=tmp_path / "shard0", **options)
    added = [f"{genre}/{genre}_{i}.mp3" for genre in ("tones", "noise") for i in range(5, 8)]
    for name in added:
        genre, index = name.split("/")[0], int(name.split("_")[-1][:-4])
        soundfile.write(tracks_dir / name, synth_song(genre, index, seconds=3.0), SR, format="MP3")
    new_in_shard = [name for name in added if shard_of(name, 3) == 0]
    assert new_in_shard  # the names above put at least one new song in shard 0

    again = build_dataset(tracks_dir, out=tmp_path / "shard0", **options)

    assert again.summary.reused_songs == first.summary.songs
    assert again.summary.decoded_songs == len(new_in_shard)
    build_dataset(tracks_dir, out=tmp_path / "fresh", **options)
    assert_same_dataset(tmp_path / "fresh", tmp_path / "shard0")


def test_dask_engine_equals_one_build(tracks_dir, tiny_config, tmp_path):
    options = dict(config=tiny_config, val_fraction=0.2, test_fraction=0.2)
    build_dataset(tracks_dir, out=tmp_path / "whole", workers=1, **options)
    report = build_with_dask(tracks_dir, out=tmp_path / "dask", shards=3, scheduler="processes", **options)
    assert report.summary.songs == 15
    assert_same_dataset(tmp_path / "whole", tmp_path / "dask")


def test_cli_shards_and_merge(tracks_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for i in range(2):
        result = runner.invoke(main, ["build-dataset", str(tracks_dir), *TINY_CLI_OPTIONS, "--shard", f"{i}/2",
                                      "--out", f"shards/{i}", "-q"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["merge-datasets", "shards/0", "shards/1", "--out", "merged"])
    assert result.exit_code == 0 and result.stdout.splitlines()[-1] == "Dataset written to merged"
    assert load_dataset(tmp_path / "merged").features.shape == (45, 16, 63)
    result = runner.invoke(main, ["build-dataset", str(tracks_dir), "--shard", "2/2"])
    assert result.exit_code == 1
    assert result.output == ("Error: --shard 2/2 does not exist: shards of 2 are numbered 0 to 1; "
                             "use --shard I/N with 0 <= I < N, e.g. --shard 0/2\n")


@pytest.mark.parametrize("text", ["3", "a/b", "1/2/3"])
def test_bad_shard_text(text):
    with pytest.raises(ConfigError, match=f"shard='{text}' must look like I/N"):
        parse_shard(text)


def test_shards_of_different_builds_are_refused(tracks_dir, tiny_config, tmp_path):
    import dataclasses

    build_dataset(tracks_dir, out=tmp_path / "a", config=tiny_config, shard=(0, 2), workers=1)
    build_dataset(tracks_dir, out=tmp_path / "b", config=dataclasses.replace(tiny_config, n_mels=24),
                  shard=(1, 2), workers=1)
    with pytest.raises(DatasetError, match="made with other feature options, genres or split options"):
        merge_datasets([tmp_path / "a", tmp_path / "b"], out=tmp_path / "m")
