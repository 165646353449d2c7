"""The ``cnn`` kind: the small CNN trained from scratch on log-mel chunks (with or without a teacher).

Its network is :func:`genre_cnn.models.cnn.build_model`, its training
:func:`genre_cnn.training.scratch.train_scratch`; this module puts them together as a kind
(:mod:`genre_cnn.kinds`): the classifier that opens a fitted folder, how ``fit`` trains one, and
the recipes ``cv`` compares (``scratch``, ``teacher``).
"""

from __future__ import annotations

import os
from typing import Iterator, Optional

import numpy as np

from genre_cnn.config import FeatureConfig, TrainConfig
from genre_cnn.data.dataset import Dataset
from genre_cnn.inference.classifier import GenreClassifier
from genre_cnn.inference.occlusion import TimedViews
from genre_cnn.kinds import Kind
from genre_cnn.models.cnn import SUMMARY_LAYER
from genre_cnn.models.store import ModelDir
from genre_cnn.signal.logmel import SongFeatureStream, mel_band_edges
from genre_cnn.training.recipes import TrainedRecipe
from genre_cnn.training.scratch import train_scratch

__all__ = ["CnnClassifier", "ScratchCnn", "KIND"]


class CnnClassifier(GenreClassifier):
    """The CNN trained from scratch: its input is the log-mel chunks of
    :class:`~genre_cnn.signal.logmel.SongFeatureStream`."""

    kind = "cnn"
    #: The wide head's standardised spectral summary (what its linear path sees; with it, songs of a genre
    #: the model never saw are told apart: tests/test_monitor.py), else the pooled convolutions.
    embedding_layer = ("standardise_summary", "global_pool")
    makes_timelines = True
    inputs_are_log_mel = True

    @staticmethod
    def input_shape(feature_config: FeatureConfig) -> tuple:
        return feature_config.input_shape

    @staticmethod
    def read_front_end(folder: ModelDir, feature_config: FeatureConfig) -> np.ndarray:
        """The mel filterbank the model was trained with (so classify needs no librosa)."""
        return folder.read_filterbank(feature_config)

    def network_inputs(self, path: str | os.PathLike) -> Iterator[np.ndarray]:
        for features, _ in SongFeatureStream(path, self.feature_config, filterbank=self.filterbank):
            yield features

    def timed_views(self, path: str | os.PathLike):
        """The song's log-mel chunks with their start times, for :func:`genre_cnn.inference.occlusion.explain_song`."""
        config, inputs, starts = self.feature_config, [], []
        for features, offsets in SongFeatureStream(path, config, filterbank=self.filterbank):
            inputs.append(features)
            starts.append(offsets / config.sr)
        return TimedViews(inputs=np.concatenate(inputs), starts=np.concatenate(starts),
                          seconds_per_frame=config.hop_length / config.sr,
                          band_edges_hz=mel_band_edges(config.n_mels, fmin=config.fmin,
                                                      fmax=config.sr / 2 if config.fmax is None else config.fmax))

    def predict_views(self, views: np.ndarray) -> np.ndarray:
        """:meth:`predict_chunks` of views from :meth:`timed_views` (they are the chunks)."""
        return self.predict_chunks(views)


class ScratchCnn:
    """The small CNN from scratch on log-mel chunks (:func:`genre_cnn.training.scratch.train_scratch`)."""

    kind = "cnn"
    unit = "chunks"
    replicated = True
    #: The recipes ``fit --compare`` trains on the same songs to tell the user when one would do better.
    challengers = ("musicnn", "baseline")
    #: Measured (benchmarks/RESULTS.md): half the network's CPU time, the same top genre on all 568 songs of the
    #: demo, dev-music and real-genres, probabilities within 0.015 of float32.
    litert_weights = "int8"

    def training_data(self, dataset, *, log=print) -> Dataset:
        return dataset

    def describe(self, config: TrainConfig) -> str:
        text = f", augmented with {'+'.join(config.augment)}" if config.augment else ""
        text += ", random crops" if config.random_crop else ""
        text += f", distilled from {config.teacher} (T={config.temperature:g})" if config.teacher else ""
        return text

    def train(self, dataset, *, train_rows, val_rows, config, kept, callbacks, checkpoint=None, verbose=2,
              log=print):
        return train_scratch(dataset, train_rows=train_rows, val_rows=val_rows, config=config, kept=kept,
                             callbacks=callbacks, checkpoint=checkpoint, verbose=verbose, log=log)

    def save_front_end(self, folder: ModelDir, dataset: Dataset) -> None:
        folder.write_filterbank(dataset.feature_config)  # so classify needs no librosa

    def embedding_layer(self, model, config: TrainConfig) -> Optional[str]:
        """The wide head's standardised spectral summary; None for the summary head.

        Measured on real-genres (one split by artist, 92 test songs against 24 recordings of speech, noise,
        sweeps and tones): the summary separates them perfectly (AUROC 1.000), the top probability not at
        all (0.52); benchmarks/RESULTS.md. The novelty threshold is chosen on the training songs, each
        against the others, which is fair only for an embedding training does not shape: the summary is
        (its standardisation aside), the summary head's pooled convolutions are not, so that head gets none.
        """
        present = {layer.name for layer in model.layers}
        return SUMMARY_LAYER if SUMMARY_LAYER in present else None


KIND = Kind(
    name="cnn",
    classifier=CnnClassifier,
    trainer=ScratchCnn(),
    trains=lambda options: not options.get("backbone"),
    recipes={
        "scratch": TrainedRecipe("scratch", options={"teacher": None, "backbone": None}, title="the CNN from scratch"),
        "teacher": TrainedRecipe("teacher", options={"teacher": "musicnn", "backbone": None},
                                 title="the CNN distilled from musicnn", command="--teacher musicnn"),
    },
)
