"""A dataset folder on disk: the one place that knows its file names and their formats.

Builds, shard merges and every reader go through :class:`DatasetDir`; the song index that lets a
rebuild reuse unchanged songs (``songs.csv``) has its format in :mod:`genre_cnn.data.cache`, its
name here.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from genre_cnn.config import FeatureConfig, check_classes, read_json, write_json
from genre_cnn.data.summary import SPLITS, BuildSummary
from genre_cnn.errors import ConfigError, DatasetError
from genre_cnn.runtime.csvfiles import read_csv, write_csv
from genre_cnn.runtime.files import FolderKind
from genre_cnn.signal.logmel import mel_filterbank

__all__ = ["DatasetDir", "DATASET_FOLDER", "MANIFEST_COLUMNS"]

MANIFEST_COLUMNS = ("song", "label", "chunk", "offset_seconds", "split", "group", "fold")
_REQUIRED_COLUMNS = {"song", "label", "offset_seconds", "split"}  # group, fold: datasets of older versions lack them


@dataclasses.dataclass(frozen=True)
class DatasetDir:
    """A dataset folder: where each of its files lives and how each is written and read.

    Writers use it on the temporary folder of an atomic build; readers on the finished one.
    Every reading method raises :class:`~genre_cnn.errors.DatasetError` naming the file and the fix.

    Parameters
    ----------
    path : Path
    """

    path: Path

    FEATURES = "features.npy"  #: float32 (or float16) log-mel chunks, (n_chunks, n_mels, n_frames)
    MANIFEST = "manifest.csv"  #: one row per chunk: MANIFEST_COLUMNS
    FEATURE_CONFIG = "feature_config.json"
    CLASSES = "classes.json"
    SUMMARY = "summary.json"  #: a BuildSummary
    FILTERBANK = "mel_filterbank.npy"
    SKIPPED = "skipped.csv"  #: song, reason
    SONG_INDEX = "songs.csv"  #: format in genre_cnn.data.cache
    OFFSETS = "chunk_offsets.npy"  #: each chunk's first sample in its song (int64)
    BACKBONE_CACHE = "musicnn"  #: the musicnn patches and embeddings of the dataset's songs

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def exists(self) -> bool:
        """Whether a dataset was written here (its manifest is present)."""
        return (self.path / self.MANIFEST).is_file()

    # --- writing -------------------------------------------------------------------------------
    def write_manifest(self, rows: Iterable[Sequence]) -> None:
        """``manifest.csv`` from rows of :data:`MANIFEST_COLUMNS` values."""
        write_csv(self.path / self.MANIFEST, MANIFEST_COLUMNS, rows)

    def write_skipped(self, skipped: Iterable[tuple[str, str]]) -> None:
        """``skipped.csv``: each file that could not be used and why."""
        write_csv(self.path / self.SKIPPED, ["song", "reason"], skipped)

    def write_config(self, config: FeatureConfig, classes: Sequence[str]) -> None:
        """The feature config, its mel filterbank (so readers need no librosa) and the genres."""
        write_json(self.path / self.FEATURE_CONFIG, config.to_dict())
        np.save(self.path / self.FILTERBANK, mel_filterbank(config))
        write_json(self.path / self.CLASSES, list(classes))

    def write_offsets(self, offsets: np.ndarray) -> None:
        np.save(self.path / self.OFFSETS, np.asarray(offsets, dtype=np.int64))

    def write_summary(self, summary: BuildSummary) -> None:
        write_json(self.path / self.SUMMARY, summary.to_dict())

    def write_concatenated(self, name: str, sources: Sequence["DatasetDir"]) -> None:
        """The CSV file ``name`` as the rows of the same file in each of ``sources``, in order."""
        with open(self.path / name, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
            writer = None
            for source in sources:
                with open(source / name, newline="", encoding="utf-8", errors="surrogateescape") as rows:
                    reader = csv.reader(rows)
                    header = next(reader)
                    if writer is None:
                        writer = csv.writer(handle)
                        writer.writerow(header)
                    writer.writerows(reader)

    # --- reading -------------------------------------------------------------------------------
    def read_feature_config(self) -> FeatureConfig:
        path = self.path / self.FEATURE_CONFIG
        try:
            return FeatureConfig.from_dict(read_json(path, what="the feature config", error=DatasetError,
                                                     fix="rebuild the dataset"))
        except ConfigError as exc:
            raise DatasetError(f"{path}: {exc}; rebuild the dataset") from None

    def read_classes(self) -> list[str]:
        path = self.path / self.CLASSES
        try:
            return check_classes(read_json(path, what="the class list", error=DatasetError, fix="rebuild the dataset"))
        except ConfigError as exc:
            raise DatasetError(f"{path}: is damaged ({exc}); rebuild the dataset") from None

    def read_summary(self) -> BuildSummary:
        path = self.path / self.SUMMARY
        data = read_json(path, what="the dataset summary", error=DatasetError, fix="rebuild the dataset", expect=dict)
        return BuildSummary.from_dict(data, where=str(path))

    def read_manifest(self, *, data: Optional[bytes] = None) -> list[dict]:
        """The rows of ``manifest.csv`` (song names unescaped, see :mod:`genre_cnn.runtime.csvfiles`), checked.

        ``data`` is the file's content when the caller has read it already (see :meth:`fingerprint`).
        """
        path = self.path / self.MANIFEST
        data = path.read_bytes() if data is None else data
        try:
            fieldnames, rows = read_csv(data)
        except csv.Error as exc:
            raise DatasetError(f"{path}: is damaged ({exc}); rebuild the dataset") from None
        if not _REQUIRED_COLUMNS <= set(fieldnames):
            raise DatasetError(f"{path}: is damaged (its header is not {','.join(MANIFEST_COLUMNS)}); "
                               "rebuild the dataset")
        strange = {row.get("split") for row in rows} - set(SPLITS)
        if strange:
            raise DatasetError(f"{path}: is damaged (unknown split {sorted(map(str, strange))[0]!r}); "
                               "rebuild the dataset")
        return rows

    def open_features(self) -> np.ndarray:
        """``features.npy`` memory-mapped read-only, checked to be float32 or float16 chunks."""
        path = self.path / self.FEATURES
        try:
            features = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception:  # numpy raises many types (and pickle advice) for a damaged file
            features = None
        if features is None or features.dtype not in (np.float32, np.float16) or features.ndim != 3:
            raise DatasetError(f"{path}: is damaged (not an array of float log-mel chunks); rebuild the dataset")
        return features

    def read_offsets(self) -> np.ndarray:
        return np.load(self.path / self.OFFSETS, allow_pickle=False)

    def fingerprint(self, *, manifest: Optional[bytes] = None) -> str:
        """Hash of the manifest and feature config: which data a model was trained on.

        ``manifest`` is the manifest's content when the caller has read it already.
        """
        manifest = (self.path / self.MANIFEST).read_bytes() if manifest is None else manifest
        return hashlib.sha256(manifest + (self.path / self.FEATURE_CONFIG).read_bytes()).hexdigest()[:16]


#: A dataset folder, recognised by the files every build writes (it may be replaced by a rebuild).
DATASET_FOLDER = FolderKind("dataset", (DatasetDir.MANIFEST, DatasetDir.FEATURE_CONFIG))
