"""Why did the model choose this genre? Occlusion maps of a song's log-mel, and a baseline's telling descriptors.

**Occlusion** (Zeiler & Fergus 2014): each chunk's log-mel is covered one patch at a time (a grid of
:data:`BAND_GROUPS` by :data:`TIME_SLICES` patches: 16 mel bands by 0.37 s for the default 4.5 s, 128-band
chunks), the patch
filled with each band's mean level over the chunk, and the network run again; the drop of the chosen
genre's (calibrated) probability is the patch's *saliency*. Chosen over Grad-CAM because it needs no
gradients (it runs on the LiteRT model ``classify`` uses, with its calibration) and measures exactly
what the picture claims: what the verdict loses without that part of the sound; and because the
default network's wide path sees whole-chunk statistics, which a map of the last convolution's
gradients would not show. The same idea explains a baseline: each descriptor in turn is set to the
training songs' mean (0 once standardised), and the drop of the genre's probability says how much it
mattered.

A check that the map means something (:func:`deletion_check`): hiding the most salient 10 % of the
cells lowers the genre's probability more than hiding 10 % chosen at random.

The computations only: a model kind's ``explain_file`` calls them, :func:`genre_cnn.analysis.explain.explain`
opens the model, explains a song and draws it.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np

from genre_cnn.errors import ConfigError
from genre_cnn.inference.prediction import SongVerdict

__all__ = ["Explanation", "DescriptorExplanation", "TimedViews", "explain_song",
           "explain_descriptors",
           "deletion_check", "BAND_GROUPS", "TIME_SLICES"]

#: The occlusion grid of a chunk: its mel bands in this many groups, its frames in this many slices.
BAND_GROUPS = 8
TIME_SLICES = 12


@dataclasses.dataclass(frozen=True, eq=False)
class Explanation:
    """A song's occlusion map for the genre the model chose.

    Attributes
    ----------
    path : str
    genre : str
        The genre explained (the song's verdict unless another was asked for).
    probability : float
        Its calibrated song probability.
    classes : tuple of str
    inputs : np.ndarray [shape=(n_chunks, n_mels, n_frames)]
        The chunks' log-mels (dB), as the network saw them.
    saliency : np.ndarray [shape=(n_chunks, n_mels, n_frames)]
        Per cell: the drop of the genre's chunk probability when its patch is covered (negative: the
        patch spoke against the genre).
    starts : np.ndarray [shape=(n_chunks,)]
        Start of each chunk, in seconds.
    chunk_probabilities : np.ndarray [shape=(n_chunks, n_classes)]
        Calibrated, per chunk (the per-window timeline of the song).
    seconds_per_frame : float
    band_edges_hz : np.ndarray [shape=(n_mels + 1,)]
        Approximate frequency edges of the mel bands.
    method : str
    """

    path: str
    genre: str
    probability: float
    classes: tuple
    inputs: np.ndarray
    saliency: np.ndarray
    starts: np.ndarray
    chunk_probabilities: np.ndarray
    seconds_per_frame: float
    band_edges_hz: np.ndarray
    method: str = "occlusion"

    def song_map(self) -> tuple[np.ndarray, np.ndarray]:
        """The chunks' log-mel and saliency laid out on one time axis (overlaps averaged; gaps NaN).

        Returns
        -------
        log_mel, saliency : np.ndarray [shape=(n_mels, n_song_frames)]
        """
        n_chunks, n_mels, n_frames = self.inputs.shape
        first = np.round(self.starts / self.seconds_per_frame).astype(int)
        length = int(first.max()) + n_frames if n_chunks else n_frames
        sums, maps, counts = np.zeros((n_mels, length)), np.zeros((n_mels, length)), np.zeros(length)
        for start, chunk, saliency in zip(first, self.inputs, self.saliency):
            sums[:, start:start + n_frames] += chunk
            maps[:, start:start + n_frames] += saliency
            counts[start:start + n_frames] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            return sums / counts, maps / counts

    def top_regions(self, k: int = 3) -> list[dict]:
        """The ``k`` patches whose covering lowered the genre's probability most, most telling first.

        Returns
        -------
        list of dict
            ``start``, ``end`` (seconds), ``low_hz``, ``high_hz`` and ``drop`` (probability lost).
        """
        regions = []
        for chunk, start in enumerate(self.starts):
            for bands, frames in _patches(self.inputs.shape[1:]):
                top, end = min(bands.stop, self.inputs.shape[1]), min(frames.stop, self.inputs.shape[2])
                regions.append({"start": float(start + frames.start * self.seconds_per_frame),
                                "end": float(start + end * self.seconds_per_frame),
                                "low_hz": float(self.band_edges_hz[bands.start]),
                                "high_hz": float(self.band_edges_hz[top]),
                                "drop": float(self.saliency[chunk, bands.start, frames.start])})
        return sorted(regions, key=lambda region: -region["drop"])[:k]


@dataclasses.dataclass(frozen=True)
class DescriptorExplanation:
    """A baseline's verdict on a song and the descriptors that moved it most.

    Attributes
    ----------
    path, genre : str
    probability : float
    drops : dict of str to float
        Per descriptor: the drop of the genre's probability when it is set to the training songs' mean,
        largest first.
    method : str
    """

    path: str
    genre: str
    probability: float
    drops: dict
    method: str = "descriptor occlusion"


def explain_song(classifier, path: str | os.PathLike, *, genre: Optional[str] = None) -> Explanation:
    """The occlusion map of a song for ``genre`` (default: the genre the model chooses).

    Parameters
    ----------
    classifier : GenreClassifier
        From :func:`genre_cnn.inference.classifier.open_classifier`: a network kind, which gives its inputs as
        mel-by-frame views (``timed_views``: the CNN's log-mel chunks, musicnn's patches of its own front end).
    path : path-like
    genre : str, optional
        Explain this genre instead of the chosen one.

    Raises
    ------
    ConfigError
        A model kind this cannot explain, or a genre the model does not know.
    AudioDecodeError
        The file cannot be decoded (too short, silent, damaged).
    """
    if not hasattr(classifier, "timed_views"):
        raise ConfigError(f"model={classifier.model_dir}: a {classifier.kind} model has no spectrogram to "
                          "explain; explain a network (a baseline's descriptors: explain_descriptors)",
                          parameter="model")
    if genre is not None and genre not in classifier.classes:
        raise ConfigError(f"genre={genre!r} is not one of the model's genres ({', '.join(classifier.classes)})",
                          parameter="genre")
    views = classifier.timed_views(path)
    inputs, starts = views.inputs, views.starts
    chunk_probabilities = classifier.predict_views(inputs)
    verdict = SongVerdict(len(classifier.classes))
    verdict.add(chunk_probabilities)
    song = verdict.probabilities
    target = classifier.classes.index(genre) if genre is not None else int(np.argmax(song))
    saliency = np.stack([_occlusion_map(classifier, chunk, target, chunk_probabilities[i, target])
                         for i, chunk in enumerate(inputs)])
    return Explanation(path=str(path), genre=classifier.classes[target], probability=float(song[target]),
                       classes=tuple(classifier.classes), inputs=inputs, saliency=saliency, starts=starts,
                       chunk_probabilities=chunk_probabilities, seconds_per_frame=views.seconds_per_frame,
                       band_edges_hz=views.band_edges_hz)


def _patches(shape: tuple[int, int]):
    """The occlusion grid of a ``(n_mels, n_frames)`` chunk: (bands, frames) slices."""
    band_step, frame_step = max(1, -(-shape[0] // BAND_GROUPS)), max(1, -(-shape[1] // TIME_SLICES))
    for band in range(0, shape[0], band_step):
        for frame in range(0, shape[1], frame_step):
            yield slice(band, band + band_step), slice(frame, frame + frame_step)


def _occlusion_map(classifier, chunk: np.ndarray, target: int, original: float) -> np.ndarray:
    """One chunk's saliency: each patch covered with its bands' mean level over the chunk."""
    fill = np.broadcast_to(chunk.mean(axis=1, keepdims=True), chunk.shape)
    patches = list(_patches(chunk.shape))
    covered = np.repeat(chunk[np.newaxis], len(patches), axis=0)
    for copy, (bands, frames) in zip(covered, patches):
        copy[bands, frames] = fill[bands, frames]
    drops = original - classifier.predict_views(covered)[:, target]
    saliency = np.zeros(chunk.shape, np.float32)
    for drop, (bands, frames) in zip(drops, patches):
        saliency[bands, frames] = drop
    return saliency


@dataclasses.dataclass(frozen=True)
class TimedViews:
    """A song's network inputs seen as spectrograms, for :func:`explain_song` (a network kind's ``timed_views``).

    Attributes
    ----------
    inputs : np.ndarray [shape=(n_inputs, n_bands, n_frames)]
        Bands first, whatever the network's own layout (its ``predict_views`` takes them back).
    starts : np.ndarray [shape=(n_inputs,)]
        Start of each input in seconds.
    seconds_per_frame : float
    band_edges_hz : np.ndarray [shape=(n_bands + 1,)]
    """

    inputs: np.ndarray
    starts: np.ndarray
    seconds_per_frame: float
    band_edges_hz: np.ndarray


def deletion_check(classifier, explanation: Explanation, *, fraction: float = 0.1,
                   seed: int = 0) -> tuple[float, float]:
    """Does the map point at what matters? The drop of the song's genre probability when the most salient
    ``fraction`` of the cells are covered, and when as many random cells are.

    Cells are covered as in the occlusion (each band's mean over its chunk), all at once.

    Returns
    -------
    salient_drop, random_drop : float
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"fraction={fraction} must be between 0 and 1", parameter="fraction")
    inputs, saliency = explanation.inputs, explanation.saliency
    target = explanation.classes.index(explanation.genre)
    count = max(1, round(fraction * saliency.size))
    salient = np.zeros(saliency.size, bool)
    salient[np.argsort(-saliency, axis=None, kind="stable")[:count]] = True
    random = np.zeros(saliency.size, bool)
    random[np.random.default_rng(seed).choice(saliency.size, count, replace=False)] = True
    fill = np.broadcast_to(inputs.mean(axis=2, keepdims=True), inputs.shape)

    def song_probability(mask: np.ndarray) -> float:
        covered = np.where(mask.reshape(inputs.shape), fill, inputs).astype(np.float32)
        verdict = SongVerdict(len(explanation.classes))
        verdict.add(classifier.predict_views(covered))
        return float(verdict.probabilities[target])

    return explanation.probability - song_probability(salient), explanation.probability - song_probability(random)


def explain_descriptors(classifier, path: str | os.PathLike, *, genre: Optional[str] = None) -> DescriptorExplanation:
    """A baseline's verdict and how much each descriptor moved it (set to the training mean in turn).

    Parameters
    ----------
    classifier : genre_cnn.kinds.baseline.BaselineClassifier
        Its ``standardised_descriptors(path)``, and ``decide``: the calibrated probabilities of standardised rows.
    path : path-like
    genre : str, optional

    Raises
    ------
    ConfigError
        A genre the model does not know.
    AudioDecodeError
    """
    if genre is not None and genre not in classifier.classes:
        raise ConfigError(f"genre={genre!r} is not one of the model's genres ({', '.join(classifier.classes)})",
                          parameter="genre")
    standardised = classifier.standardised_descriptors(path)
    original = classifier.decide(standardised)[0]
    target = classifier.classes.index(genre) if genre is not None else int(np.argmax(original))
    covered = np.repeat(standardised, len(classifier.columns), axis=0)
    np.fill_diagonal(covered, 0.0)  # each descriptor in turn at the training songs' mean
    probabilities = classifier.decide(covered)[:, target]
    drops = {column: float(original[target] - p) for column, p in zip(classifier.columns, probabilities)}
    return DescriptorExplanation(path=str(path), genre=classifier.classes[target], probability=float(original[target]),
                                 drops=dict(sorted(drops.items(), key=lambda item: -item[1])))
