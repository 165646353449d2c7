"""k-fold cross-validation by song (or group): every song is tested once, by a model that never saw it."""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .config import TrainConfig, write_json
from .dataset import DEFAULT_DATASET_DIR, Dataset, split_songs
from .errors import ConfigError, DatasetError
from .files import FolderKind, atomic_directory, check_output_folder, exclusive_lock

__all__ = ["CvResult", "song_folds", "cross_validate"]

#: The folder ``cv`` writes.
CV_FOLDER = FolderKind("cross-validation result", ("cv.json",))

SUMMARY_METRICS = ("chunk_accuracy", "song_accuracy", "chunk_macro_f1", "song_macro_f1")


@dataclasses.dataclass(frozen=True)
class CvResult:
    """What :func:`cross_validate` measured: per-fold metrics, their mean and std, the summed confusion."""

    out: Path
    folds: list
    summary: dict


def song_folds(dataset: Dataset, *, folds: Optional[int] = 5, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """The test fold of every song of ``dataset``.

    With ``folds=None`` the folds of the metadata CSV's fold column are used (every song must
    have one). Otherwise songs are dealt into ``folds`` folds stratified by genre, and songs
    sharing a group (``--group-column``) land in the same fold
    (scikit-learn's :class:`~sklearn.model_selection.StratifiedGroupKFold`).

    Returns
    -------
    songs : list of str
        The dataset's songs, in manifest order.
    fold : np.ndarray [shape=(len(songs),), dtype=int]
        Fold number (0-based) of each song.

    Raises
    ------
    DatasetError
        No CSV folds where they were asked for, or too few songs (groups) per genre for ``folds``.
    """
    songs, first = dataset.song_rows()
    labels = dataset.labels[first]
    if folds is None:
        given = dataset.folds[first]
        if (given == "").any():
            raise DatasetError(
                f"{dataset.path}: the dataset has no fold column; rebuild it with --metadata ... --fold-column, "
                "or give --folds K"
            )
        names = sorted(set(given.tolist()), key=lambda v: (len(v), v))
        if len(names) < 2:
            raise DatasetError(f"{dataset.path}: the fold column has only fold {names[0]!r}; it needs at least 2")
        return songs.tolist(), np.array([names.index(v) for v in given])
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"--folds {folds!r} must be an integer >= 2")
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.array([g if g else f"song:{s}" for g, s in zip(dataset.groups[first], songs)])
    smallest = min(len(set(groups[labels == k])) for k in np.unique(labels))
    if smallest < folds:
        unit = "groups" if (dataset.groups != "").any() else "songs"
        raise DatasetError(
            f"{dataset.path}: a genre has only {smallest} {unit}, too few for --folds {folds}; "
            f"use --folds {max(2, smallest)} or add songs"
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold = np.empty(len(songs), dtype=np.int64)
    for number, (_, test) in enumerate(splitter.split(np.zeros(len(songs)), labels, groups)):
        fold[test] = number
    return songs.tolist(), fold


def cross_validate(
    data_dir: str | os.PathLike = DEFAULT_DATASET_DIR,
    *,
    config: TrainConfig = TrainConfig(),
    folds: Optional[int] = 5,
    val_fraction: float = 0.15,
    out: Optional[str | os.PathLike] = None,
    verbose: int = 0,
    log: Callable[[str], None] = print,
) -> CvResult:
    """Train one model per fold with ``config`` and test it on that fold's songs.

    The dataset's own train/val/test split is ignored: each fold's songs are the test set, a
    ``val_fraction`` of the other songs (whole groups, stratified) picks the best epoch, and the
    rest trains. Every song (and group) is thus tested exactly once, by a model that never saw
    any chunk of it. Fold models are not kept; their metrics are.

    Parameters
    ----------
    data_dir : path-like
        Dataset written by :func:`genre_cnn.build_dataset`.
    config : TrainConfig
        The same options as ``fit`` (augmentation, class weights...).
    folds : int or None
        Number of folds, or None for the folds of the metadata CSV.
    val_fraction : float
        Share of each fold's training songs used for validation (0: train on all, keep the last epoch).
    out : path-like, optional
        Folder for ``cv.json`` and ``confusion.png`` (default ``models/cv-<date>-<time>``).
    verbose, log
        As for :func:`genre_cnn.fit`.

    Returns
    -------
    CvResult
    """
    from .plots import plot_confusion
    from .train import load_training_dataset, test_metrics, train_model

    dataset = load_training_dataset(data_dir, config=config, log=log)
    songs, fold_of_song = song_folds(dataset, folds=folds, seed=config.seed)
    fold_lookup = dict(zip(songs, fold_of_song.tolist()))
    fold_of_chunk = np.array([fold_lookup[song] for song in dataset.songs])
    grouped = bool((dataset.groups != "").any())
    n_folds = int(fold_of_song.max()) + 1
    out = Path(out) if out is not None else Path("models") / datetime.datetime.now().strftime("cv-%Y%m%d-%H%M%S")
    check_output_folder(out, kind=CV_FOLDER, inputs=[data_dir])
    _, first_rows = dataset.song_rows()
    results = []
    for fold in range(n_folds):
        started = time.perf_counter()
        test_songs = {s for s, f in zip(songs, fold_of_song) if f == fold}
        rest = [i for i, f in enumerate(fold_of_song) if f != fold]
        rest_splits = split_songs(
            dataset.labels[first_rows[rest]].astype(str),
            groups=[g or None for g in dataset.groups[first_rows[rest]]] if grouped else None,
            val_fraction=val_fraction, test_fraction=0.0, seed=config.seed + fold,
        )
        split_of_song = {songs[i]: split for i, split in zip(rest, rest_splits)}
        split_of_chunk = np.array([split_of_song.get(s, "test") for s in dataset.songs])
        train_rows, val_rows = np.flatnonzero(split_of_chunk == "train"), np.flatnonzero(split_of_chunk == "val")
        test_rows = np.flatnonzero(fold_of_chunk == fold)
        seen = set(dataset.songs[train_rows]) | set(dataset.songs[val_rows])
        assert not seen & test_songs, "a fold model saw a test song"
        log(f"Fold {fold + 1}/{n_folds}: {len(test_songs)} test songs, "
            f"{len(set(dataset.songs[train_rows]))} training songs")
        trained = train_model(dataset, train_rows=train_rows, val_rows=val_rows, config=config, verbose=verbose,
                              log=lambda message: None)
        metrics = test_metrics(trained.model, dataset, test_rows, batch_size=config.batch_size)
        results.append({
            "fold": fold + 1,
            "test_songs": sorted(test_songs),
            "train_songs": sorted(set(dataset.songs[train_rows])),
            "val_songs": sorted(set(dataset.songs[val_rows])),
            "best_epoch": trained.best.best_epoch + 1,
            "seconds": round(time.perf_counter() - started, 2),
            **{key: metrics[key] for key in (*SUMMARY_METRICS, "test_chunks", "confusion_chunks",
                                             "confusion_songs")},
        })
        log("  " + ", ".join(f"{key.replace('_', ' ')} {metrics[key]:.3f}" for key in SUMMARY_METRICS))
    summary = {
        "folds": n_folds,
        "fold_source": "metadata CSV" if folds is None else ("stratified by group" if grouped else "stratified by song"),
        "songs": len(songs),
        "train_config": config.to_dict(),
        "dataset": {"path": str(dataset.path), "fingerprint": dataset.fingerprint},
        "classes": list(dataset.classes),
        **{key: {"mean": float(np.mean([r[key] for r in results])), "std": float(np.std([r[key] for r in results]))}
           for key in SUMMARY_METRICS},
        "confusion_chunks": np.sum([r["confusion_chunks"] for r in results], axis=0).tolist(),
        "confusion_songs": np.sum([r["confusion_songs"] for r in results], axis=0).tolist(),
        "seconds": round(sum(r["seconds"] for r in results), 2),
    }
    with exclusive_lock(out, command="genre-cnn cv"), atomic_directory(out, kind=CV_FOLDER, inputs=[data_dir]) as tmp:
        write_json(tmp / "cv.json", {"summary": summary, "folds": results})
        confusion = {**summary, "chunk_accuracy": _pooled(summary["confusion_chunks"]),
                     "song_accuracy": _pooled(summary["confusion_songs"])}
        plot_confusion(confusion, dataset.classes, tmp / "confusion.png")
    return CvResult(out=out, folds=results, summary=summary)


def _pooled(confusion) -> float:
    confusion = np.asarray(confusion)
    return float(np.trace(confusion) / max(confusion.sum(), 1))
