"""Build a dataset: featurise every song (or reuse it), assign the splits, write the folder.

:func:`build_dataset` reads as those three calls: :func:`featurise_songs` streams each song's
log-mel chunks into ``features.npy`` (and records its levels), :func:`assign_splits` puts every
usable song in train, validation or test (by song or group, before any chunk is used), and
:func:`write_dataset` writes the manifest, the song index, the config and the summary beside them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from genre_cnn.config import FeatureConfig
from genre_cnn.data.arrays import NpyAppender
from genre_cnn.data.cache import SongCache, file_key, write_song_index
from genre_cnn.data.dataset import DEFAULT_DATASET_DIR
from genre_cnn.data.split import check_fractions, check_shard, shard_of, split_songs
from genre_cnn.data.store import DATASET_FOLDER, DatasetDir
from genre_cnn.data.summary import BuildSummary, count_songs_and_chunks
from genre_cnn.data.tracks import Song, TrackList, scan_tracks
from genre_cnn.errors import AudioDecodeError, ConfigError, DatasetError
from genre_cnn.runtime.files import atomic_directory, check_output_folder, exclusive_lock
from genre_cnn.runtime.parallel import process_pool
from genre_cnn.signal.logmel import SongFeatureStream, mel_filterbank

__all__ = ["BuildReport", "FeaturisedSong", "Featurised", "build_dataset", "featurise_songs", "assign_splits",
           "write_dataset"]

#: Rows copied into ``features.npy`` at a time.
COPY_ROWS = 256


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """What :func:`build_dataset` did: where the dataset went and its summary."""

    path: Path
    summary: BuildSummary

    @property
    def skipped_list(self) -> Path:
        """The CSV of the files that could not be used, and why."""
        return DatasetDir(self.path) / DatasetDir.SKIPPED


@dataclasses.dataclass(frozen=True)
class FeaturisedSong:
    """A song whose chunks are in the new ``features.npy``.

    Attributes
    ----------
    song : Song
    key : tuple or None
        Its file key (path, size, modification time), for reuse by the next build.
    first_row : int
        Row of its first chunk in ``features.npy``; its chunks follow in order.
    offsets : np.ndarray [dtype=int64]
        Start of each chunk in samples.
    stats : dict
        What cleaning dropped, and its levels (``songs.csv``).
    """

    song: Song
    key: Optional[tuple]
    first_row: int
    offsets: np.ndarray
    stats: dict


@dataclasses.dataclass(frozen=True)
class Featurised:
    """What :func:`featurise_songs` did: the usable songs in order, the skipped ones and why, how many were reused."""

    used: list[FeaturisedSong]
    skipped: list[tuple[str, str]]
    reused: int


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
    check_fractions(val_fraction, test_fraction)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers={workers!r} must be a positive integer", parameter="workers")
    tracks = tracks_dir if isinstance(tracks_dir, TrackList) else scan_tracks(tracks_dir)
    out = check_output_folder(out, kind=DATASET_FOLDER, inputs=[tracks.root])
    options = dict(val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    songs, whole_library_splits = tracks.songs, None
    if shard is not None:  # the split is that of the whole library, so that every shard agrees on it
        index, count = check_shard(shard)
        whole_library_splits = dict(zip((song.relative for song in tracks.songs),
                                        split_songs([song.label for song in tracks.songs], groups=_groups(tracks.songs),
                                                    **options)))
        songs = tuple(song for song in tracks.songs if shard_of(song.relative, count) == index)
    with exclusive_lock(out, command="genre-cnn build-dataset"), \
            atomic_directory(out, kind=DATASET_FOLDER, inputs=[tracks.root]) as tmp:
        written = DatasetDir(tmp)
        cache = SongCache(None if force else out, config)
        featurised = featurise_songs(songs, into=written, config=config, cache=cache, workers=workers,
                                     progress=progress)
        splits = assign_splits(tracks, featurised, whole_library=whole_library_splits, **options)
        summary = write_dataset(written, tracks, featurised, splits=splits, config=config, shard=shard,
                                decoded=len(songs) - featurised.reused, **options)
    return BuildReport(path=out, summary=summary)


def featurise_songs(songs: Sequence[Song], *, into: DatasetDir, config: FeatureConfig, cache: SongCache,
                    workers: int = 1, progress: Optional[Callable[[Iterable], Iterable]] = None) -> Featurised:
    """Stream every song's log-mel chunks into ``into``'s ``features.npy``, in order; reuse unchanged songs.

    Songs are decoded by ``workers`` processes, each into a spool file (memory holds one batch of
    chunks however long the song), then copied block by block; a song found unchanged in
    ``cache`` is copied from the previous dataset instead. A song that cannot be used is skipped
    with its reason.
    """
    keys = [file_key(song.path) for song in songs]
    spool = into / ".spool"
    spool.mkdir()
    results = _featurise_all(songs, keys, cache, config, workers=workers, spool=spool)
    if progress is not None:
        results = progress(results, total=len(songs))
    used: list[FeaturisedSong] = []
    skipped: list[tuple[str, str]] = []
    reused = 0
    with NpyAppender(into / DatasetDir.FEATURES, row_shape=config.input_shape, dtype=config.dtype) as features_file:
        for song, key, (outcome, cached) in zip(songs, keys, results):
            if isinstance(outcome, str):
                skipped.append((song.relative, outcome))
                continue
            features, offsets, stats = outcome
            if not cached:  # the song's features wait in a spool file, not in memory
                spooled, features = features, np.load(features, mmap_mode="r")
            used.append(FeaturisedSong(song=song, key=key, first_row=features_file.n_rows, offsets=offsets,
                                       stats=stats))
            reused += cached
            for start in range(0, len(features), COPY_ROWS):  # a block at a time: memory stays flat
                features_file.append(features[start : start + COPY_ROWS])
            if not cached:
                del features
                spooled.unlink()
    spool.rmdir()
    return Featurised(used=used, skipped=skipped, reused=reused)


def assign_splits(tracks: TrackList, featurised: Featurised, *, val_fraction: float, test_fraction: float,
                  seed: int, whole_library: Optional[dict[str, str]] = None) -> np.ndarray:
    """The split of each usable song (:func:`~genre_cnn.data.split.split_songs`, by group when songs have one).

    ``whole_library``: the splits of a shard's whole library, by song (a shard may hold any subset
    of the genres, and must agree with the other shards).

    Raises
    ------
    DatasetError
        No usable song, fewer than two genres with usable songs, or a genre with too few for the splits.
    """
    songs = [each.song for each in featurised.used]
    if whole_library is not None:
        return np.array([whole_library[song.relative] for song in songs], dtype="<U5")
    _check_usable(tracks, featurised)
    return split_songs([song.label for song in songs], groups=_groups(songs), val_fraction=val_fraction,
                       test_fraction=test_fraction, seed=seed)


def write_dataset(written: DatasetDir, tracks: TrackList, featurised: Featurised, *, splits: np.ndarray,
                  config: FeatureConfig, val_fraction: float, test_fraction: float, seed: int, decoded: int,
                  shard: Optional[tuple[int, int]] = None) -> BuildSummary:
    """Write everything beside ``features.npy``: manifest, chunk offsets, song index, config, skipped list, summary.

    Returns
    -------
    BuildSummary
        The content of ``summary.json``.
    """
    used = featurised.used
    used_genres = {each.song.label for each in used}
    # a shard keeps the whole library's genres (another shard may hold the songs of those it lacks)
    classes = list(tracks.classes) if shard is not None else [name for name in tracks.classes if name in used_genres]
    notes = list(tracks.notes) + [f"genre {name!r}: none of its songs could be used, left out"
                                  for name in tracks.classes if name not in classes]
    written.write_manifest(_manifest_rows(used, splits, config))
    written.write_offsets(np.concatenate([np.zeros(0, np.int64)] + [each.offsets for each in used]))
    write_song_index(written.path, [(each.song.relative, each.key, each.first_row, len(each.offsets), each.stats)
                                    for each in used])
    written.write_config(config, classes)
    written.write_skipped(featurised.skipped)
    totals = {name: sum(each.stats[name] for each in used) for name in ("silent_chunks", "trimmed_seconds",
                                                                       "denoise_db")}
    if totals["silent_chunks"]:
        notes.append(f"{totals['silent_chunks']} silent chunk(s) dropped (silence policy 'drop')")
    summary = BuildSummary(
        tracks_dir=str(tracks.root), classes=classes, songs=len(used),
        chunks=int(sum(len(each.offsets) for each in used)),
        per_class=count_songs_and_chunks(classes, ((each.song.label, split, len(each.offsets))
                                                   for each, split in zip(used, splits))),
        skipped=[{"song": song, "reason": reason} for song, reason in featurised.skipped], notes=notes,
        val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
        groups=len({each.song.group for each in used if each.song.group}),
        folds=sorted({each.song.fold for each in used if each.song.fold}),
        silent_chunks_dropped=totals["silent_chunks"], trimmed_seconds=round(totals["trimmed_seconds"], 3),
        denoise_mean_db=round(totals["denoise_db"] / len(used), 2) if config.denoise else None,
        reused_songs=featurised.reused, decoded_songs=decoded,
        shard=list(shard) if shard is not None else None,
    )
    written.write_summary(summary)
    return summary


def _groups(songs: Sequence[Song]) -> Optional[list]:
    """Each song's group when any song has one (then groups never straddle two splits), else None."""
    return [song.group for song in songs] if any(song.group for song in songs) else None


def _check_usable(tracks: TrackList, featurised: Featurised) -> None:
    """At least two genres have usable songs, else a :class:`DatasetError`."""
    if not featurised.used:
        raise DatasetError(
            f"{tracks.root}: none of the {len(tracks.songs)} audio files could be used "
            f"(first problem: {featurised.skipped[0][1]})"
        )
    used_classes = sorted({each.song.label for each in featurised.used})
    if len(used_classes) < 2:
        raise DatasetError(
            f"{tracks.root}: only the genre {used_classes[0]!r} has usable songs; "
            "a classifier needs at least two genres"
        )


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


def _manifest_rows(used: Sequence[FeaturisedSong], splits, config: FeatureConfig) -> Iterator[tuple]:
    """The manifest's rows (:data:`~genre_cnn.data.store.MANIFEST_COLUMNS`) of the used songs' chunks."""
    for featurised, split in zip(used, splits):
        song = featurised.song
        for chunk, offset in enumerate(featurised.offsets):
            yield (song.relative, song.label, chunk, f"{offset / config.sr:.4f}", split, song.group or "",
                   song.fold or "")


