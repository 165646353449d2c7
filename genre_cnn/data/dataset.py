"""Scan a tracks folder, split it by song, and write or read a chunked log-mel dataset."""

from __future__ import annotations

import dataclasses
import os
import zlib
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from genre_cnn.config import FeatureConfig
from genre_cnn.data.arrays import NpyAppender
from genre_cnn.data.cache import SongCache, file_key, write_song_index
from genre_cnn.data.store import DATASET_FOLDER, DatasetDir
from genre_cnn.data.summary import SPLITS, BuildSummary, count_songs_and_chunks
from genre_cnn.errors import AudioDecodeError, ConfigError, DatasetError
from genre_cnn.runtime.files import atomic_directory, check_output_folder, exclusive_lock
from genre_cnn.runtime.parallel import process_pool
from genre_cnn.signal.audio import is_audio_file
from genre_cnn.signal.logmel import SongFeatureStream, mel_filterbank

__all__ = [
    "SPLITS",
    "read_summary",
    "Song",
    "TrackList",
    "Dataset",
    "scan_tracks",
    "split_songs",
    "build_dataset",
    "load_dataset",
]

DEFAULT_DATASET_DIR = Path("data/dataset")


#: Rows copied into ``features.npy`` at a time.
COPY_ROWS = 256


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
    _check_fractions(val_fraction, test_fraction)
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


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ConfigError(f"{name}={value!r} must be in [0, 1)", parameter=name)
    if val_fraction + test_fraction >= 1:
        raise ConfigError(
            f"val_fraction={val_fraction:g} + test_fraction={test_fraction:g} must be below 1 "
            "so that songs are left to train on", parameter="val_fraction"
        )


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """What :func:`build_dataset` did: where the dataset went and its summary."""

    path: Path
    summary: BuildSummary

    @property
    def skipped_list(self) -> Path:
        """The CSV of the files that could not be used, and why."""
        return DatasetDir(self.path) / DatasetDir.SKIPPED


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


def build_dataset(
    tracks_dir: str | os.PathLike | TrackList,
    *,
    out: str | os.PathLike = DEFAULT_DATASET_DIR,
    config: FeatureConfig = FeatureConfig(),
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    seed: int = 0,
    workers: Optional[int] = None,
    force: bool = False,
    shard: Optional[tuple[int, int]] = None,
    progress: Optional[Callable[[Iterable], Iterable]] = None,
) -> BuildReport:
    """Turn ``tracks_dir/<genre>/*`` into a dataset of log-mel chunks on disk.

    Each song is decoded, cut into chunks and featurised with :class:`genre_cnn.signal.logmel.SongFeatureStream`;
    features stream to disk so memory holds one batch of chunks, however long the song. Songs that cannot be
    used are skipped with their reason. The split is made per song (:func:`split_songs`). The
    dataset is written to a temporary folder and renamed to ``out`` only when complete.

    Parameters
    ----------
    tracks_dir : path-like or TrackList
        Folder with one sub-folder of songs per genre, or the songs of a metadata CSV
        (:func:`genre_cnn.data.metadata.scan_metadata`; its groups never straddle two splits).
    out : path-like
        Dataset folder to (re)write.
    config : FeatureConfig
        Sample rate, chunking and spectrogram options.
    val_fraction, test_fraction : float
        Share of each genre's songs kept for validation and test.
    seed : int
        Seed of the split.
    workers : int, optional
        Processes decoding songs in parallel (1 = in this process; default: one per CPU core).
    force : bool
        Decode every song again. By default songs whose file (path, size, modification time) and
        feature config are unchanged since the previous build into ``out`` are copied from it.
    shard : (int, int), optional
        ``(i, n)``: build only shard ``i`` of ``n`` (songs picked by a hash of their path), for
        building a huge library on many machines; merge the shards with
        :func:`genre_cnn.data.shards.merge_datasets`. The split is then computed from the whole scanned
        song list, so every shard agrees on it; a shard may hold any subset of the genres.
    progress : callable, optional
        Wraps the iterable of processed songs, e.g. a tqdm progress bar factory.

    Returns
    -------
    BuildReport
        Where the dataset went and its summary (the content of ``summary.json``).

    Raises
    ------
    DatasetError
        Nothing usable, too few genres, or a genre with too few songs; nothing is written then.
    """
    _check_fractions(val_fraction, test_fraction)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers={workers!r} must be a positive integer", parameter="workers")
    tracks = tracks_dir if isinstance(tracks_dir, TrackList) else scan_tracks(tracks_dir)
    grouped = any(song.group for song in tracks.songs)
    out = check_output_folder(out, kind=DATASET_FOLDER, inputs=[tracks.root])
    songs, fixed_splits = tracks.songs, None
    if shard is not None:
        index, count = check_shard(shard)
        fixed_splits = dict(zip(
            (song.relative for song in tracks.songs),
            split_songs([song.label for song in tracks.songs], val_fraction=val_fraction,
                        groups=[song.group for song in tracks.songs] if grouped else None,
                        test_fraction=test_fraction, seed=seed),
        ))
        songs = tuple(song for song in tracks.songs if shard_of(song.relative, count) == index)

    with exclusive_lock(out, command="genre-cnn build-dataset"), \
            atomic_directory(out, kind=DATASET_FOLDER, inputs=[tracks.root]) as tmp:
        cache = SongCache(None if force else out, config)
        keys = [file_key(song.path) for song in songs]
        spool = tmp / ".spool"
        spool.mkdir()
        results = _featurise_all(songs, keys, cache, config, workers=workers, spool=spool)
        if progress is not None:
            results = progress(results, total=len(songs))
        used: list[tuple[Song, np.ndarray]] = []
        skipped: list[tuple[str, str]] = []
        index = []
        reused = 0
        totals = {"silent_chunks": 0, "trimmed_seconds": 0.0, "denoise_db": 0.0}
        with NpyAppender(tmp / DatasetDir.FEATURES, row_shape=config.input_shape, dtype=config.dtype) as features_file:
            for song, key, (outcome, cached) in zip(songs, keys, results):
                if isinstance(outcome, str):
                    skipped.append((song.relative, outcome))
                    continue
                features, offsets, stats = outcome
                if not cached:  # the song's features wait in a spool file, not in memory
                    spooled, features = features, np.load(features, mmap_mode="r")
                index.append((song.relative, key, features_file.n_rows, len(offsets), stats))
                totals = {name: totals[name] + stats[name] for name in totals}
                reused += cached
                for start in range(0, len(features), COPY_ROWS):  # a block at a time: memory stays flat
                    features_file.append(features[start : start + COPY_ROWS])
                if not cached:
                    del features
                    spooled.unlink()
                used.append((song, offsets))
        spool.rmdir()
        if fixed_splits is not None:  # a shard: the split and the genres are those of the whole library
            splits = np.array([fixed_splits[song.relative] for song, _ in used], dtype="<U5")
            used_classes = list(tracks.classes)
        else:
            used_classes = _check_usable(tracks, used, skipped)
            splits = split_songs(
                [song.label for song, _ in used],
                groups=[song.group for song, _ in used] if grouped else None,
                val_fraction=val_fraction,
                test_fraction=test_fraction,
                seed=seed,
            )
        classes = [name for name in tracks.classes if name in used_classes]
        notes = list(tracks.notes) + [
            f"genre {name!r}: none of its songs could be used, left out" for name in tracks.classes
            if name not in used_classes
        ]
        written = DatasetDir(tmp)
        written.write_manifest(_manifest_rows(used, splits, config))
        written.write_offsets(np.concatenate([np.zeros(0, np.int64)] + [o for _, o in used]))
        write_song_index(tmp, index)
        written.write_config(config, classes)
        written.write_skipped(skipped)
        silent_dropped = totals["silent_chunks"]
        if silent_dropped:
            notes.append(f"{silent_dropped} silent chunk(s) dropped (silence policy 'drop')")
        summary = BuildSummary(
            tracks_dir=str(tracks.root), classes=classes, songs=len(used),
            chunks=int(sum(len(offsets) for _, offsets in used)),
            per_class=count_songs_and_chunks(classes, ((song.label, split, len(offsets))
                                                       for (song, offsets), split in zip(used, splits))),
            skipped=[{"song": song, "reason": reason} for song, reason in skipped], notes=notes,
            val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
            groups=len({song.group for song, _ in used if song.group}),
            folds=sorted({song.fold for song, _ in used if song.fold}),
            silent_chunks_dropped=silent_dropped, trimmed_seconds=round(totals["trimmed_seconds"], 3),
            denoise_mean_db=round(totals["denoise_db"] / len(used), 2) if config.denoise else None,
            reused_songs=reused, decoded_songs=len(songs) - reused,
            shard=list(shard) if shard is not None else None,
        )
        written.write_summary(summary)
    return BuildReport(path=out, summary=summary)


def _check_usable(tracks: TrackList, used, skipped) -> list[str]:
    """The genres with usable songs; at least two, else a :class:`DatasetError`."""
    if not used:
        raise DatasetError(
            f"{tracks.root}: none of the {len(tracks.songs)} audio files could be used "
            f"(first problem: {skipped[0][1]})"
        )
    used_classes = sorted({song.label for song, _ in used})
    if len(used_classes) < 2:
        raise DatasetError(
            f"{tracks.root}: only the genre {used_classes[0]!r} has usable songs; "
            "a classifier needs at least two genres"
        )
    return used_classes


def _featurise_one(path: Path, config: FeatureConfig, spooled: Path):
    """Stream one song's features into the file ``spooled``, for process pools.

    Returns ``(spooled, offsets, stats)``, or the reason the song cannot be used (a string).
    Memory holds one batch of chunks however long the song: the features go to disk as they
    are computed, and only the file's name travels back to the parent process.
    """
    stream = SongFeatureStream(path, config, measure_levels=True)
    offsets = [np.zeros(0, np.int64)]
    try:
        with NpyAppender(spooled, row_shape=config.input_shape) as out:
            for features, chunk_offsets in stream:
                out.append(features)
                offsets.append(chunk_offsets)
    except AudioDecodeError as exc:
        spooled.unlink(missing_ok=True)
        return str(exc)
    return spooled, np.concatenate(offsets), stream.stats


def _featurise_all(songs: Sequence[Song], keys, cache: SongCache, config: FeatureConfig, *, workers: int,
                   spool: Path):
    """Yield ``(outcome, reused)`` per song, in order: cached songs from ``cache``, others decoded."""
    todo = [song.path for song, key in zip(songs, keys) if cache.get(key) is None]
    spooled = [spool / f"{number}.npy" for number in range(len(todo))]
    if workers == 1 or len(todo) < 2:
        fresh = (_featurise_one(path, config, target) for path, target in zip(todo, spooled))
        pool = None
    else:
        import scipy.fft  # noqa: F401  (imported once here, inherited by the forked workers)

        mel_filterbank(config)  # cached, and inherited too
        pool = process_pool(min(workers, len(todo)))
        batch = max(1, len(todo) // (8 * workers))
        fresh = pool.map(_featurise_one, todo, [config] * len(todo), spooled, chunksize=batch)
    try:
        for key in keys:
            hit = cache.get(key)
            yield (hit, True) if hit is not None else (next(fresh), False)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _manifest_rows(used, splits, config: FeatureConfig) -> Iterator[tuple]:
    """The manifest's rows (:data:`~genre_cnn.data.store.MANIFEST_COLUMNS`) of the used songs' chunks."""
    for (song, offsets), split in zip(used, splits):
        for chunk, offset in enumerate(offsets):
            yield (song.relative, song.label, chunk, f"{offset / config.sr:.4f}", split, song.group or "",
                   song.fold or "")


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset written by :func:`build_dataset`, with features memory-mapped, not loaded.

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
    """Open a dataset folder written by :func:`build_dataset`.

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
