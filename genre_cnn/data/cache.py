"""Reuse the songs of the previous build that did not change (same file, same feature config)."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from genre_cnn.config import FeatureConfig
from genre_cnn.data.store import DatasetDir
from genre_cnn.runtime.csvfiles import read_csv, write_csv
from genre_cnn.signal.audio import AUDIO_FIELDS

__all__ = ["file_key", "SongCache", "write_song_index", "merge_song_indexes", "song_files", "song_levels"]

_CLEANING = ("silent_chunks", "trimmed_seconds", "denoise_db")
#: Per song: what cleaning dropped, and the levels measured while it was decoded (blank in a
#: ``songs.csv`` written before they were recorded).
_STATS = (*_CLEANING, *AUDIO_FIELDS)
_COLUMNS = ("song", "path", "size", "mtime_ns", "first_row", "n_chunks", *_STATS)


def file_key(path: Path) -> Optional[tuple[str, int, int]]:
    """What identifies a file's content cheaply: its resolved path, size and modification time."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns)


class SongCache:
    """Features of unchanged songs, read from the previous dataset at ``dataset_dir``.

    Empty when ``dataset_dir`` is None (a forced rebuild), when there is no previous dataset, when
    it was made with another feature config, or when it cannot be read: then every song is decoded
    again.
    """

    def __init__(self, dataset_dir: Optional[Path], config: FeatureConfig) -> None:
        self._entries: dict[tuple, tuple[int, int, dict]] = {}
        self._features = self._offsets = None
        if dataset_dir is None:
            return
        try:
            previous = DatasetDir(dataset_dir)
            if previous.read_feature_config() != config:
                return
            features = previous.open_features()
            offsets = previous.read_offsets()
            rows = read_csv(previous / previous.SONG_INDEX)[1]
            entries = {
                (row["path"], int(row["size"]), int(row["mtime_ns"])):
                    (int(row["first_row"]), int(row["n_chunks"]),
                     {"silent_chunks": int(row["silent_chunks"]), "trimmed_seconds": float(row["trimmed_seconds"]),
                      "denoise_db": float(row["denoise_db"]), **_levels(row)})
                for row in rows
            }
        except Exception:  # anything unreadable: no reuse, a full rebuild
            return
        if len(offsets) != len(features) or features.shape[1:] != config.input_shape:
            return
        self._entries, self._features, self._offsets = entries, features, offsets

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key) -> Optional[tuple[np.ndarray, np.ndarray, dict]]:
        """``(features, offsets, stats)`` of an unchanged song, or None (also for a song of a dataset built
        before levels were recorded: decoded once more, so that the new dataset has them)."""
        hit = self._entries.get(key) if key is not None else None
        if hit is None or not all(name in hit[2] for name in AUDIO_FIELDS):
            return None
        first, count, stats = hit
        return self._features[first : first + count], self._offsets[first : first + count], dict(stats)


def write_song_index(directory: Path, rows: list[tuple[str, Optional[tuple], int, int, dict]]) -> None:
    """Write ``songs.csv``: per used song its file key, its rows in ``features.npy`` and its stats."""
    index = DatasetDir(directory) / DatasetDir.SONG_INDEX

    def cells():
        for relative, key, first_row, n_chunks, stats in rows:
            path, size, mtime = key if key is not None else ("", -1, -1)
            yield [relative, path, size, mtime, first_row, n_chunks, *(stats.get(k, "") for k in _STATS)]

    write_csv(index, _COLUMNS, cells())


def song_files(dataset_dir: str | os.PathLike) -> dict[str, Path]:
    """Each song of a dataset (its name in the manifest) and the audio file it was built from.

    Empty when the dataset has no readable ``songs.csv`` (e.g. one merged by an older version).
    """
    try:
        index = DatasetDir(dataset_dir) / DatasetDir.SONG_INDEX
        return {row["song"]: Path(row["path"]) for row in read_csv(index)[1]}
    except (OSError, KeyError, csv.Error):
        return {}


def merge_song_indexes(sources: Sequence[tuple[DatasetDir, int]], target: DatasetDir) -> None:
    """``songs.csv`` of a merged dataset: each source's index, its rows shifted past the sources before.

    ``sources`` are ``(dataset folder, number of chunks)`` in merge order.
    """
    offset = 0
    with open(target / target.SONG_INDEX, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        writer = None
        for source, n_chunks in sources:
            with open(source / source.SONG_INDEX, newline="", encoding="utf-8", errors="surrogateescape") as rows:
                reader = csv.DictReader(rows)
                if writer is None:  # a source written before levels were recorded leaves them blank
                    writer = csv.DictWriter(handle, fieldnames=_COLUMNS, restval="", extrasaction="ignore")
                    writer.writeheader()
                for row in reader:
                    row["first_row"] = str(int(row["first_row"]) + offset)
                    writer.writerow(row)
            offset += n_chunks


def song_levels(dataset_dir: str | os.PathLike) -> Optional[dict[str, dict]]:
    """Each song of a dataset and the audio levels measured when it was built
    (:data:`~genre_cnn.signal.audio.AUDIO_FIELDS`: duration, sample rate, channels, loudness, clipping, silence).

    None when any song has none (a dataset built before they were recorded, or without a readable
    ``songs.csv``): then whoever needs them decodes the songs again.
    """
    try:
        levels = {row["song"]: _levels(row) for row in read_csv(DatasetDir(dataset_dir) / DatasetDir.SONG_INDEX)[1]}
    except (OSError, KeyError, ValueError, csv.Error):
        return None
    return levels if levels and all(levels.values()) else None


def _levels(row: dict) -> dict:
    """The levels of one ``songs.csv`` row, or {} when it has none."""
    if any(not row.get(name) for name in AUDIO_FIELDS):
        return {}
    return {name: int(row[name]) if name in ("sample_rate", "channels") else float(row[name]) for name in AUDIO_FIELDS}
