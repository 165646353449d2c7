"""The songs of a tracks folder: one sub-folder of audio files per genre."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterator, Optional

from genre_cnn.errors import DatasetError
from genre_cnn.signal.audio import is_audio_file

__all__ = ["Song", "TrackList", "scan_tracks"]


@dataclasses.dataclass(frozen=True)
class Song:
    """One audio file and its genre. ``relative`` is its path inside the tracks folder.

    ``group`` (artist, album, recording) and ``fold`` come from a metadata CSV, if it has them.
    """

    path: Path
    relative: str
    label: str
    group: Optional[str] = None
    fold: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class TrackList:
    """What :func:`scan_tracks` found: the songs, the genres and notes about ignored folders."""

    root: Path
    songs: tuple[Song, ...]
    classes: tuple[str, ...]
    notes: tuple[str, ...]


def scan_tracks(root: str | os.PathLike) -> TrackList:
    """Find the songs of ``root/<genre>/**``.

    Every visible sub-folder holding at least one audio file (searched recursively, case-insensitive
    extensions, hidden files and folders ignored) is a genre named after the folder. Folders without
    audio (like ``licenses/``) are skipped with a note.

    Raises
    ------
    DatasetError
        ``root`` is not a folder, or fewer than two genres hold audio.
    """
    root = Path(root)
    if not root.is_dir():
        what = "is a file" if root.exists() else "does not exist"
        raise DatasetError(f"{root}: {what}; pass a folder with one sub-folder of songs per genre")
    songs: list[Song] = []
    classes: list[str] = []
    notes: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        unreadable: list[OSError] = []
        found = sorted(_audio_files(folder, errors=unreadable))
        notes.extend(f"{error.filename}: cannot be read ({(error.strerror or str(error)).lower()}), skipped"
                     for error in unreadable)
        if not found:
            notes.append(f"{folder}: no audio files, not a genre (skipped)")
            continue
        classes.append(folder.name)
        songs.extend(Song(path, path.relative_to(root).as_posix(), folder.name) for path in found)
    loose = [p.name for p in root.iterdir() if p.is_file() and is_audio_file(p)]
    if loose:
        notes.append(f"{root}: {len(loose)} audio file(s) outside any genre folder ignored")
    if len(classes) < 2:
        found_text = f"only the genre {classes[0]!r}" if classes else "no genre folder with audio"
        raise DatasetError(
            f"{root}: found {found_text}; a classifier needs at least two genres, "
            f"each a sub-folder of songs (e.g. {root}/rock/*.mp3, {root}/jazz/*.mp3)"
        )
    return TrackList(root=root, songs=tuple(songs), classes=tuple(classes), notes=tuple(notes))


def _audio_files(folder: Path, *, errors: list) -> Iterator[Path]:
    """Audio files below ``folder``; sub-folders that cannot be listed are appended to ``errors``."""
    for directory, subdirs, names in os.walk(folder, followlinks=False, onerror=errors.append):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        for name in names:
            path = Path(directory) / name
            if is_audio_file(path):
                yield path
