"""Novelty: how unlike the songs a model learned from is a new song?

A genre classifier always answers with one of its genres, even for a podcast or a sine sweep. A
model's *embedding* of a song (the mean, over its chunks, of a layer just before the genres; a
baseline's standardised descriptors) places it among the songs it learned from. The *novelty* of a
song is the mean distance to its :data:`K_NEAREST` nearest training songs, in units of the *spacing*
of the training songs themselves (the median of the same distance from each training song to the
others): about 1 for a song like those the model knows, several times that for foreign audio.

The threshold above which a song is flagged *unfamiliar* ("not like anything it learned from") is
chosen on songs the model did not learn from (:mod:`genre_cnn.training.novelty`), so that only a
few such songs (:data:`NOVELTY_QUANTILE`) are flagged. Different from *unsure*
(:class:`genre_cnn.models.calibration.Calibration`), which says that two genres are nearly as likely.

The only code that reads or writes ``novelty.npz`` and config.json's ``"novelty"`` is here and in
:class:`genre_cnn.models.store.ModelDir`.
"""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from genre_cnn.errors import ModelError
from genre_cnn.runtime.files import atomic_file

__all__ = ["Novelty", "K_NEAREST", "NOVELTY_QUANTILE", "nearest_distances"]

#: Neighbours averaged: a song near one odd training song is not thereby familiar.
K_NEAREST = 5
#: Share of held-out in-genre songs the threshold lets through unflagged.
NOVELTY_QUANTILE = 0.95


def nearest_distances(queries: np.ndarray, reference: np.ndarray, *, k: int = K_NEAREST,
                      leave_one_out: bool = False) -> np.ndarray:
    """Mean Euclidean distance of each query to its ``k`` nearest reference rows.

    Parameters
    ----------
    queries : np.ndarray [shape=(n, dim)]
    reference : np.ndarray [shape=(m, dim)]
    k : int
        At most the number of reference rows available (fewer when ``reference`` is small).
    leave_one_out : bool
        ``queries`` are ``reference`` itself: row ``i`` is not its own neighbour.

    Returns
    -------
    np.ndarray [shape=(n,)]
    """
    queries, reference = np.asarray(queries, np.float64), np.asarray(reference, np.float64)
    squared = ((queries ** 2).sum(1)[:, None] + (reference ** 2).sum(1)[None, :] - 2 * queries @ reference.T)
    distances = np.sqrt(np.maximum(squared, 0.0))
    if leave_one_out:
        np.fill_diagonal(distances, np.inf)
    usable = reference.shape[0] - int(leave_one_out)
    k = max(1, min(k, usable))
    return np.partition(distances, k - 1, axis=1)[:, :k].mean(axis=1)


@dataclasses.dataclass(frozen=True, eq=False)
class Novelty:
    """The songs a model learned from, in its embedding space, and where "unfamiliar" starts.

    Attributes
    ----------
    layer : str
        What the embedding is: a network layer's name, or ``"descriptors"`` for a baseline.
    center, scale : np.ndarray [shape=(dim,)]
        Standardisation of the embeddings (of the training songs), applied before any distance.
    reference : np.ndarray [shape=(n_songs, dim)]
        The training songs' standardised embeddings.
    spacing : float
        Median distance of a training song to its nearest other training songs: novelty 1.
    threshold : float
        Songs with a novelty above this are unfamiliar.
    fitted_on : str
        Which songs chose the threshold.
    songs : int
        How many.
    k : int
        Neighbours averaged (:data:`K_NEAREST` when fitted).
    """

    layer: str
    center: np.ndarray
    scale: np.ndarray
    reference: np.ndarray
    spacing: float
    threshold: float
    fitted_on: str = ""
    songs: int = 0
    k: int = K_NEAREST

    def __post_init__(self) -> None:
        if self.reference.ndim != 2 or len(self.reference) < 2 or self.center.shape != (self.reference.shape[1],) \
                or self.scale.shape != self.center.shape:
            raise ModelError("novelty: inconsistent reference arrays; refit the model")
        if not (np.isfinite(self.spacing) and self.spacing > 0 and np.isfinite(self.threshold) and self.threshold > 0):
            raise ModelError(f"novelty: spacing={self.spacing!r} and threshold={self.threshold!r} must be positive "
                             "numbers; refit the model")

    @property
    def dim(self) -> int:
        """Width of the embedding."""
        return int(self.reference.shape[1])

    def standardise(self, embeddings: np.ndarray) -> np.ndarray:
        """Embeddings, shape ``(n, dim)``, in the reference's standardised space."""
        return (np.asarray(embeddings, np.float64) - self.center) / self.scale

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """Novelty of songs from their (mean) embeddings, shape ``(n_songs, dim)`` -> ``(n_songs,)``."""
        embeddings = np.atleast_2d(embeddings)
        return nearest_distances(self.standardise(embeddings), self.reference, k=self.k) / self.spacing

    def to_dict(self) -> dict:
        """config.json's ``"novelty"`` (the arrays go to ``novelty.npz``: :meth:`save_arrays`)."""
        return {"layer": self.layer, "dim": self.dim, "k": self.k, "spacing": round(float(self.spacing), 6),
                "threshold": round(float(self.threshold), 6), "fitted_on": self.fitted_on, "songs": self.songs,
                "training_songs": int(len(self.reference))}

    def save_arrays(self, path: Path) -> None:
        """Write ``novelty.npz`` (plain float32 arrays, no pickles), atomically."""
        with atomic_file(path) as partial, open(partial, "wb") as out:
            np.savez_compressed(out, center=self.center.astype(np.float32), scale=self.scale.astype(np.float32),
                                reference=self.reference.astype(np.float32))

    @classmethod
    def load(cls, data: Optional[Any], arrays: Path, *, where: str = "the model config") -> Optional["Novelty"]:
        """Read config.json's ``"novelty"`` and ``arrays`` (``novelty.npz``); None for a model without one.

        Raises
        ------
        ModelError
            Present but damaged.
        """
        if data is None:
            return None
        try:
            with np.load(arrays, allow_pickle=False) as saved:
                center, scale, reference = (saved[name].astype(np.float64) for name in ("center", "scale", "reference"))
            novelty = cls(layer=str(data["layer"]), center=center, scale=scale, reference=reference,
                          spacing=float(data["spacing"]), threshold=float(data["threshold"]),
                          fitted_on=str(data.get("fitted_on", "")), songs=int(data.get("songs", 0)),
                          k=int(data.get("k", K_NEAREST)))
        except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
            raise ModelError(f"{where}: its novelty reference ({arrays.name}) is missing or damaged; "
                             "refit the model") from None
        if novelty.dim != int(data.get("dim", novelty.dim)):
            raise ModelError(f"{where}: its novelty reference ({arrays.name}) does not match config.json; "
                             "refit the model")
        return novelty
