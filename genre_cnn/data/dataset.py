"""A built dataset read back: chunks' features memory-mapped, with their songs, genres and splits."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from genre_cnn.config import FeatureConfig
from genre_cnn.data.store import DatasetDir
from genre_cnn.data.summary import SPLITS, BuildSummary
from genre_cnn.errors import DatasetError

__all__ = ["SPLITS", "DEFAULT_DATASET_DIR", "Dataset", "read_summary", "load_dataset"]

DEFAULT_DATASET_DIR = Path("data/dataset")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset written by :func:`~genre_cnn.data.build.build_dataset`, with features memory-mapped, not loaded.

    Attributes
    ----------
    path : Path
    features : np.ndarray [shape=(n_chunks, n_mels, n_frames)]
        Read-only memory map of ``features.npy``.
    labels : np.ndarray [shape=(n_chunks,), dtype=int]
        Index into ``classes`` of each chunk.
    songs, splits : np.ndarray [shape=(n_chunks,), dtype=str]
        Song (path inside the tracks folder) and split of each chunk.
    offsets : np.ndarray [shape=(n_chunks,), dtype=float]
        Start of each chunk in its song, in seconds.
    groups, folds : np.ndarray [shape=(n_chunks,), dtype=str]
        Group and fold of each chunk's song from a metadata CSV ("" when it had none).
    classes : tuple of str
    feature_config : FeatureConfig
    fingerprint : str
        Hash of the manifest and feature config, recorded with models trained on it.
    """

    path: Path
    features: np.ndarray
    labels: np.ndarray
    songs: np.ndarray
    splits: np.ndarray
    offsets: np.ndarray
    groups: np.ndarray
    folds: np.ndarray
    classes: tuple[str, ...]
    feature_config: FeatureConfig
    fingerprint: str

    def indices(self, split: str) -> np.ndarray:
        """Row numbers of the chunks in ``split``."""
        return np.flatnonzero(self.splits == split)

    def song_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Each song once, in manifest order, with the row of its first chunk.

        Returns
        -------
        songs : np.ndarray [shape=(n_songs,), dtype=str]
        first : np.ndarray [shape=(n_songs,), dtype=int]
            ``labels[first]``, ``groups[first]``... are then per song.
        """
        songs, first = np.unique(self.songs, return_index=True)
        order = np.argsort(first)
        return songs[order], first[order]

    def next_rows(self) -> np.ndarray:
        """Row of the chunk that follows each chunk in its song (one chunk hop later), -1 if none."""
        following = np.full(len(self.songs), -1, dtype=np.int64)
        hop = self.feature_config.hop_samples / self.feature_config.sr
        if len(self.songs) > 1:
            same_song = self.songs[1:] == self.songs[:-1]
            one_hop_later = np.abs(np.diff(self.offsets) - hop) < 0.5 / self.feature_config.sr + 1e-4
            linked = np.flatnonzero(same_song & one_hop_later)
            following[linked] = linked + 1
        return following


def read_summary(dataset_dir: str | os.PathLike) -> BuildSummary:
    """The :class:`BuildSummary` saved with a dataset (``summary.json``).

    Raises
    ------
    DatasetError
        Missing or damaged.
    """
    return DatasetDir(Path(dataset_dir)).read_summary()


def load_dataset(path: str | os.PathLike = DEFAULT_DATASET_DIR) -> Dataset:
    """Open a dataset folder written by :func:`~genre_cnn.data.build.build_dataset`.

    Raises
    ------
    DatasetError
        The folder or one of its files is missing or inconsistent; the message says which and
        suggests rebuilding.
    """
    path = Path(path)
    folder = DatasetDir(path)
    if not folder.exists():
        raise DatasetError(
            f"No dataset at {path}. Run 'genre-cnn build-dataset TRACKS_DIR --out {path}' first"
        )
    config = folder.read_feature_config()
    classes = folder.read_classes()
    manifest_bytes = (folder / folder.MANIFEST).read_bytes()  # read once: parsed, then hashed
    rows = folder.read_manifest(data=manifest_bytes)
    features = folder.open_features()
    if features.dtype != np.dtype(config.dtype):
        raise DatasetError(f"{path}: {folder.FEATURES} holds {features.dtype} but the feature config says "
                           f"{config.dtype}; rebuild the dataset")
    if features.shape != (len(rows), *config.input_shape):
        raise DatasetError(
            f"{path}: {folder.FEATURES} has shape {features.shape} but the manifest and feature config "
            f"expect {(len(rows), *config.input_shape)}; rebuild the dataset"
        )
    manifest = path / folder.MANIFEST
    index = {name: i for i, name in enumerate(classes)}
    try:
        labels = np.array([index[row["label"]] for row in rows], dtype=np.int64)
    except KeyError as exc:
        raise DatasetError(f"{manifest}: label {exc} is not in {folder.CLASSES}; rebuild") from None
    try:
        offsets = np.array([float(row["offset_seconds"]) for row in rows], dtype=np.float64)
    except ValueError as exc:
        raise DatasetError(f"{manifest}: is damaged ({exc}); rebuild the dataset") from None
    fingerprint = folder.fingerprint(manifest=manifest_bytes)
    return Dataset(
        path=path,
        features=features,
        labels=labels,
        songs=np.array([row["song"] for row in rows], dtype=str),
        splits=np.array([row["split"] for row in rows], dtype=str),
        offsets=offsets,
        groups=np.array([row.get("group") or "" for row in rows], dtype=str),
        folds=np.array([row.get("fold") or "" for row in rows], dtype=str),
        classes=tuple(classes),
        feature_config=config,
        fingerprint=fingerprint,
    )
