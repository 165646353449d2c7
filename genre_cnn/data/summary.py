"""What a build wrote, as a type: the content of a dataset's ``summary.json``."""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Optional, Sequence

from genre_cnn.errors import DatasetError

__all__ = ["SPLITS", "BuildSummary", "count_songs_and_chunks"]

SPLITS = ("train", "val", "test")


def count_songs_and_chunks(classes: Sequence[str], songs: Iterable[tuple[str, str, int]]) -> dict:
    """``{genre: {split: {"songs": n, "chunks": n}}}`` from ``(genre, split, n_chunks)`` per song."""
    per_class = {name: {split: {"songs": 0, "chunks": 0} for split in SPLITS} for name in classes}
    for genre, split, n_chunks in songs:
        per_class[genre][split]["songs"] += 1
        per_class[genre][split]["chunks"] += int(n_chunks)
    return per_class


@dataclasses.dataclass(frozen=True)
class BuildSummary:
    """What :func:`~genre_cnn.data.build.build_dataset` (or a merge of shards) wrote.

    Read by attribute (``summary.songs``); saved as ``summary.json``.

    Attributes
    ----------
    tracks_dir : str
    classes : list of str
    songs, chunks : int
        Used songs and their chunks.
    per_class : dict
        ``{genre: {split: {"songs": n, "chunks": n}}}``.
    skipped : list of dict
        ``{"song": path, "reason": why}`` for each file that could not be used.
    notes : list of str
    val_fraction, test_fraction : float
    seed : int
    groups : int
        Distinct groups (artists, sources) among the used songs.
    folds : list of str
        Fold names from a metadata CSV.
    silent_chunks_dropped : int
    trimmed_seconds : float
    denoise_mean_db : float or None
    reused_songs, decoded_songs : int
        Songs taken unchanged from the previous build, and songs decoded.
    shard : [index, count] or None
    """

    tracks_dir: str
    classes: list
    songs: int
    chunks: int
    per_class: dict
    skipped: list
    notes: list
    val_fraction: float
    test_fraction: float
    seed: int
    groups: int = 0
    folds: list = dataclasses.field(default_factory=list)
    silent_chunks_dropped: int = 0
    trimmed_seconds: float = 0.0
    denoise_mean_db: Optional[float] = None
    reused_songs: int = 0
    decoded_songs: int = 0
    shard: Optional[list] = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "the dataset summary") -> "BuildSummary":
        """Read the content of ``summary.json``; keys this version does not know are ignored.

        Raises
        ------
        DatasetError
            Not an object, or a required key is missing.
        """
        if not isinstance(data, dict):
            raise DatasetError(f"{where}: is damaged (not a JSON object); rebuild the dataset")
        known = {field.name for field in dataclasses.fields(cls)}
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise DatasetError(f"{where}: is damaged (no {', '.join(missing)}); rebuild the dataset")
        return cls(**{key: value for key, value in data.items() if key in known})

    @classmethod
    def merge(cls, summaries: Sequence["BuildSummary"], *, sources: Sequence[str], groups: int,
              folds: list) -> "BuildSummary":
        """One summary for shards built with the same options and merged in this order.

        Counts add up; ``groups`` and ``folds`` are given, because a group can straddle shards.
        """
        first = summaries[0]
        per_class = count_songs_and_chunks(first.classes, ())
        for summary in summaries:
            for genre, splits in summary.per_class.items():
                for split, counts in splits.items():
                    per_class[genre][split]["songs"] += counts["songs"]
                    per_class[genre][split]["chunks"] += counts["chunks"]
        return cls(
            tracks_dir=first.tracks_dir, classes=list(first.classes),
            songs=sum(s.songs for s in summaries), chunks=sum(s.chunks for s in summaries), per_class=per_class,
            skipped=[item for s in summaries for item in s.skipped],
            notes=sorted({note for s in summaries for note in s.notes})
            + [f"merged from {len(sources)} shard(s): " + ", ".join(map(str, sources))],
            val_fraction=first.val_fraction, test_fraction=first.test_fraction, seed=first.seed,
            groups=groups, folds=folds,
            silent_chunks_dropped=sum(s.silent_chunks_dropped for s in summaries),
            trimmed_seconds=round(sum(s.trimmed_seconds for s in summaries), 3),
            denoise_mean_db=first.denoise_mean_db,
            reused_songs=sum(s.reused_songs for s in summaries),
            decoded_songs=sum(s.decoded_songs for s in summaries),
            shard=None,
        )

    def same_split_options(self, other: "BuildSummary") -> bool:
        return (self.val_fraction, self.test_fraction, self.seed) == (other.val_fraction, other.test_fraction,
                                                                      other.seed)
