"""Fit a model's novelty reference (:class:`genre_cnn.models.novelty.Novelty`) after training."""

from __future__ import annotations

from typing import Optional

import numpy as np

from genre_cnn.inference.runners import with_embedding
from genre_cnn.models.novelty import NOVELTY_QUANTILE, Novelty, nearest_distances
from genre_cnn.training.scratch import evaluation_batches

__all__ = ["fit_novelty", "song_embeddings", "mean_by_song", "MIN_NOVELTY_SONGS", "MAX_REFERENCE_SONGS"]

#: Fewer songs learned from than this give no novelty reference: the 95 % quantile of fewer is their
#: largest, one odd song would set it (the test suite's 12-song model has none).
MIN_NOVELTY_SONGS = 20

#: At most this many training songs are kept as the reference (a seeded random subset of a bigger dataset:
#: 5000 songs of the CNN's 984-wide summary are ~20 MB on disk, ~40 MB in memory, a song's distance to them
#: ~10 ms of CPU); the
#: spacing is measured on the same subset, so novelty stays in the same units.
MAX_REFERENCE_SONGS = 5000
#: A standardised dimension never gets a smaller scale than this (a constant feature stays harmless).
MIN_SCALE = 1e-6


def mean_by_song(values: np.ndarray, songs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the rows of ``values`` that belong to each song, songs in sorted order.

    Returns
    -------
    names : np.ndarray [shape=(n_songs,)]
    means : np.ndarray [shape=(n_songs, dim)]
    """
    names, which = np.unique(np.asarray(songs), return_inverse=True)
    sums = np.zeros((len(names), values.shape[1]))
    np.add.at(sums, which, values)
    return names, sums / np.bincount(which, minlength=len(names))[:, None]


def song_embeddings(model, dataset, rows: np.ndarray, *, layer: str, batch_size: int = 32) -> np.ndarray:
    """Each song's mean embedding (the output of ``layer``) over its chunks ``rows``, songs in sorted order.

    Parameters
    ----------
    model : keras.Model
    dataset : genre_cnn.data.dataset.Dataset
    rows : np.ndarray
        Chunks, as stored (never augmented).
    layer : str
        Name of a layer of ``model``.

    Returns
    -------
    np.ndarray [shape=(n_songs, dim)]
    """
    # the network classify runs (genres, then the embedding): the same numbers at fit and classify time
    network = with_embedding(model, layer)
    outputs = network.predict(evaluation_batches(dataset, rows, batch_size=batch_size), verbose=0)
    chunks = np.asarray(outputs, np.float64)[:, len(dataset.classes):]
    return mean_by_song(chunks, dataset.songs[rows])[1]


def fit_novelty(reference: np.ndarray, *, layer: str) -> Optional[Novelty]:
    """The novelty reference of a model from the embeddings of every song it learned from.

    The threshold is the :data:`~genre_cnn.models.novelty.NOVELTY_QUANTILE` quantile of the songs' own
    novelty, each measured against the others (leave one out). Measured against the alternative, the
    validation songs measured against the first training's songs (benchmarks/RESULTS.md, 2026-12-06,
    4 splits of real-genres and dev-music): the test songs flagged 0-15 % either way, the foreign
    recordings flagged in every split (against 67 % in one split), as the threshold comes from all the
    songs (300+, not the 60-80 validation songs) and from the model that is saved. The embeddings the
    recipes use are not trained (the CNN's standardised spectral summary, musicnn's frozen trunk, a
    baseline's descriptors), so a song left out is as far from the others as a new song would be
    (probe on real-genres: the test songs' median novelty 1.02 of the training songs').

    Parameters
    ----------
    reference : np.ndarray [shape=(n_songs, dim)]
    layer : str
        What the embeddings are (recorded).

    Returns
    -------
    Novelty or None
        None with fewer than :data:`MIN_NOVELTY_SONGS` songs, or fewer than two distinct ones.
    """
    reference = np.asarray(reference, np.float64)
    if len(reference) < MIN_NOVELTY_SONGS:
        return None
    if len(reference) > MAX_REFERENCE_SONGS:
        keep = np.random.default_rng(0).choice(len(reference), MAX_REFERENCE_SONGS, replace=False)
        reference = reference[np.sort(keep)]
    center, scale = reference.mean(axis=0), np.maximum(reference.std(axis=0), MIN_SCALE)
    standardised = (reference - center) / scale
    left_out = nearest_distances(standardised, standardised, leave_one_out=True)
    spacing = float(np.median(left_out))
    if not spacing > 0:  # duplicates: no scale to measure novelty in
        return None
    threshold = float(np.quantile(left_out / spacing, NOVELTY_QUANTILE))
    return Novelty(layer=layer, center=center, scale=scale, reference=standardised, spacing=spacing,
                   threshold=threshold, fitted_on="training songs, each against the others",
                   songs=len(standardised))
