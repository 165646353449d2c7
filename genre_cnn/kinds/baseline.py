"""The ``baseline`` kind: scikit-learn on handcrafted descriptors, one row per song.

Its descriptors are :mod:`genre_cnn.signal.descriptors`, its grid and tuning
:mod:`genre_cnn.training.baseline`; this module fits and saves one (``genre-cnn baseline``), opens
a fitted folder for ``classify`` and compares it in ``cv`` and ``fit``, as a kind
(:mod:`genre_cnn.kinds`).

Opening one unpickles ``model.joblib`` with joblib: the only pickle genre-cnn loads, and only
from a model folder the user names (``--model``), never from ``models/latest``.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import os
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from genre_cnn.config import TrainConfig
from genre_cnn.data.cache import file_key
from genre_cnn.data.dataset import Dataset
from genre_cnn.data.descriptor_table import descriptor_table_groups, descriptor_table_version, read_descriptor_table
from genre_cnn.data.split import split_songs
from genre_cnn.errors import AudioDecodeError, ConfigError, DatasetError, GenreCnnError, GenreCnnWarning, ModelError
from genre_cnn.inference.occlusion import explain_descriptors
from genre_cnn.inference.prediction import SongEmbedding, SongPrediction
from genre_cnn.kinds import Kind
from genre_cnn.models.store import MODEL_FOLDER, Metrics, ModelDir
from genre_cnn.monitoring.profile import Profile, save_profile
from genre_cnn.plots import plot_confusion, plot_descriptor_explanation, plot_reliability
from genre_cnn.runtime.files import atomic_directory, check_output_folder
from genre_cnn.signal.descriptors import DESCRIPTOR_VERSION, describe_songs, descriptor_columns, song_descriptors
from genre_cnn.training.baseline import (
    baseline_temperature,
    class_probabilities,
    search_grid,
    split_pipeline,
    tuned_baseline,
)
from genre_cnn.training.cv import audio_root
from genre_cnn.training.metrics import score_songs
from genre_cnn.training.novelty import fit_novelty
from genre_cnn.version import __version__

__all__ = ["BaselineClassifier", "BaselineRecipe", "BaselineResult", "fit_baseline", "DESCRIPTOR_SPACE",
           "descriptor_space", "KIND"]

KIND_NAME = "baseline"

#: What a baseline's novelty measures distances in (config.json's ``novelty.layer``).
DESCRIPTOR_SPACE = "descriptors"


def descriptor_space(pipeline, values: np.ndarray) -> np.ndarray:
    """Songs' descriptors as the pipeline's classifier sees them before any PCA: imputed and standardised
    (the space a baseline's :class:`~genre_cnn.models.novelty.Novelty` measures in)."""
    return split_pipeline(pipeline)[0].transform(values)


class BaselineClassifier:
    """A fitted baseline, used by ``classify`` like a CNN model (same :class:`SongPrediction`).

    Loading unpickles ``model.joblib``: only load baselines you made or trust (the command line
    loads one only from a folder named with ``--model``).
    """

    backend = "sklearn"
    kind = "baseline"
    makes_timelines = False
    inputs_are_log_mel = False
    profiles_from_dataset = False  # its profile is made from the songs' folder when it is fitted
    combines_chunks = False  # one row of descriptors per song
    feature_config = None  # no log-mel front end: monitor describes its songs with the default one
    filterbank = None
    embedding_layer = None  # its novelty lives in the descriptors' space, not a network's

    @classmethod
    def open(cls, model_dir: str | os.PathLike, *, backend: str = "auto") -> "BaselineClassifier":
        """Open a baseline's folder (``backend`` is ignored: scikit-learn runs it)."""
        return cls(model_dir)

    def __init__(self, model_dir: str | os.PathLike) -> None:
        import joblib

        self.model_dir = Path(model_dir)
        folder = ModelDir(self.model_dir)
        saved = folder.read_config()
        if folder.kind(saved) != KIND_NAME or not (folder / folder.PIPELINE).is_file():
            raise ModelError(f"{self.model_dir}: not a baseline made by 'genre-cnn baseline'")
        self.classes = folder.read_classes(saved)
        self.columns = list(saved["columns"])
        self.pipeline = joblib.load(folder / folder.PIPELINE)
        self.calibration = folder.read_calibration(saved)
        self.min_confidence = self.calibration.min_confidence
        self.novelty = folder.read_novelty(saved)  # in the space of the standardised descriptors
        if saved.get("descriptor_version", 1) != DESCRIPTOR_VERSION:
            warnings.warn(f"{self.model_dir}: fitted on descriptors computed by another genre-cnn (version "
                          f"{saved.get('descriptor_version', 1)}, this one computes version {DESCRIPTOR_VERSION}); "
                          "its probabilities may differ a little: refit it with a new 'genre-cnn features' table "
                          "for identical numbers", GenreCnnWarning, stacklevel=2)

    def descriptor_row(self, path: str | os.PathLike) -> np.ndarray:
        """The song's descriptors in the pipeline's column order, shape ``(1, n_columns)``.

        Raises
        ------
        AudioDecodeError
        """
        values = song_descriptors(path)
        return np.array([[values[c] for c in self.columns]])

    def decide(self, standardised: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of rows of :meth:`standardised_descriptors` (the pipeline's deciding half)."""
        return self.calibration.apply(split_pipeline(self.pipeline)[1].predict_proba(standardised))

    def standardised_descriptors(self, path: str | os.PathLike) -> np.ndarray:
        """:meth:`descriptor_row` as the pipeline's classifier sees it before any PCA (:func:`descriptor_space`)."""
        return descriptor_space(self.pipeline, self.descriptor_row(path))

    def classify_file(self, path: str | os.PathLike) -> SongPrediction:
        try:
            row = self.descriptor_row(path)
        except AudioDecodeError as exc:
            return SongPrediction(path=str(path), error=str(exc))
        probabilities = self.calibration.apply(self.pipeline.predict_proba(row)[0])
        novelty = None if self.novelty is None else float(self.novelty.score(descriptor_space(self.pipeline, row))[0])
        return SongPrediction.of(path, self.classes, probabilities, n_chunks=1, min_confidence=self.min_confidence,
                                 novelty=novelty, max_novelty=None if self.novelty is None else self.novelty.threshold)

    def embed_file(self, path: str | os.PathLike) -> SongEmbedding:
        """The song's verdict and its standardised descriptors (the space its novelty is measured in).

        Raises
        ------
        AudioDecodeError
        """
        standardised = self.standardised_descriptors(path)
        return SongEmbedding(probabilities=self.decide(standardised)[0], embedding=standardised[0].astype(np.float32),
                             n_chunks=1)

    def explain_file(self, path: str | os.PathLike, *, genre: Optional[str] = None):
        """The descriptors that moved the song's verdict most, and the function that draws them."""
        return explain_descriptors(self, path, genre=genre), plot_descriptor_explanation


@dataclasses.dataclass(frozen=True)
class BaselineResult:
    """What :func:`fit_baseline` saved: where, its metrics, and the fitted pipeline."""

    model_dir: Path
    metrics: Metrics
    pipeline: object


def fit_baseline(
    table: str | os.PathLike,
    *,
    out: str | os.PathLike = "models/baseline",
    test_fraction: float = 0.2,
    folds: int = 5,
    seed: int = 0,
    tracks_dir: Optional[str | os.PathLike] = None,
    log: Callable[[str], None] = print,
) -> BaselineResult:
    """Tune and fit the baseline on a descriptor table, test it on held-out songs, save it.

    The songs are split (stratified by genre, seeded) into train and test first, whole groups (artists) when the
    table has a ``group`` column (``genre-cnn features CSV --group-column artist``); the grid is searched with
    stratified K-fold cross-validation grouped by song on the train songs only; the best pipeline is refit on
    all train songs and scored once on the test songs. Its temperature is fitted on cross-validated predictions
    of the train songs, grouped by artist where the table has them (see :meth:`BaselineRecipe.run_folds`).

    With ``tracks_dir`` (the folder the table was made from), the songs are profiled for
    ``genre-cnn monitor`` (``profile.npz``; the model's view from the test songs).

    Returns
    -------
    BaselineResult
        ``metrics`` is the content of ``metrics.json``.
    """

    check_output_folder(out, kind=MODEL_FOLDER, inputs=[table])
    songs, genres, values, columns = read_descriptor_table(table)
    groups = descriptor_table_groups(table)  # artists, when the table has them
    classes = sorted(set(genres.tolist()))
    if len(classes) < 2:
        raise ConfigError(f"{table}: only the genre {classes[0]!r}; a classifier needs at least two")
    splits = split_songs(genres, groups=groups, val_fraction=0, test_fraction=test_fraction, seed=seed)
    train, test = splits == "train", splits == "test"
    smallest = min(int((genres[train] == c).sum()) for c in classes)
    n_folds = min(folds, smallest)
    if n_folds < 2:
        raise ConfigError(f"{table}: a genre has {smallest} training song(s); cross-validation needs at least 2 "
                          "per genre")
    labels = np.array([classes.index(g) for g in genres])
    search = search_grid(values[train], labels[train], groups=np.array(songs)[train], folds=n_folds, seed=seed)
    best = search.best_estimator_

    measured = {"cv_folds": n_folds, "cv_accuracy": float(search.best_score_),
                "best_params": {k: repr(v) for k, v in search.best_params_.items()},
                "train_songs": int(train.sum()), "test_songs": int(test.sum())}
    calibration = baseline_temperature(best, values[train], labels[train],
                                       groups=(np.array(songs) if groups is None else groups)[train], folds=n_folds,
                                       seed=seed)
    if test.any():
        raw = class_probabilities(best, values[test], len(classes))
        scores = score_songs(labels[test], calibration.apply(raw), classes=classes, uncalibrated=raw)
        measured.update(song_accuracy=scores.accuracy, confusion_songs=scores.confusion,
                        temperature=calibration.temperature, ece=scores.ece, brier=scores.brier,
                        ece_uncalibrated=scores.ece_uncalibrated, brier_uncalibrated=scores.brier_uncalibrated,
                        ece_chance=scores.ece_chance, reliability=scores.reliability)
    novelty = fit_novelty(descriptor_space(best, values[train]), layer=DESCRIPTOR_SPACE)
    metrics = Metrics.from_dict(measured)
    import joblib

    with atomic_directory(Path(out), kind=MODEL_FOLDER, inputs=[table]) as tmp:
        saved = ModelDir(tmp)
        joblib.dump(best, saved / saved.PIPELINE)
        saved.write_config(kind=KIND_NAME, classes=classes, package_version=__version__, columns=columns,
                           descriptor_table=str(table), test_fraction=test_fraction, seed=seed,
                           calibration=calibration.to_dict(), descriptor_version=descriptor_table_version(table),
                           novelty=None if novelty is None else novelty.to_dict(),
                           created=datetime.datetime.now().isoformat(timespec="seconds"))
        saved.write_novelty(novelty)
        saved.write_metrics(metrics)
        _write_cv_results(search.cv_results_, saved / saved.GRID_SEARCH)
        if test.any():
            plot_confusion(classes, saved / saved.CONFUSION_PLOT, songs=metrics.confusion_songs,
                           song_accuracy=metrics.song_accuracy)
            plot_reliability(metrics, saved / saved.RELIABILITY_PLOT)
        if tracks_dir is not None:
            _write_profile(tmp, [Path(tracks_dir) / song for song in songs], test, log=log)
    return BaselineResult(model_dir=Path(out), metrics=metrics, pipeline=best)


def _write_profile(model_dir: Path, files: list, unseen, *, log) -> None:
    profile, skipped = Profile.from_files(files, BaselineClassifier(model_dir), unseen=list(unseen))
    if profile is None:
        raise ConfigError(f"tracks_dir: none of the table's songs could be read under {files[0].parent.parent} "
                          f"(e.g. {skipped[0][0]}: {skipped[0][1]}); give the folder the table was made from")
    save_profile(profile, ModelDir(model_dir) / ModelDir.PROFILE)
    if skipped:
        log(f"Reference profile: {profile.n_songs} song(s); {len(skipped)} could not be read, e.g. {skipped[0][0]}")


def _write_cv_results(results: dict, path: Path) -> None:
    keys = ["rank_test_score", "mean_test_score", "std_test_score", "param_pca", "param_classifier"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "mean_accuracy", "std_accuracy", "pca", "classifier"])
        for row in sorted(zip(*(results[k] for k in keys)), key=lambda r: r[0]):
            writer.writerow([row[0], f"{row[1]:.4f}", f"{row[2]:.4f}", repr(row[3]), repr(row[4])])


class BaselineRecipe:
    """The scikit-learn baseline per fold: descriptors of every song computed once, the grid searched on
    each fold's training songs."""

    name = "baseline"
    kind = "baseline"
    title = "the scikit-learn baseline"

    def run_folds(self, dataset: Dataset, fold_of_song: dict, *, config: TrainConfig, val_fraction: float,
                  verbose: int = 0, log: Callable[[str], None] = print, engine: str = "local",
                  scheduler: Optional[str] = None) -> list[dict]:
        """Fit and test the baseline per fold, here whatever the engine (a fold takes a fraction of a second).

        ``config`` gives the seed; the baseline has no epochs and no validation songs. Songs without a
        fold take no part, as in the networks' folds.

        The grid is searched on folds grouped by song, but the temperature is fitted on folds that keep a
        group (an artist) together, as the test folds do: on real-genres (5 folds by artist, two seeds) a
        temperature from song-grouped predictions, which had heard each artist's other songs, left the test
        songs over-confident (pooled ECE 0.073 and 0.092), one from artist-grouped predictions 0.031 and 0.039
        (chance level 0.044); searching the grid by artist too cost 1.3 and 2.5 points of accuracy."""
        log(f"Describing {len(fold_of_song)} songs (once)")
        described = _described_songs(dataset)
        known = np.array([song in fold_of_song for song in described.songs], dtype=bool)
        names, values, labels = described.songs[known], described.values[known], described.labels[known]
        groups = described.groups[known]
        fold = np.array([fold_of_song[song] for song in names])
        results = []
        for number in range(int(fold.max()) + 1):
            started = time.perf_counter()
            train, test = fold != number, fold == number
            pipeline = tuned_baseline(values[train], labels[train], groups=names[train], seed=config.seed)
            calibration = baseline_temperature(pipeline, values[train], labels[train], groups=groups[train],
                                               seed=config.seed)
            raw = class_probabilities(pipeline, values[test], len(dataset.classes))
            scores = score_songs(labels[test], calibration.apply(raw), classes=dataset.classes, uncalibrated=raw)
            accuracy, f1 = scores.accuracy, scores.macro_f1
            results.append({
                "fold": number + 1, "test_songs": sorted(names[test].tolist()),
                "train_songs": sorted(names[train].tolist()), "val_songs": [],
                "seconds": round(time.perf_counter() - started, 2),
                "song_accuracy": accuracy, "song_macro_f1": f1, "chunk_accuracy": None, "chunk_macro_f1": None,
                "temperature": calibration.temperature, "ece": scores.ece, "brier": scores.brier,
                "ece_uncalibrated": scores.ece_uncalibrated, "brier_uncalibrated": scores.brier_uncalibrated,
                "ece_chance": scores.ece_chance, "reliability": scores.reliability,
                "confusion_songs": scores.confusion,
            })
            log(f"Fold {number + 1}: song accuracy {accuracy:.3f}, song macro f1 {f1:.3f}")
        return results

    def challenge(self, dataset: Dataset, *, config: TrainConfig, log: Callable[[str], None] = print) -> dict:
        """Tune the baseline on the dataset's training and validation songs, test it on its test songs.

        The baseline learns from every song the refit CNN learns from (it has no epochs to validate);
        descriptors are computed from the songs' audio (about half a second of CPU per 30 s song).

        Returns
        -------
        dict
            ``{"baseline": {"song_accuracy", "test_songs", "command"}}``, or ``{"baseline": {"error": why}}``.
        """
        log(f"Comparing with {self.title} on the same songs")
        try:
            described = _described_songs(dataset)
            learn, test = described.splits != "test", described.splits == "test"
            pipeline = tuned_baseline(described.values[learn], described.labels[learn],
                                      groups=described.songs[learn], seed=config.seed)
            probabilities = class_probabilities(pipeline, described.values[test], len(dataset.classes))
        except (GenreCnnError, OSError) as exc:  # the CNN is fitted: a failed comparison must not lose it
            return {self.name: {"error": str(exc)}}
        scores = score_songs(described.labels[test], probabilities, classes=dataset.classes)
        return {self.name: {"song_accuracy": scores.accuracy, "test_songs": scores.songs,
                            "command": f"genre-cnn features {audio_root(dataset)} --out features.csv && "
                                       "genre-cnn baseline features.csv --out models/baseline"}}


@dataclasses.dataclass(frozen=True)
class DescribedSongs:
    """The descriptors of a dataset's songs that could be described, one row per song."""

    songs: np.ndarray
    values: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    groups: np.ndarray  #: each song's group (its artist), or the song itself where the dataset has none


def _described_songs(dataset: Dataset) -> DescribedSongs:
    """Describe every song of a chunk dataset from its audio (:func:`genre_cnn.signal.descriptors.describe_songs`).

    The last dataset's descriptors are kept (by its folder, fingerprint and its songs' files' sizes and
    modification times): several comparisons on the same songs describe them once.

    Raises
    ------
    DatasetError
        None of the songs could be described.
    """
    root = audio_root(dataset)
    key = (str(dataset.path), dataset.fingerprint,
           tuple(file_key(root / song) for song in dataset.song_rows()[0]))
    if key not in _last_described:
        _last_described.clear()
        _last_described[key] = _describe_dataset(dataset, root)
    return _last_described[key]


_last_described: dict[tuple, DescribedSongs] = {}


def _describe_dataset(dataset: Dataset, root: Path) -> DescribedSongs:
    songs, first = dataset.song_rows()
    described = describe_songs([root / song for song in songs])
    usable = np.array([not isinstance(row, str) for row in described])
    if not usable.any():
        raise DatasetError(f"{dataset.path}: none of the songs could be described for the baseline ({described[0]})")
    columns = descriptor_columns()
    values = np.array([[row[c] for c in columns] for row, ok in zip(described, usable) if ok])
    groups = np.where(dataset.groups[first] != "", dataset.groups[first], songs)
    return DescribedSongs(songs=songs[usable], values=values, labels=dataset.labels[first[usable]],
                          splits=dataset.splits[first[usable]], groups=groups[usable])


KIND = Kind(name=KIND_NAME, classifier=BaselineClassifier, recipes={"baseline": BaselineRecipe()}, pickled=True)
