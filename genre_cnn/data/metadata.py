"""Datasets described by a metadata CSV (UrbanSound8K style) instead of genre folders."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Optional

from genre_cnn.data.tracks import Song, TrackList, scan_tracks
from genre_cnn.errors import DatasetError

__all__ = ["scan_metadata", "scan_labelled"]


def scan_metadata(
    metadata: str | os.PathLike,
    *,
    audio_root: Optional[str | os.PathLike] = None,
    path_column: str = "path",
    label_column: str = "label",
    fold_column: Optional[str] = None,
    group_column: Optional[str] = None,
) -> TrackList:
    """Read the songs, genres, and optional folds and groups of a metadata CSV.

    Each row names one audio file (``path_column``, relative to ``audio_root``) and its genre
    (``label_column``). A ``group_column`` (artist, album, recording id) keeps songs sharing a
    value together in one split; a ``fold_column`` gives predefined cross-validation folds.
    Files that do not exist are kept: :func:`genre_cnn.build_dataset` skips them with a reason,
    like any unreadable song.

    Parameters
    ----------
    metadata : path-like
        The CSV file (UTF-8, header row).
    audio_root : path-like, optional
        Folder the paths are relative to; default: the CSV's folder. No path may lead outside it.
    path_column, label_column : str
    fold_column, group_column : str, optional

    Returns
    -------
    TrackList
        ``root`` is the audio root; each song's ``relative`` is its normalised path inside it.

    Raises
    ------
    DatasetError
        The CSV is missing or unreadable, a column is missing, a row has an empty or escaping path
        or an empty label, a path is listed twice, or fewer than two genres are listed. The
        message names the file, the line and the fix.
    """
    metadata = Path(metadata)
    if not metadata.is_file():
        what = "is a folder" if metadata.is_dir() else "does not exist"
        raise DatasetError(f"metadata={metadata}: {what}; pass a CSV file with a header row", parameter="metadata")
    root = Path(audio_root) if audio_root is not None else metadata.parent
    if not root.is_dir():
        raise DatasetError(f"audio_root={root}: not a folder; pass the folder the CSV's paths are relative to",
                           parameter="audio_root")
    try:
        with open(metadata, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{metadata}: not a readable UTF-8 CSV file ({exc})") from None
    options = {"path_column": path_column, "label_column": label_column,
               "fold_column": fold_column, "group_column": group_column}
    for option, column in options.items():
        if column is not None and column not in header:
            raise DatasetError(
                f"{metadata}: no column {column!r} (its columns: {', '.join(header) or 'none'}); "
                f"name the right one with {option}=COLUMN", parameter=option
            )
    resolved_root = root.resolve()
    songs: list[Song] = []
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        where = f"{metadata} line {line}"
        text = (row.get(path_column) or "").strip()
        label = (row.get(label_column) or "").strip()
        if not text:
            raise DatasetError(f"{where}: empty {path_column!r}; every row needs the path of an audio file")
        if not label:
            raise DatasetError(f"{where}: empty {label_column!r} for {text}; every row needs a genre")
        path = root / text
        if Path(text).is_absolute() or not _inside(path, resolved_root):
            raise DatasetError(
                f"{where}: path {text!r} leads outside audio_root={root}; paths must be relative and inside it",
                parameter="audio_root"
            )
        relative = _resolve(path).relative_to(resolved_root).as_posix()
        if relative in seen:
            raise DatasetError(f"{where}: {text} is already listed on line {seen[relative]}; list each file once")
        seen[relative] = line
        songs.append(Song(
            path=path, relative=relative, label=label,
            group=(row.get(group_column) or "").strip() or None if group_column else None,
            fold=(row.get(fold_column) or "").strip() or None if fold_column else None,
        ))
    if fold_column is not None:
        missing = [song.relative for song in songs if song.fold is None]
        if missing:
            raise DatasetError(f"{metadata}: {len(missing)} row(s) have an empty {fold_column!r}, e.g. {missing[0]}")
    classes = tuple(sorted({song.label for song in songs}))
    if len(classes) < 2:
        found = f"only the genre {classes[0]!r}" if classes else "no rows"
        raise DatasetError(f"{metadata}: {found}; a classifier needs songs of at least two genres")
    return TrackList(root=root, songs=tuple(songs), classes=classes, notes=())


def _inside(path: Path, root: Path) -> bool:
    resolved = _resolve(path)
    return resolved == root or root in resolved.parents


def _resolve(path: Path) -> Path:
    """``path`` with links followed; a link that loops is kept by name (it is skipped later, with its reason)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # a symbolic link loop
        try:
            return path.parent.resolve() / path.name
        except (RuntimeError, OSError):
            return Path(os.path.abspath(path))


def scan_labelled(source: str | os.PathLike, **columns) -> TrackList:
    """Labelled songs from a genre folder (:func:`scan_tracks`) or a metadata CSV (:func:`scan_metadata`).

    ``columns`` (``path_column``, ``label_column``, ...) apply to a CSV only.
    """
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return scan_metadata(source, **{name: value for name, value in columns.items() if value is not None})
    return scan_tracks(source)
