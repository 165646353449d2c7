"""A classic scikit-learn baseline on handcrafted descriptors, tuned by grouped cross-validation.

The model's parts (the grid, its search, the temperature); :mod:`genre_cnn.kinds.baseline` fits,
saves, opens and cross-validates it.
"""

from __future__ import annotations

import numpy as np

from genre_cnn.errors import ConfigError
from genre_cnn.models.calibration import UNCALIBRATED, Calibration
from genre_cnn.training.calibration import fit_song_temperature

__all__ = ["PARAM_GRID", "STANDARDISING_STEPS", "split_pipeline", "tuned_baseline", "baseline_temperature",
           "class_probabilities", "search_grid"]

#: The grid the baseline is tuned on (documented in the README).
PARAM_GRID = [
    {"model": ["logistic"], "pca": [None, 0.95], "C": [0.1, 1.0, 10.0]},
    {"model": ["forest"], "pca": [None], "n_estimators": [200], "max_depth": [None, 8]},
]


#: The pipeline's first steps, which impute and standardise the descriptors: the space a baseline's novelty and
#: explanations measure in. The steps after them (an optional PCA, the classifier) decide.
STANDARDISING_STEPS = ("impute", "scale")


def split_pipeline(pipeline):
    """A fitted baseline pipeline as its two halves: the standardisation and what decides from it.

    Returns
    -------
    standardise, decide : sklearn.pipeline.Pipeline
    """
    names = tuple(name for name, _ in pipeline.steps[: len(STANDARDISING_STEPS)])
    if names != STANDARDISING_STEPS:
        raise ValueError(f"a baseline pipeline starts with the steps {STANDARDISING_STEPS}, not {names}")
    return pipeline[: len(STANDARDISING_STEPS)], pipeline[len(STANDARDISING_STEPS):]


def _pipelines(seed: int):
    """The scikit-learn grid: imputer -> scaler -> optional PCA -> classifier."""
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    impute, scale = STANDARDISING_STEPS
    pipeline = Pipeline([(impute, SimpleImputer(strategy="median")), (scale, StandardScaler()),
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


def search_grid(values: np.ndarray, labels: np.ndarray, *, groups: np.ndarray, folds: int, seed: int):
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
    return search_grid(values, labels, groups=groups, folds=min(folds, smallest), seed=seed).best_estimator_


def baseline_temperature(pipeline, values: np.ndarray, labels: np.ndarray, *, groups: np.ndarray, folds: int = 5,
                         seed: int = 0) -> Calibration:
    """The temperature of a tuned baseline, fitted on its cross-validated probabilities of its own training songs.

    The baseline has no validation songs: each training song is predicted by a copy of ``pipeline``
    fitted on the other folds' songs, and the temperature is the one that calibrates those predictions.
    Give the songs' artists as ``groups`` where they are known: the songs it will classify are by new
    artists, and predictions of songs whose artist was heard are too sure of themselves.

    Returns
    -------
    Calibration
        :data:`~genre_cnn.models.calibration.UNCALIBRATED` when a genre's songs are in fewer than 2 groups;
        not calibrated (saying why) with fewer than
        :data:`~genre_cnn.training.calibration.MIN_CALIBRATION_SONGS` songs.
    """
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict

    groups, labels = np.asarray(groups), np.asarray(labels)
    fewest = min((len(set(groups[labels == genre])) for genre in np.unique(labels)), default=0)
    n_splits = min(folds, fewest)  # so every genre can be in every training fold (a missing one gets p = 0)
    if n_splits < 2:
        return UNCALIBRATED
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    probabilities = cross_val_predict(clone(pipeline), values, labels, groups=groups, cv=splitter,
                                      method="predict_proba")
    return fit_song_temperature(probabilities, labels, fitted_on="cross-validated training songs")


def class_probabilities(pipeline, values: np.ndarray, n_classes: int) -> np.ndarray:
    """``pipeline.predict_proba`` with one column per genre of the model, 0 for a genre it never saw."""
    probabilities = np.zeros((len(values), n_classes))
    probabilities[:, pipeline.classes_] = pipeline.predict_proba(values)
    return probabilities
