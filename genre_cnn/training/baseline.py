"""A classic scikit-learn baseline on handcrafted descriptors, tuned by grouped cross-validation."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from genre_cnn.data.dataset import split_songs
from genre_cnn.data.descriptor_table import descriptor_table_version, read_descriptor_table
from genre_cnn.errors import ConfigError
from genre_cnn.inference.baseline import DESCRIPTOR_SPACE, BaselineClassifier, descriptor_space
from genre_cnn.models.calibration import UNCALIBRATED, Calibration
from genre_cnn.models.store import MODEL_FOLDER, Metrics, ModelDir
from genre_cnn.monitoring.profile import SongProfiler, save_profile, songs_profile
from genre_cnn.plots import plot_confusion, plot_reliability
from genre_cnn.runtime.files import atomic_directory, check_output_folder
from genre_cnn.training.calibration import fit_song_temperature
from genre_cnn.training.metrics import score_songs
from genre_cnn.training.novelty import fit_novelty
from genre_cnn.version import __version__

__all__ = ["PARAM_GRID", "BaselineResult", "fit_baseline", "tuned_baseline", "baseline_temperature",
           "class_probabilities"]

#: The grid searched by :func:`fit_baseline` (documented in the README).
PARAM_GRID = [
    {"model": ["logistic"], "pca": [None, 0.95], "C": [0.1, 1.0, 10.0]},
    {"model": ["forest"], "pca": [None], "n_estimators": [200], "max_depth": [None, 8]},
]


@dataclasses.dataclass(frozen=True)
class BaselineResult:
    """What :func:`fit_baseline` saved: where, its metrics, and the fitted pipeline."""

    model_dir: Path
    metrics: Metrics
    pipeline: object


def _pipelines(seed: int):
    """The scikit-learn grid: imputer -> scaler -> optional PCA -> classifier."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler()),
                         ("pca", "passthrough"), ("classifier", "passthrough")])
    grid = []
    for entry in PARAM_GRID:
        pcas = ["passthrough" if p is None else PCA(n_components=p, random_state=seed) for p in entry["pca"]]
        if entry["model"] == ["logistic"]:
            classifiers = [LogisticRegression(C=c, class_weight="balanced", max_iter=5000) for c in entry["C"]]
        else:
            classifiers = [RandomForestClassifier(n_estimators=n, max_depth=d, class_weight="balanced",
                                                  random_state=seed, n_jobs=1)
                           for n in entry["n_estimators"] for d in entry["max_depth"]]
        grid.append({"pca": pcas, "classifier": classifiers})
    return pipeline, grid


def _grid_search(values: np.ndarray, labels: np.ndarray, *, groups: np.ndarray, folds: int, seed: int):
    """The fitted grid search of the baseline pipeline (stratified folds grouped by ``groups``)."""
    from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

    pipeline, grid = _pipelines(seed)
    search = GridSearchCV(pipeline, grid, cv=StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed),
                          scoring="accuracy", n_jobs=1, refit=True)
    return search.fit(values, labels, groups=groups)


def tuned_baseline(values: np.ndarray, labels: np.ndarray, *, groups: np.ndarray, folds: int = 5, seed: int = 0):
    """The baseline pipeline tuned on ``values`` (one descriptor row per song) and refit on all of them.

    Parameters
    ----------
    values : np.ndarray [shape=(n_songs, n_descriptors)]
    labels : np.ndarray [shape=(n_songs,), dtype=int]
    groups : np.ndarray [shape=(n_songs,)]
        Song (or artist) of each row: the inner folds keep a group together.
    folds : int
        Inner folds of the grid search (fewer when a genre has fewer songs).

    Returns
    -------
    sklearn.pipeline.Pipeline
    """
    smallest = int(np.bincount(labels).min()) if len(labels) else 0
    if smallest < 2:
        raise ConfigError(f"a genre has {smallest} training song(s); tuning the baseline needs at least 2 per genre")
    return _grid_search(values, labels, groups=groups, folds=min(folds, smallest), seed=seed).best_estimator_


def baseline_temperature(pipeline, values: np.ndarray, labels: np.ndarray, *, groups: np.ndarray, folds: int = 5,
                         seed: int = 0) -> Calibration:
    """The temperature of a tuned baseline, fitted on its cross-validated probabilities of its own training songs.

    The baseline has no validation songs: each training song is predicted by a copy of ``pipeline``
    fitted on the other folds' songs (grouped by ``groups``, as the grid search was), and the
    temperature is the one that calibrates those predictions.

    Returns
    -------
    Calibration
        :data:`~genre_cnn.models.calibration.UNCALIBRATED` when a genre has fewer than 2 songs.
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    smallest = int(np.bincount(labels).min()) if len(labels) else 0
    if min(folds, smallest) < 2:
        return UNCALIBRATED
    splitter = StratifiedGroupKFold(n_splits=min(folds, smallest), shuffle=True, random_state=seed)
    probabilities = cross_val_predict(clone(pipeline), values, labels, groups=groups, cv=splitter,
                                      method="predict_proba")
    return fit_song_temperature(probabilities, labels, fitted_on="cross-validated training songs")


def class_probabilities(pipeline, values: np.ndarray, n_classes: int) -> np.ndarray:
    """``pipeline.predict_proba`` with one column per genre of the model, 0 for a genre it never saw."""
    probabilities = np.zeros((len(values), n_classes))
    probabilities[:, pipeline.classes_] = pipeline.predict_proba(values)
    return probabilities


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

    The songs are split (stratified by genre, seeded) into train and test first; the grid is
    searched with stratified K-fold cross-validation grouped by song on the train songs only; the
    best pipeline is refit on all train songs and scored once on the test songs.

    With ``tracks_dir`` (the folder the table was made from), the songs are profiled for
    ``genre-cnn monitor`` (``profile.npz``; the model's view from the test songs).

    Returns
    -------
    BaselineResult
        ``metrics`` is the content of ``metrics.json``.
    """

    check_output_folder(out, kind=MODEL_FOLDER, inputs=[table])
    songs, genres, values, columns = read_descriptor_table(table)
    classes = sorted(set(genres.tolist()))
    if len(classes) < 2:
        raise ConfigError(f"{table}: only the genre {classes[0]!r}; a classifier needs at least two")
    splits = split_songs(genres, val_fraction=0, test_fraction=test_fraction, seed=seed)
    train, test = splits == "train", splits == "test"
    smallest = min(int((genres[train] == c).sum()) for c in classes)
    n_folds = min(folds, smallest)
    if n_folds < 2:
        raise ConfigError(f"{table}: a genre has {smallest} training song(s); cross-validation needs at least 2 "
                          "per genre")
    labels = np.array([classes.index(g) for g in genres])
    search = _grid_search(values[train], labels[train], groups=np.array(songs)[train], folds=n_folds, seed=seed)
    best = search.best_estimator_

    measured = {"cv_folds": n_folds, "cv_accuracy": float(search.best_score_),
                "best_params": {k: repr(v) for k, v in search.best_params_.items()},
                "train_songs": int(train.sum()), "test_songs": int(test.sum())}
    calibration = baseline_temperature(best, values[train], labels[train], groups=np.array(songs)[train],
                                       folds=n_folds, seed=seed)
    if test.any():
        raw = class_probabilities(best, values[test], len(classes))
        scores = score_songs(labels[test], calibration.apply(raw), classes=classes, uncalibrated=raw)
        measured.update(song_accuracy=scores.accuracy, confusion_songs=scores.confusion,
                        temperature=calibration.temperature, ece=scores.ece, brier=scores.brier,
                        ece_uncalibrated=scores.ece_uncalibrated, brier_uncalibrated=scores.brier_uncalibrated,
                        reliability=scores.reliability)
    novelty = fit_novelty(descriptor_space(best, values[train]), layer=DESCRIPTOR_SPACE)
    metrics = Metrics.from_dict(measured)
    import joblib

    with atomic_directory(Path(out), kind=MODEL_FOLDER, inputs=[table]) as tmp:
        saved = ModelDir(tmp)
        joblib.dump(best, saved / saved.PIPELINE)
        saved.write_config(kind="baseline", classes=classes, package_version=__version__, columns=columns,
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
            _write_profile(tmp, [Path(tracks_dir) / song for song in songs], test, classes, log=log)
    return BaselineResult(model_dir=Path(out), metrics=metrics, pipeline=best)


def _write_profile(model_dir: Path, files: list, unseen, classes, *, log) -> None:
    profile, skipped = songs_profile(files, list(unseen), SongProfiler(BaselineClassifier(model_dir)), classes=classes)
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
