"""A dataset from a music library's own genre tags: ``build-dataset --from-tags LIBRARY``."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterable, Optional

from genre_cnn.config import FeatureConfig
from genre_cnn.data.build import BuildReport, build_dataset
from genre_cnn.data.dataset import DEFAULT_DATASET_DIR
from genre_cnn.data.tracks import Song, TrackList
from genre_cnn.errors import DatasetError, TagError
from genre_cnn.inference.prediction import expand_paths
from genre_cnn.library.genres import GenreMap, GenreTally, tally_genres
from genre_cnn.library.tags import read_tags, supports_tags

__all__ = ["SPLIT_UNITS", "DEFAULT_MIN_SONGS", "TaggedLibrary", "TaggedBuild", "scan_tagged", "dataset_from_tags"]

#: What keeps songs together in one split: the artist tag (songs without one: their folder), the
#: album folder, or nothing (each song on its own).
SPLIT_UNITS = ("artist", "folder", "song")
#: Genres with fewer songs are left out of the dataset (and listed).
DEFAULT_MIN_SONGS = 5


@dataclasses.dataclass(frozen=True)
class TaggedLibrary:
    """The labelled songs of a library and what became of every tag value.

    Attributes
    ----------
    tracks : TrackList
        The songs whose tag maps to a kept genre, with their split group.
    tally : GenreTally
        Genres kept, merged and left out; ignored values; untagged songs.
    unreadable : tuple of (Path, str)
        Files whose tags could not be read, with the reason.
    unsupported : int
        Audio files of a format whose tags are not read (aiff, au...).
    """

    tracks: TrackList
    tally: GenreTally
    unreadable: tuple[tuple[Path, str], ...]
    unsupported: int


@dataclasses.dataclass(frozen=True)
class TaggedBuild:
    """What :func:`dataset_from_tags` did: the library's labels and the dataset built from them."""

    library: TaggedLibrary
    report: BuildReport


def scan_tagged(
    library: str | os.PathLike,
    *,
    genre_map: Optional[GenreMap] = None,
    min_songs: int = DEFAULT_MIN_SONGS,
    split_by: str = "artist",
    progress: Optional[Callable[[Iterable], Iterable]] = None,
) -> TaggedLibrary:
    """Label every song below ``library`` with its own genre tag, normalised through ``genre_map``.

    A multi-valued tag gives the first value that maps to a genre.

    Parameters
    ----------
    library : path-like
        A folder, searched recursively (hidden files and folders skipped).
    genre_map : GenreMap, optional
        Default :meth:`GenreMap.builtin`.
    min_songs : int
        Genres with fewer songs are left out.
    split_by : {"artist", "folder", "song"}
        What stays together in one split (:data:`SPLIT_UNITS`).
    progress : callable, optional
        Wraps the iterable of files, e.g. a tqdm progress bar factory.

    Raises
    ------
    DatasetError
        ``library`` is not a folder, a bad option, or fewer than two genres are kept.
    """
    root = Path(library)
    if not root.is_dir():
        what = "is a file" if root.exists() else "does not exist"
        raise DatasetError(f"library={root}: {what}; pass the folder of your music library", parameter="library")
    if split_by not in SPLIT_UNITS:
        raise DatasetError(f"split_by={split_by!r} must be one of {', '.join(SPLIT_UNITS)}", parameter="split_by")
    genre_map = GenreMap.builtin() if genre_map is None else genre_map
    files = list(expand_paths([root]))
    tagged, values, unreadable, unsupported = [], [], [], 0
    for path in (progress or (lambda items: items))(files):
        if not supports_tags(path):
            unsupported += 1
            continue
        try:
            tags = read_tags(path)
        except TagError as exc:
            unreadable.append((path, str(exc)))
            continue
        tagged.append((path, tags.artist))
        values.append(list(tags.genres))
    genres, tally = tally_genres(values, genre_map, min_songs=min_songs)
    songs = [Song(path, path.relative_to(root).as_posix(), genre, group=_group(path, artist, root, split_by))
             for (path, artist), genre in zip(tagged, genres) if genre is not None]
    classes = tuple(sorted({song.label for song in songs}))
    if len(classes) < 2:
        raise DatasetError(
            f"library={root}: the tags give {len(classes)} genre(s) with at least min_songs={min_songs} songs "
            f"({len(files)} audio files, {tally.untagged} without a genre tag); a classifier needs two: "
            "tag more songs, lower that threshold, or map more tag values with a genre map", parameter="library")
    notes = tuple(f"{path}: {reason}" for path, reason in unreadable)
    tracks = TrackList(root=root, songs=tuple(sorted(songs, key=lambda song: song.relative)), classes=classes,
                       notes=notes)
    return TaggedLibrary(tracks, tally, tuple(unreadable), unsupported)


def _group(path: Path, artist: Optional[str], root: Path, split_by: str) -> Optional[str]:
    folder = "folder:" + path.parent.relative_to(root).as_posix()
    if split_by == "artist":
        return "artist:" + artist.casefold() if artist else folder
    return folder if split_by == "folder" else None


def dataset_from_tags(
    library: str | os.PathLike,
    *,
    out: str | os.PathLike = DEFAULT_DATASET_DIR,
    genre_map: Optional[GenreMap] = None,
    min_songs: int = DEFAULT_MIN_SONGS,
    split_by: str = "artist",
    config: FeatureConfig = FeatureConfig(),
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    seed: int = 0,
    workers: Optional[int] = None,
    force: bool = False,
    progress: Optional[Callable[[Iterable], Iterable]] = None,
) -> TaggedBuild:
    """Build a dataset from a library labelled by its own genre tags (:func:`scan_tagged`).

    The songs are then decoded, chunked, featurised and split exactly as
    :func:`genre_cnn.data.build.build_dataset` does, with one artist's songs (by default) never
    in two splits. Parameters not listed here are those of :func:`scan_tagged` and
    :func:`genre_cnn.data.build.build_dataset`.

    Returns
    -------
    TaggedBuild
    """
    labelled = scan_tagged(library, genre_map=genre_map, min_songs=min_songs, split_by=split_by, progress=progress)
    report = build_dataset(labelled.tracks, out=out, config=config, val_fraction=val_fraction,
                           test_fraction=test_fraction, seed=seed, workers=workers, force=force, progress=progress)
    return TaggedBuild(labelled, report)
