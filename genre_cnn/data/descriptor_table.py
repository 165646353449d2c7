"""The descriptor table (``genre-cnn features``): one CSV row of handcrafted descriptors per song."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from genre_cnn.data.metadata import scan_labelled
from genre_cnn.errors import AudioDecodeError, ConfigError
from genre_cnn.runtime.csvfiles import read_csv, write_csv
from genre_cnn.runtime.files import atomic_file
from genre_cnn.signal.descriptors import DESCRIPTOR_VERSION, describe_songs, descriptor_columns

__all__ = ["write_descriptor_table", "read_descriptor_table", "descriptor_table_version", "descriptor_table_groups"]

#: The table's last column: which computation of the descriptors made it.
VERSION_COLUMN = "descriptor_version"
#: Each song's group (its artist), after ``genre``: only in a table made from a metadata CSV with a group column.
GROUP_COLUMN = "group"


def write_descriptor_table(
    tracks_dir: str | os.PathLike,
    *,
    out: str | os.PathLike,
    workers: Optional[int] = None,
    progress: Optional[Callable[[Iterable], Iterable]] = None,
    audio_root: Optional[str | os.PathLike] = None,
    path_column: Optional[str] = None,
    label_column: Optional[str] = None,
    group_column: Optional[str] = None,
) -> tuple[Path, int, list[tuple[str, str]]]:
    """Describe every song of ``tracks_dir/<genre>/`` (or of a metadata CSV) into a CSV: ``song``, ``genre``,
    ``group`` (with ``group_column``), the columns, ``descriptor_version``.

    Parameters
    ----------
    tracks_dir : path-like
        A genre folder, or a metadata CSV (:func:`genre_cnn.data.metadata.scan_metadata`).
    audio_root, path_column, label_column, group_column : optional
        For a CSV: as in :func:`~genre_cnn.data.metadata.scan_metadata`. With ``group_column`` (e.g. the
        artist) the table keeps each song's group, and ``genre-cnn baseline`` holds out whole groups.

    Returns
    -------
    (path, rows written, skipped files with their reasons)
    """
    columns = dict(audio_root=audio_root, path_column=path_column, label_column=label_column, group_column=group_column)
    if Path(tracks_dir).suffix.lower() != ".csv":
        for name, value in columns.items():
            if value is not None:
                raise ConfigError(f"{name}={str(value)!r} only applies to a metadata CSV, and {tracks_dir} is a genre "
                                  "folder; leave it out, or give the CSV", parameter=name)
    tracks = scan_labelled(tracks_dir, **columns)
    out = Path(out)
    paths = [song.path for song in tracks.songs]
    rows, skipped = [], []
    for song, outcome in zip(tracks.songs, describe_songs(paths, workers=workers, progress=progress)):
        if isinstance(outcome, str):
            skipped.append((song.relative, outcome))
        else:
            rows.append({"song": song.relative, "genre": song.label, GROUP_COLUMN: song.group or "", **outcome})
    if not rows:
        raise AudioDecodeError(f"{tracks.root}: none of the {len(paths)} audio files could be described")
    out.parent.mkdir(parents=True, exist_ok=True)
    grouped = any(song.group for song in tracks.songs)
    header = ["song", "genre", *([GROUP_COLUMN] if grouped else []), *descriptor_columns(), VERSION_COLUMN]
    with atomic_file(out) as partial:
        write_csv(partial, header, ([row.get(column, DESCRIPTOR_VERSION) for column in header] for row in rows))
    return out, len(rows), skipped


def descriptor_table_version(path: str | os.PathLike) -> int:
    """Which computation of the descriptors made the table (:data:`~genre_cnn.signal.descriptors.DESCRIPTOR_VERSION`;
    1 for a table written before the version was recorded)."""
    fieldnames, rows = read_csv(Path(path))
    if VERSION_COLUMN not in fieldnames or not rows:
        return 1
    try:
        return int(rows[0][VERSION_COLUMN])
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: its {VERSION_COLUMN} is not a number; make the table again with "
                          "'genre-cnn features'") from None


def read_descriptor_table(path: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """Read a table written by :func:`write_descriptor_table`.

    Returns
    -------
    songs : list of str
    genres : np.ndarray of str
    values : np.ndarray [shape=(n_songs, n_columns), dtype=float64]
        NaN where a value is missing.
    columns : list of str
    """
    path = Path(path)
    try:
        fieldnames, rows = read_csv(path)
        columns = [c for c in fieldnames if c not in ("song", "genre", GROUP_COLUMN, VERSION_COLUMN)]
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; make it with 'genre-cnn features TRACKS_DIR --out {path}'") from None
    if not rows or "genre" not in rows[0] or not columns:
        raise ConfigError(f"{path}: not a descriptor table (needs song, genre and numeric columns); "
                          "make it with 'genre-cnn features'")
    try:
        values = np.array([[float(row[c]) if row[c] not in ("", None) else np.nan for c in columns]
                           for row in rows])
    except ValueError as exc:
        raise ConfigError(f"{path}: a value is not a number ({exc})") from None
    return [row["song"] for row in rows], np.array([row["genre"] for row in rows]), values, columns


def descriptor_table_groups(path: str | os.PathLike) -> Optional[np.ndarray]:
    """Each row's group (its artist; the song itself where a row has none), or None for a table without groups."""
    fieldnames, rows = read_csv(Path(path))
    if GROUP_COLUMN not in fieldnames:
        return None
    return np.array([row[GROUP_COLUMN] or row["song"] for row in rows])
