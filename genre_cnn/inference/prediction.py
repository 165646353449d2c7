"""What classifying a song gives back, and what every kind of model offers to classify one."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from genre_cnn.signal.audio import is_audio_file

__all__ = ["SongPrediction", "SongEmbedding", "Classifier", "SongVerdict", "song_probabilities", "expand_paths"]

#: Floor of a chunk's probabilities before their logarithm: one chunk's 0 cannot veto a genre.
PROBABILITY_FLOOR = 1e-7


class SongVerdict:
    """A song's genre probabilities from its chunks': their normalised geometric mean.

    Each chunk's probabilities are evidence about the whole song; averaging their logarithms
    (``softmax(mean(log p))``) lets every chunk count in proportion to its confidence instead of
    capping what a sure chunk can say at 1. Measured against the arithmetic mean on 5-fold song
    cross-validation (``benchmarks/RESULTS.md``). Chunks can be added batch by batch, so a song
    of hours needs memory for one batch only.

    Parameters
    ----------
    n_classes : int
    """

    def __init__(self, n_classes: int) -> None:
        self._log_sum = np.zeros(n_classes)
        self.n_chunks = 0

    def add(self, chunk_probabilities: np.ndarray) -> None:
        """Add a batch of chunks' probabilities, shape ``(n_chunks, n_classes)``."""
        chunk_probabilities = np.asarray(chunk_probabilities, dtype=np.float64)
        self._log_sum += np.log(np.clip(chunk_probabilities, PROBABILITY_FLOOR, 1.0)).sum(axis=0)
        self.n_chunks += len(chunk_probabilities)

    @property
    def probabilities(self) -> np.ndarray:
        """The song's probabilities, shape ``(n_classes,)``, summing to 1 (NaN before any chunk)."""
        if not self.n_chunks:
            return np.full(len(self._log_sum), np.nan)
        mean_log = self._log_sum / self.n_chunks
        weights = np.exp(mean_log - mean_log.max())
        return weights / weights.sum()


def song_probabilities(chunk_probabilities: np.ndarray) -> np.ndarray:
    """One song's probabilities from all its chunks' at once (see :class:`SongVerdict`).

    Parameters
    ----------
    chunk_probabilities : np.ndarray [shape=(n_chunks, n_classes)]

    Returns
    -------
    np.ndarray [shape=(n_classes,)]
    """
    verdict = SongVerdict(np.shape(chunk_probabilities)[1])
    verdict.add(chunk_probabilities)
    return verdict.probabilities


@dataclasses.dataclass(frozen=True)
class SongPrediction:
    """The verdict on one file: its genre probabilities, or why it could not be classified.

    Attributes
    ----------
    path : str
    genre : str or None
        The most likely genre.
    probabilities : dict or None
        Calibrated probability of every genre of the model.
    n_chunks : int
    error : str or None
        Why the file could not be classified.
    unsure : bool or None
        The top probability is below the model's ``min_confidence`` (then the second genre is nearly as
        likely: see :meth:`top`); None when the model has no threshold.
    novelty : float or None
        How far the song is from the songs the model learned from, in units of their own spacing
        (:class:`~genre_cnn.models.novelty.Novelty`): about 1 for songs like them; None when the model has
        no novelty reference.
    unfamiliar : bool or None
        ``novelty`` is above the model's threshold: the song is not like anything the model learned from,
        so its genre means little (speech, noise, a genre it was not taught).
    """

    path: str
    genre: Optional[str] = None
    probabilities: Optional[dict] = None
    n_chunks: int = 0
    error: Optional[str] = None
    unsure: Optional[bool] = None
    novelty: Optional[float] = None
    unfamiliar: Optional[bool] = None

    @classmethod
    def of(cls, path: str | os.PathLike, classes: Sequence[str], probabilities: np.ndarray, *, n_chunks: int,
           min_confidence: Optional[float] = None, novelty: Optional[float] = None,
           max_novelty: Optional[float] = None) -> "SongPrediction":
        """The verdict from a song's probabilities (in ``classes`` order), unsure below ``min_confidence``,
        unfamiliar when its ``novelty`` is above ``max_novelty``."""
        probabilities = np.asarray(probabilities, dtype=np.float64)
        top = int(probabilities.argmax())
        unsure = None if min_confidence is None else bool(probabilities[top] < min_confidence)
        unfamiliar = None if novelty is None or max_novelty is None else bool(novelty > max_novelty)
        return cls(path=str(path), genre=classes[top], n_chunks=n_chunks, unsure=unsure,
                   probabilities={c: float(p) for c, p in zip(classes, probabilities)},
                   novelty=None if novelty is None else round(float(novelty), 4), unfamiliar=unfamiliar)

    @property
    def ok(self) -> bool:
        return self.error is None

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` most likely genres with their probabilities, most likely first."""
        ranked = sorted(self.probabilities.items(), key=lambda item: -item[1])
        return ranked[:k]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SongEmbedding:
    """One song as a model sees it: its verdict, and where it lies in the model's embedding space.

    What ``monitor`` profiles songs by (:class:`genre_cnn.monitoring.profile.Profile`), made in one pass over
    the song's inputs by :meth:`Classifier.embed_file`.

    Attributes
    ----------
    probabilities : np.ndarray [shape=(n_classes,)]
        Calibrated, the song's chunks combined as ``classify`` combines them.
    embedding : np.ndarray [shape=(dim,)]
        The mean of the song's chunks' embeddings (a network: its embedding layer's output; a baseline:
        its standardised descriptors).
    n_chunks : int
        How many inputs (chunks, patches, one row of descriptors) the song gave.
    """

    probabilities: np.ndarray
    embedding: np.ndarray
    n_chunks: int


@runtime_checkable
class Classifier(Protocol):
    """What every kind of model offers ``classify``, ``evaluate``, ``compare``, ``serve`` and ``monitor``.

    Each kind (:mod:`genre_cnn.kinds`) has one: :class:`genre_cnn.kinds.cnn.CnnClassifier` (the CNN from
    scratch), :class:`genre_cnn.kinds.musicnn.MusicnnClassifier` (a head on the pretrained musicnn backbone),
    :class:`genre_cnn.kinds.baseline.BaselineClassifier` (scikit-learn on descriptors).
    :func:`genre_cnn.inference.classifier.open_classifier` opens any model folder as the right one.
    """

    model_dir: Path
    classes: tuple
    kind: str  #: its kind's name (:mod:`genre_cnn.kinds`), as written in the model's config.json
    backend: str  #: what runs the model: "litert", "keras" or "sklearn"
    makes_timelines: bool  #: whether :func:`genre_cnn.inference.timeline.classify_timeline` can use it
    #: whether its network's inputs are the log-mel chunks (their band means come free); such a kind also has
    #: ``network_inputs(path)`` and ``embed_inputs(batches)`` (:class:`~genre_cnn.inference.classifier.GenreClassifier`)
    inputs_are_log_mel: bool
    profiles_from_dataset: bool  #: whether ``monitor --rebuild-profile DATASET`` can profile it (a baseline cannot)
    combines_chunks: bool  #: whether a song's verdict combines its chunks' (or patches') verdicts
    calibration: object  #: its :class:`~genre_cnn.models.calibration.Calibration`
    min_confidence: Optional[float]  #: below this top probability a verdict is unsure (None: never)
    novelty: object  #: its :class:`~genre_cnn.models.novelty.Novelty` reference, or None (never unfamiliar)
    feature_config: object  #: the :class:`~genre_cnn.config.FeatureConfig` of its log-mel front end, or None
    filterbank: object  #: the mel filterbank its front end uses, or None (computed from ``feature_config``)
    embedding_layer: object  #: the network layer(s) :meth:`embed_file` takes embeddings from; None: monitor keeps none

    def classify_file(self, path: str | os.PathLike) -> SongPrediction: ...

    def embed_file(self, path: str | os.PathLike) -> SongEmbedding:
        """The song's verdict and embedding in one pass (raises AudioDecodeError for a song it cannot read)."""

    def explain_file(self, path: str | os.PathLike, *, genre: Optional[str] = None):
        """What moved the song's verdict, and the function that draws it (:mod:`genre_cnn.analysis.explain`)."""


def expand_paths(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files as given, folders replaced by their audio files (recursively, sorted, hidden skipped)."""
    for path in map(Path, paths):
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
                # symbolic links are kept even when broken: classify then says what is wrong with them
                if (found.is_file() or found.is_symlink()) and not hidden and is_audio_file(found):
                    yield found
        else:
            yield path
