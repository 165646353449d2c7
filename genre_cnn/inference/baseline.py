"""A fitted scikit-learn baseline, opened for ``classify`` like any other model.

Opening one unpickles ``model.joblib`` with joblib: the only pickle genre-cnn loads, and only
from a model folder the user names (``--model``), never from ``models/latest``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from genre_cnn.errors import AudioDecodeError, GenreCnnWarning, ModelError
from genre_cnn.inference.occlusion import explain_descriptors
from genre_cnn.inference.prediction import SongPrediction
from genre_cnn.models.store import ModelDir
from genre_cnn.plots import plot_descriptor_explanation
from genre_cnn.signal.descriptors import DESCRIPTOR_VERSION, song_descriptors

__all__ = ["BaselineClassifier", "DESCRIPTOR_SPACE", "descriptor_space"]


#: What a baseline's novelty measures distances in (config.json's ``novelty.layer``).
DESCRIPTOR_SPACE = "descriptors"


def descriptor_space(pipeline, values: np.ndarray) -> np.ndarray:
    """Songs' descriptors as the pipeline's classifier sees them before any PCA: imputed and standardised
    (the space a baseline's :class:`~genre_cnn.models.novelty.Novelty` measures in)."""
    return pipeline[:2].transform(values)


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

    def __init__(self, model_dir: str | os.PathLike) -> None:
        import joblib

        self.model_dir = Path(model_dir)
        folder = ModelDir(self.model_dir)
        saved = folder.read_config()
        if folder.kind(saved) != "baseline" or not (folder / folder.PIPELINE).is_file():
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

    def explain_file(self, path: str | os.PathLike, *, genre: Optional[str] = None):
        """The descriptors that moved the song's verdict most, and the function that draws them."""
        return explain_descriptors(self, path, genre=genre), plot_descriptor_explanation
