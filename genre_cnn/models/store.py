"""A model folder on disk: the one place that knows its file names, its config and its metrics.

Every kind of model (a CNN from scratch, the musicnn backbone, the scikit-learn baseline) is
saved as a folder with ``config.json`` (``"kind"`` says which) and ``metrics.json``; what else it
holds depends on the kind. The reference profile's format (``profile.npz``) lives in
:mod:`genre_cnn.monitoring.profile`, the networks' in :mod:`genre_cnn.inference.runners`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np

from genre_cnn.config import FeatureConfig, check_classes, read_json, write_json
from genre_cnn.errors import ConfigError, GenreCnnWarning, ModelError
from genre_cnn.kinds import kind_names, kind_of_flat_train_config
from genre_cnn.models.calibration import Calibration
from genre_cnn.models.novelty import Novelty
from genre_cnn.runtime.files import FolderKind
from genre_cnn.signal.logmel import mel_filterbank

__all__ = ["ModelDir", "Metrics", "MODEL_FOLDER"]


@dataclasses.dataclass(frozen=True)
class Metrics:
    """What a fit measured on its held-out test songs: the content of ``metrics.json``.

    Read by attribute (``metrics.song_accuracy``); fields a kind of model does not measure are None
    and left out of the file.

    Attributes
    ----------
    test_songs, test_chunks : int
    song_accuracy, chunk_accuracy : float or None
        None without test songs (a dataset built with ``--test-fraction 0``).
    chance : float or None
        Accuracy of always guessing the most common test genre.
    song_macro_f1, chunk_macro_f1 : float or None
    per_class : dict or None
        ``{genre: {"precision", "recall", "f1", "songs"}}`` at song level.
    confusion_songs, confusion_chunks : list of list of int or None
        Rows true, columns predicted, in the model's class order.
    songs : list of dict or None
        Per test song: ``song``, ``genre``, ``predicted``, ``probabilities``.
    temperature : float or None
        The calibration's temperature (see :mod:`genre_cnn.models.calibration`).
    ece, brier : float or None
        The test songs' expected calibration error (10 bins) and Brier score, as ``classify`` reports
        them (calibrated).
    ece_uncalibrated, brier_uncalibrated : float or None
        The same without the temperature.
    ece_chance : float or None
        The error chance alone would give a perfectly calibrated model on as many test songs
        (:func:`genre_cnn.training.metrics.chance_calibration_error`); absent from older models.
    reliability : dict or None
        ``{"calibrated": bins, "uncalibrated": bins}``, each ten bins of the top probability with
        their mean ``confidence``, ``accuracy`` and number of ``songs``.
    compared : dict or None
        Other recipes fitted on the same songs and measured on the same test songs (``fit --compare``):
        ``{recipe: {"song_accuracy", "test_songs", "command"}}`` (or ``{"error": why}``).
    note : str or None
        Why there is no test accuracy.
    best_epoch, epochs, epochs_run : int or None
        A network: the epoch kept (from 1), the epochs asked for and those run.
    selected_by : str or None
        How the kept epoch was chosen (``"val_loss"``, ``"last"``...).
    cv_folds, cv_accuracy, best_params, train_songs
        The baseline: its grid search's folds, best cross-validated accuracy and parameters.
    """

    test_songs: int = 0
    test_chunks: Optional[int] = None
    song_accuracy: Optional[float] = None
    chunk_accuracy: Optional[float] = None
    chance: Optional[float] = None
    song_macro_f1: Optional[float] = None
    chunk_macro_f1: Optional[float] = None
    per_class: Optional[dict] = None
    confusion_songs: Optional[list] = None
    confusion_chunks: Optional[list] = None
    songs: Optional[list] = None
    temperature: Optional[float] = None
    ece: Optional[float] = None
    brier: Optional[float] = None
    ece_uncalibrated: Optional[float] = None
    brier_uncalibrated: Optional[float] = None
    ece_chance: Optional[float] = None
    reliability: Optional[dict] = None
    compared: Optional[dict] = None
    note: Optional[str] = None
    best_epoch: Optional[int] = None
    epochs: Optional[int] = None
    epochs_run: Optional[int] = None
    selected_by: Optional[str] = None
    cv_folds: Optional[int] = None
    cv_accuracy: Optional[float] = None
    best_params: Optional[dict] = None
    train_songs: Optional[int] = None

    def to_dict(self) -> dict:
        """JSON-ready, without the fields this model did not measure."""
        return {key: value for key, value in dataclasses.asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "metrics.json") -> "Metrics":
        """Read the content of ``metrics.json``; keys this version does not know are ignored.

        Raises
        ------
        ModelError
            Not a JSON object.
        """
        if not isinstance(data, dict):
            raise ModelError(f"{where}: is damaged (not a JSON object); refit the model")
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclasses.dataclass(frozen=True)
class ModelDir:
    """A model folder: where each of its files lives, and how the shared ones are read and written.

    Writers use it on the temporary folder of an atomic save; readers on the finished one. Every
    reading method raises :class:`~genre_cnn.errors.ModelError` naming the file and the fix.

    Parameters
    ----------
    path : Path
    """

    path: Path

    CONFIG = "config.json"  #: kind, classes, feature and training config, versions
    METRICS = "metrics.json"  #: a Metrics
    KERAS = "model.keras"  #: a network (``fit``)
    LITERT = "model.tflite"  #: the same network exported for LiteRT
    PIPELINE = "model.joblib"  #: a scikit-learn pipeline (``baseline``)
    FILTERBANK = "mel_filterbank.npy"  #: the CNN's mel filterbank, so classify needs no librosa
    HISTORY = "history.json"
    HISTORY_CSV = "history.csv"
    HISTORY_PLOT = "history.png"
    CONFUSION_PLOT = "confusion.png"
    RELIABILITY_PLOT = "reliability.png"  #: the test songs' reliability diagram, before and after calibration
    GRID_SEARCH = "cv_results.csv"  #: the baseline's grid search, one row per candidate
    PROFILE = "profile.npz"  #: the reference profile for ``monitor`` (format: genre_cnn.monitoring.profile)
    NOVELTY = "novelty.npz"  #: the training songs' embeddings, for unfamiliar songs (format: genre_cnn.models.novelty)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def name(self) -> str:
        return self.path.name

    # --- config.json ---------------------------------------------------------------------------
    def write_config(self, *, kind: str, classes, package_version: str, **details: Any) -> None:
        """``config.json``: the model's kind and classes first, then what that kind records."""
        if kind not in kind_names():
            raise ModelError(f"kind={kind!r} must be one of {', '.join(kind_names())}")
        write_json(self.path / self.CONFIG, {"kind": kind, "package_version": package_version,
                                             "classes": list(classes), **details})

    def read_config(self) -> dict:
        """The content of ``config.json``."""
        return read_json(self.path / self.CONFIG, what="the model config", error=ModelError, fix="refit the model",
                         expect=dict)

    def kind(self, config: Optional[dict] = None) -> str:
        """The model's kind: ``config.json``'s ``"kind"``, or for models fitted before it was written, the
        kind ``fit`` trains with the saved ``train_config`` (:func:`genre_cnn.kinds.kind_of_flat_train_config`)."""
        saved = self.read_config() if config is None else config
        if isinstance(saved.get("kind"), str):
            return saved["kind"]
        train_config = saved.get("train_config")
        return kind_of_flat_train_config(train_config if isinstance(train_config, dict) else {}).name

    def fingerprint(self) -> str:
        """Eight hex digits of the SHA-256 of ``config.json``: a fit's identity (a refit changes it)."""
        try:
            return hashlib.sha256((self.path / self.CONFIG).read_bytes()).hexdigest()[:8]
        except OSError as exc:
            raise ModelError(f"{self.path / self.CONFIG}: cannot be read ({exc.strerror}); refit the model") from None

    def read_classes(self, config: Optional[dict] = None) -> tuple[str, ...]:
        saved = self.read_config() if config is None else config
        try:
            return tuple(check_classes(saved.get("classes")))
        except ConfigError as exc:
            raise ModelError(f"{self.path / self.CONFIG}: is damaged ({exc}); refit the model") from None

    def read_feature_config(self, config: Optional[dict] = None) -> FeatureConfig:
        """The feature config the model was trained with, refused if this version cannot reproduce it."""
        saved = self.read_config() if config is None else config
        try:
            return FeatureConfig.from_dict(saved.get("feature_config"))
        except ConfigError as exc:
            raise ModelError(f"{self.path / self.CONFIG}: cannot reproduce this model's features ({exc}); "
                             "refit it with this version of genre-cnn") from None

    def read_calibration(self, config: Optional[dict] = None) -> Calibration:
        """The model's temperature; a model fitted before calibration existed gets temperature 1
        (:data:`~genre_cnn.models.calibration.UNCALIBRATED`) and a
        :class:`~genre_cnn.errors.GenreCnnWarning` saying so (Python shows it once)."""
        saved = self.read_config() if config is None else config
        if "calibration" not in saved:
            warnings.warn(f"{self.path}: fitted before genre-cnn calibrated its probabilities; they are used as "
                          "the model gives them (temperature 1); refit the model to calibrate them",
                          GenreCnnWarning, stacklevel=2)
        return Calibration.from_dict(saved.get("calibration"), where=str(self.path / self.CONFIG))

    # --- novelty.npz (with config.json's "novelty") ---------------------------------------------
    def write_novelty(self, novelty: Optional[Novelty]) -> None:
        """Write the novelty reference's arrays (nothing for None); its numbers go to ``config.json``."""
        if novelty is not None:
            novelty.save_arrays(self.path / self.NOVELTY)

    def read_novelty(self, config: Optional[dict] = None) -> Optional[Novelty]:
        """The model's :class:`~genre_cnn.models.novelty.Novelty`, or None for a model fitted without one
        (before novelty existed, or a kind that has none): its songs are then never flagged unfamiliar."""
        saved = self.read_config() if config is None else config
        return Novelty.load(saved.get("novelty"), self.path / self.NOVELTY, where=str(self.path / self.CONFIG))

    # --- metrics.json --------------------------------------------------------------------------
    def write_metrics(self, metrics: Metrics) -> None:
        write_json(self.path / self.METRICS, metrics.to_dict())

    def read_metrics(self) -> Optional[Metrics]:
        """The saved :class:`Metrics`, or None for a folder without ``metrics.json``."""
        path = self.path / self.METRICS
        if not path.is_file():
            return None
        data = read_json(path, what="the model metrics", error=ModelError, fix="refit the model", expect=dict)
        return Metrics.from_dict(data, where=str(path))

    # --- mel_filterbank.npy --------------------------------------------------------------------
    def write_filterbank(self, config: FeatureConfig) -> None:
        np.save(self.path / self.FILTERBANK, mel_filterbank(config))

    def read_filterbank(self, config: FeatureConfig) -> Optional[np.ndarray]:
        """The filterbank saved with the model, checked against ``config``; None when there is none."""
        path = self.path / self.FILTERBANK
        if not path.is_file():
            return None
        try:
            filterbank = np.load(path, allow_pickle=False)
        except Exception:  # numpy raises many types for a damaged file
            raise ModelError(f"{path}: is damaged (not a saved filterbank); refit the model") from None
        expected = (config.n_mels, 1 + config.n_fft // 2)
        if filterbank.shape != expected:
            raise ModelError(f"{path}: shape {filterbank.shape} does not match the feature config {expected}; "
                             "the folder mixes two models, refit it")
        return filterbank.astype(np.float32, copy=False)


#: A model folder: a network (``fit``) or a scikit-learn pipeline (``baseline``) with its config.
MODEL_FOLDER = FolderKind("model", (ModelDir.CONFIG, ModelDir.KERAS),
                          alternatives=((ModelDir.CONFIG, ModelDir.PIPELINE),))
