"""Which songs train, validate and test (by song or by group, stratified by genre), and which shard builds a song."""

from __future__ import annotations

import zlib
from typing import Optional, Sequence

import numpy as np

from genre_cnn.errors import ConfigError, DatasetError

__all__ = ["split_songs", "check_fractions", "check_shard", "shard_of"]


def split_songs(
    labels: Sequence[str],
    *,
    groups: Optional[Sequence[Optional[str]]] = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> np.ndarray:
    """Assign every song to ``"train"``, ``"val"`` or ``"test"``, stratified by genre.

    Within each genre the songs are shuffled with ``seed``; ``round(n * fraction)`` of them go to
    test and to validation, at least one each when the fraction is above 0, and at least one song
    stays for training. Chunks are cut only afterwards, so no song can straddle two splits.

    With ``groups``, the same is done with groups instead of songs: all songs of a group go to
    one split, and a group counts for the genre most of its songs have.

    Parameters
    ----------
    labels : sequence of str
        Genre of each song.
    groups : sequence of str or None, optional
        Group of each song (artist, album...); None or "" makes a song its own group.
    val_fraction, test_fraction : float
        Share of each genre's songs held out; 0 disables that split.
    seed : int
        Seed of the shuffle; the same songs and seed give the same split.

    Returns
    -------
    splits : np.ndarray [shape=(len(labels),), dtype=str]

    Raises
    ------
    ConfigError
        A fraction is out of range.
    DatasetError
        A genre has too few songs for the requested splits.
    """
    check_fractions(val_fraction, test_fraction)
    labels = np.asarray(labels, dtype=str)
    splits = np.full(len(labels), "train", dtype="<U5")
    units, unit_labels = _split_units(labels, groups)
    rng = np.random.default_rng(seed)
    needed = 1 + (val_fraction > 0) + (test_fraction > 0)
    what = "groups" if groups is not None else "song(s)"
    for genre in sorted(set(unit_labels.tolist())):
        members = np.flatnonzero(unit_labels == genre)
        n = len(members)
        if n < needed:
            raise DatasetError(
                f"genre {genre!r} has {n} usable {what}; with val_fraction={val_fraction:g} and "
                f"test_fraction={test_fraction:g} every genre needs at least {needed}. "
                "Add songs to it, remove its folder, or set the fractions to 0"
            )
        n_test = _held_out(n, test_fraction)
        n_val = _held_out(n, val_fraction)
        while n - n_test - n_val < 1:  # keep one unit to train on
            if n_val > 1 and n_val >= n_test:
                n_val -= 1
            else:
                n_test -= 1
        shuffled = rng.permutation(members)
        splits[np.isin(units, shuffled[:n_test])] = "test"
        splits[np.isin(units, shuffled[n_test : n_test + n_val])] = "val"
    return splits


def _split_units(labels: np.ndarray, groups) -> tuple[np.ndarray, np.ndarray]:
    """Unit number of each song (its group's, or its own) and the genre of each unit (majority)."""
    if groups is None:
        return np.arange(len(labels)), labels
    keys = [f"group:{g}" if g else f"song:{i}" for i, g in enumerate(groups)]
    names = list(dict.fromkeys(keys))  # first-seen order: deterministic
    number = {name: i for i, name in enumerate(names)}
    units = np.array([number[key] for key in keys], dtype=np.int64)
    unit_labels = []
    for unit in range(len(names)):
        values, counts = np.unique(labels[units == unit], return_counts=True)
        unit_labels.append(values[np.argmax(counts)])
    return units, np.array(unit_labels, dtype=str)


def _held_out(n: int, fraction: float) -> int:
    return 0 if fraction == 0 else max(1, round(n * fraction))


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ConfigError(f"{name}={value!r} must be in [0, 1)", parameter=name)
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"val_fraction={val_fraction:g} + test_fraction={test_fraction:g} must be below 1 "
            "so that songs are left to train on", parameter="val_fraction"
        )


def check_shard(shard: tuple[int, int]) -> tuple[int, int]:
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"shard={index}/{count} does not exist: shards of {count} are numbered 0 to "
                          f"{max(count - 1, 0)}; use shard=I/N with 0 <= I < N, e.g. shard=0/{max(count, 1)}",
                          parameter="shard")
    return index, count


def shard_of(relative_path: str, count: int) -> int:
    """The shard of a song: a stable hash of its path inside the tracks folder, modulo ``count``.

    Adding or removing songs never moves the others to another shard.
    """
    return zlib.crc32(relative_path.encode("utf-8", errors="surrogateescape")) % count
