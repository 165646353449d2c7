"""k-fold cross-validation by song (or group): every song is tested once, by a model that never saw it."""

from __future__ import annotations

import dataclasses
import datetime
import os
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from genre_cnn.config import TrainConfig, write_json
from genre_cnn.data.dataset import DEFAULT_DATASET_DIR, Dataset, load_dataset, read_summary
from genre_cnn.data.split import split_songs
from genre_cnn.errors import ConfigError, DatasetError
from genre_cnn.kinds import configured, recipe_named, recipe_names, trainer_for
from genre_cnn.plots import plot_confusion, plot_recipe_comparison
from genre_cnn.runtime.files import FolderKind, atomic_directory, check_output_folder, exclusive_lock
from genre_cnn.runtime.parallel import run_dask_tasks
from genre_cnn.training.fit import test_metrics, train_model
from genre_cnn.training.metrics import chance_calibration_error, pooled_calibration_error, pooled_reliability

__all__ = ["CvResult", "song_folds", "cross_validate", "compare_recipes", "train_folds", "train_fold", "fold_rows",
           "audio_root"]

#: The folder ``cv`` writes.
CV_FOLDER = FolderKind("cross-validation result", ("cv.json",))

SUMMARY_METRICS = ("chunk_accuracy", "song_accuracy", "chunk_macro_f1", "song_macro_f1")
#: How well each fold's test-song probabilities are calibrated (:mod:`genre_cnn.training.calibration`).
CALIBRATION_METRICS = ("temperature", "ece", "brier", "ece_uncalibrated", "brier_uncalibrated", "ece_chance")


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
                f"{dataset.path}: the dataset has no fold column; rebuild it with a metadata fold column, "
                "or give folds=K"
            )
        names = sorted(set(given.tolist()), key=lambda v: (len(v), v))
        if len(names) < 2:
            raise DatasetError(f"{dataset.path}: the fold column has only fold {names[0]!r}; it needs at least 2")
        return songs.tolist(), np.array([names.index(v) for v in given])
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds={folds!r} must be an integer >= 2", parameter="folds")
    from sklearn.model_selection import StratifiedGroupKFold

    groups = np.array([g if g else f"song:{s}" for g, s in zip(dataset.groups[first], songs)])
    smallest = min(len(set(groups[labels == k])) for k in np.unique(labels))
    if smallest < folds:
        unit = "groups" if (dataset.groups != "").any() else "songs"
        raise DatasetError(
            f"{dataset.path}: a genre has only {smallest} {unit}, too few for folds={folds}; "
            f"use folds={max(2, smallest)} or add songs", parameter="folds"
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
    engine: str = "local",
    scheduler: Optional[str] = None,
) -> CvResult:
    """Train one model per fold with ``config`` and test it on that fold's songs.

    The dataset's own train/val/test split is ignored: each fold's songs are the test set, a
    ``val_fraction`` of the other songs (whole groups, stratified) is measured after every epoch
    (and picks the kept epoch with ``keep_epoch="best"``), and the rest trains. Every song (and
    group) is thus tested exactly once, by a model that never saw any chunk of it. Fold models are
    not kept; their metrics are.

    Parameters
    ----------
    data_dir : path-like
        Dataset written by :func:`genre_cnn.build_dataset`.
    config : TrainConfig
        The same options as ``fit`` (the kind, its options, class weights...).
    folds : int or None
        Number of folds, or None for the folds of the metadata CSV.
    val_fraction : float
        Share of each fold's training songs used for validation (0: train on all, keep the last epoch).
    out : path-like, optional
        Folder for ``cv.json`` and ``confusion.png`` (default ``models/cv-<date>-<time>``).
    verbose, log
        As for :func:`genre_cnn.fit`.
    engine : {"local", "dask"}
        ``"dask"``: the folds run in parallel as Dask tasks on ``scheduler`` (see
        :func:`genre_cnn.runtime.parallel.run_dask_tasks`),
        with the same results as ``"local"``.
    scheduler : str, optional

    Returns
    -------
    CvResult
    """
    config = configured(config)
    out = _cv_out(out, data_dir)
    dataset = load_dataset(data_dir)
    fold_of_song = _fold_lookup(dataset, folds=folds, seed=config.seed)
    _check_engine(engine, scheduler)
    results = train_folds(dataset, fold_of_song, config=config, val_fraction=val_fraction, verbose=verbose, log=log,
                          engine=engine, scheduler=scheduler)
    summary = {**_header(dataset, fold_of_song, folds=folds, config=config), **_summarise_folds(results)}
    with exclusive_lock(out, command="genre-cnn cv"), atomic_directory(out, kind=CV_FOLDER, inputs=[data_dir]) as tmp:
        write_json(tmp / "cv.json", {"summary": summary, "folds": results})
        plot_confusion(dataset.classes, tmp / "confusion.png", songs=summary["confusion_songs"],
                       song_accuracy=_pooled(summary["confusion_songs"]), chunks=summary["confusion_chunks"],
                       chunk_accuracy=_pooled(summary["confusion_chunks"]))
    return CvResult(out=out, folds=results, summary=summary)


def compare_recipes(
    data_dir: str | os.PathLike = DEFAULT_DATASET_DIR,
    *,
    recipes: Optional[Sequence[str]] = None,
    config: TrainConfig = TrainConfig(),
    folds: Optional[int] = 5,
    val_fraction: float = 0.15,
    out: Optional[str | os.PathLike] = None,
    verbose: int = 0,
    log: Callable[[str], None] = print,
    engine: str = "local",
    scheduler: Optional[str] = None,
) -> CvResult:
    """Cross-validate several recipes on the same folds: which one should I use on my data?

    Every recipe is tested on every song once, with the same folds (and the same validation
    songs inside each fold) as the others. ``config`` holds the options shared by the CNN
    recipes (epochs, batch size...); each recipe then sets its own (:func:`genre_cnn.kinds.recipe_named`).

    Parameters
    ----------
    recipes : sequence of str, optional
        Any of the kinds' recipes (:func:`genre_cnn.kinds.recipe_names`; default: all of them):
        ``scratch`` (the CNN from scratch, ``config`` as given), ``teacher`` (the CNN distilled
        from musicnn), ``musicnn`` (a head on the frozen musicnn backbone), ``baseline`` (the
        scikit-learn baseline on handcrafted descriptors, per song).
    engine, scheduler
        As for :func:`cross_validate`: the trained recipes' folds as Dask tasks.

    Returns
    -------
    CvResult
        ``summary["recipes"]`` maps each recipe to the mean and std of its fold metrics and its
        CPU time; ``folds`` holds the fold results of each recipe.
    """
    recipes = recipe_names() if recipes is None else tuple(recipes)
    unknown = [name for name in recipes if name not in recipe_names()]
    if unknown or not recipes:
        raise ConfigError(f"recipes={','.join(recipes)!r}: choose one or more of {','.join(recipe_names())}")
    config = configured(config)
    _check_engine(engine, scheduler)
    out = _cv_out(out, data_dir)
    dataset = load_dataset(data_dir)
    fold_of_song = _fold_lookup(dataset, folds=folds, seed=config.seed)
    compared, fold_results = {}, {}
    options = config.options
    set_options = [field.name for field in dataclasses.fields(options) if getattr(options, field.name) != field.default]
    for name in recipes:
        recipe = recipe_named(name)
        other_kind = getattr(recipe, "kind", config.kind) != config.kind
        log(f"Recipe {name}:" + (f" (trains the {recipe.kind} kind: {', '.join(set_options)} do not apply)"
                                 if other_kind and set_options else ""))
        cpu = time.process_time()
        results = recipe.run_folds(dataset, fold_of_song, config=config, val_fraction=val_fraction,
                                               verbose=verbose, log=log, engine=engine, scheduler=scheduler)
        fold_results[name] = results
        compared[name] = {**_summarise_folds(results), "cpu_seconds": round(time.process_time() - cpu, 1)}
    summary = {**_header(dataset, fold_of_song, folds=folds, config=config), "recipes": compared}
    with exclusive_lock(out, command="genre-cnn cv"), atomic_directory(out, kind=CV_FOLDER, inputs=[data_dir]) as tmp:
        write_json(tmp / "cv.json", {"summary": summary, "folds": fold_results})
        plot_recipe_comparison(compared, tmp / "recipes.png")
    return CvResult(out=out, folds=fold_results, summary=summary)


def train_folds(dataset: Dataset, fold_of_song: dict, *, config: TrainConfig, val_fraction: float, verbose: int = 0,
                log: Callable[[str], None] = print, engine: str = "local",
                scheduler: Optional[str] = None) -> list[dict]:
    """Train and test one network per fold with ``config``; returns one result dict per fold.

    With ``engine="dask"`` the folds are Dask tasks (one model each) on ``scheduler``; a task
    trains exactly what the local loop would (same rows, same seed), so the results are equal.
    """
    data = trainer_for(config).training_data(dataset, log=log)  # the trainer's: chunks or patches
    n_folds = len(set(fold_of_song.values()))
    tasks = [dict(data_dir=str(dataset.path), config=config, fold=fold, train_rows=train_rows,
                  val_rows=val_rows, test_rows=test_rows, verbose=verbose)
             for fold, train_rows, val_rows, test_rows in fold_rows(data, fold_of_song, val_fraction=val_fraction,
                                                                    seed=config.seed)]
    if engine == "dask":
        log(f"{n_folds} folds sent to Dask ({scheduler or 'local processes'})")
        return run_dask_tasks(train_fold, tasks, scheduler=scheduler)
    results = []
    for task in tasks:
        log(f"Fold {task['fold'] + 1}/{n_folds}: {len(set(data.songs[task['test_rows']]))} test songs, "
            f"{len(set(data.songs[task['train_rows']]))} training songs")
        results.append(train_fold(**task, data=data))
        log("  " + ", ".join(f"{key.replace('_', ' ')} {results[-1][key]:.3f}"
                             for key in (*SUMMARY_METRICS, "ece", "ece_uncalibrated")))
    return results


def train_fold(*, data_dir: str, config: TrainConfig, fold: int, train_rows: np.ndarray, val_rows: np.ndarray,
               test_rows: np.ndarray, verbose: int = 0, data: Optional[Dataset] = None) -> dict:
    """Train one fold's model and measure it on the fold's test rows (a Dask task, or a loop step)."""
    if data is None:
        data = trainer_for(config).training_data(load_dataset(data_dir), log=lambda message: None)
    started = time.perf_counter()
    trained = train_model(data, train_rows=train_rows, val_rows=val_rows, config=config, verbose=verbose,
                          log=lambda message: None)
    metrics = test_metrics(trained.model, data, test_rows, batch_size=config.batch_size,
                           calibration=trained.calibration)
    return {
        "fold": fold + 1,
        "test_songs": sorted(set(data.songs[test_rows])),
        "train_songs": sorted(set(data.songs[train_rows])),
        "val_songs": sorted(set(data.songs[val_rows])),
        "best_epoch": trained.kept.kept_epoch + 1,
        "seconds": round(time.perf_counter() - started, 2),
        **{key: metrics[key] for key in (*SUMMARY_METRICS, *CALIBRATION_METRICS, "test_chunks", "confusion_chunks",
                                         "confusion_songs", "reliability")},
    }


def _check_engine(engine: str, scheduler: Optional[str]) -> None:
    if engine not in ("local", "dask"):
        raise ConfigError(f"engine={engine!r} must be 'local' or 'dask'")
    if scheduler is not None and engine != "dask":
        raise ConfigError(f"scheduler={scheduler!r} only applies with engine='dask'")


def _cv_out(out, data_dir) -> Path:
    out = Path(out) if out is not None else Path("models") / datetime.datetime.now().strftime("cv-%Y%m%d-%H%M%S")
    return check_output_folder(out, kind=CV_FOLDER, inputs=[data_dir])


def _fold_lookup(dataset: Dataset, *, folds, seed: int) -> dict:
    songs, fold_of_song = song_folds(dataset, folds=folds, seed=seed)
    return dict(zip(songs, fold_of_song.tolist()))


def _header(dataset: Dataset, fold_of_song: dict, *, folds, config: TrainConfig) -> dict:
    """What every cv summary starts with: the folds, the songs, the options and the dataset."""
    grouped = bool((dataset.groups != "").any())
    return {
        "folds": len(set(fold_of_song.values())),
        "fold_source": "metadata CSV" if folds is None
        else ("stratified by group" if grouped else "stratified by song"),
        "songs": len(fold_of_song),
        "train_config": config.to_dict(),
        "dataset": {"path": str(dataset.path), "fingerprint": dataset.fingerprint},
        "classes": list(dataset.classes),
    }


def fold_rows(dataset: Dataset, fold_of_song: dict, *, val_fraction: float, seed: int):
    """Per fold ``(fold, train_rows, val_rows, test_rows)`` of ``dataset`` (chunks or patches).

    The validation songs of a fold depend only on the songs and the seed, so every recipe, on
    chunks or on musicnn patches, gets the same ones.
    """
    grouped = bool((dataset.groups != "").any())
    songs, first = dataset.song_rows()
    known = np.array([song in fold_of_song for song in songs])
    songs, first = songs[known], first[known]
    fold_of_each = np.array([fold_of_song[song] for song in songs])
    fold_of_chunk = np.array([fold_of_song.get(song, -1) for song in dataset.songs])
    for fold in sorted(set(fold_of_song.values())):
        rest = np.flatnonzero(fold_of_each != fold)
        try:
            rest_splits = split_songs(
                np.asarray(dataset.classes)[dataset.labels[first[rest]]],
                groups=[g or None for g in dataset.groups[first[rest]]] if grouped else None,
                val_fraction=val_fraction, test_fraction=0.0, seed=seed + fold,
            )
        except DatasetError as exc:  # "genre 'x' has 1 usable groups; with val_fraction=..."
            raise DatasetError(
                f"{dataset.path}: outside fold {fold + 1}, {str(exc).split(';')[0]}: too few to train on and "
                f"validate with (val_fraction={val_fraction:g}); use --val-fraction 0 (keep the last epoch) "
                "or fewer --folds"
            ) from None
        split_of_song = {songs[i]: split for i, split in zip(rest, rest_splits)}
        split_of_chunk = np.array([split_of_song.get(s, "test") for s in dataset.songs])
        train_rows = np.flatnonzero((split_of_chunk == "train") & (fold_of_chunk >= 0))
        val_rows = np.flatnonzero((split_of_chunk == "val") & (fold_of_chunk >= 0))
        test_rows = np.flatnonzero(fold_of_chunk == fold)
        seen = set(dataset.songs[train_rows]) | set(dataset.songs[val_rows])
        assert not seen & set(dataset.songs[test_rows]), "a fold model saw a test song"
        yield fold, train_rows, val_rows, test_rows


def _summarise_folds(results: list[dict]) -> dict:
    """Mean and std of each fold metric (None where a recipe has no chunk metrics), summed confusions."""
    summary = {}
    for key in (*SUMMARY_METRICS, *CALIBRATION_METRICS):
        values = [r[key] for r in results if r.get(key) is not None]
        summary[key] = {"mean": float(np.mean(values)), "std": float(np.std(values))} if values else None
    for key in ("confusion_chunks", "confusion_songs"):
        matrices = [r[key] for r in results if r.get(key) is not None]
        summary[key] = np.sum(matrices, axis=0).tolist() if matrices else None
    summary["seconds"] = round(sum(r["seconds"] for r in results), 2)
    for key in ("calibrated", "uncalibrated"):  # every fold's test songs in one reliability diagram
        bins = [r["reliability"][key] for r in results if r.get("reliability")]
        name = "ece_pooled" if key == "calibrated" else "ece_uncalibrated_pooled"
        summary[name] = pooled_calibration_error(bins) if bins else None
        if key == "calibrated":  # what a perfectly calibrated model would show on as many songs
            summary["ece_pooled_chance"] = chance_calibration_error(pooled_reliability(bins)) if bins else None
    return summary


def audio_root(dataset: Dataset) -> Path:
    return Path(read_summary(dataset.path).tracks_dir)


def _pooled(confusion) -> float:
    confusion = np.asarray(confusion)
    return float(np.trace(confusion) / max(confusion.sum(), 1))
