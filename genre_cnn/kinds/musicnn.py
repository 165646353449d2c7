"""The ``musicnn`` kind: a genre head on the pretrained musicnn backbone, on musicnn's own 3 s patches.

Its network and front end are :mod:`genre_cnn.models.musicnn`, its training
:mod:`genre_cnn.training.transfer`; this module puts them together as a kind (:mod:`genre_cnn.kinds`).
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
from genre_cnn.models.musicnn import HOP, N_MELS, PATCH_FRAMES, SR, song_patches
from genre_cnn.models.store import ModelDir
from genre_cnn.signal.logmel import mel_band_edges
from genre_cnn.training.recipes import TrainedRecipe
from genre_cnn.training.transfer import patch_dataset, train_transfer

__all__ = ["MusicnnClassifier", "MusicnnHead", "KIND"]


class MusicnnClassifier(GenreClassifier):
    """A genre head on the pretrained musicnn backbone: its input is musicnn's own 3 s patches."""

    kind = "musicnn"
    embedding_layer = "musicnn"

    @staticmethod
    def input_shape(feature_config: FeatureConfig) -> tuple:
        return (PATCH_FRAMES, N_MELS)

    def network_inputs(self, path: str | os.PathLike) -> Iterator[np.ndarray]:
        yield song_patches(path)

    def timed_views(self, path: str | os.PathLike):
        """The song's musicnn patches, bands first, with their start times (for ``explain``)."""
        patches = song_patches(path)
        return TimedViews(inputs=np.ascontiguousarray(patches.transpose(0, 2, 1)),
                          starts=np.arange(len(patches)) * PATCH_FRAMES * HOP / SR,
                          seconds_per_frame=HOP / SR,
                          band_edges_hz=mel_band_edges(N_MELS, fmax=SR / 2))

    def predict_views(self, views: np.ndarray) -> np.ndarray:
        """:meth:`predict_chunks` of views from :meth:`timed_views` (patches with their bands first)."""
        return self.predict_chunks(np.ascontiguousarray(views.transpose(0, 2, 1)))


class MusicnnHead:
    """A genre head on the pretrained musicnn backbone, frozen or fine-tuned, on musicnn's own patches."""

    kind = "musicnn"
    unit = "patches"
    replicated = False  # a small head on precomputed embeddings: one device is plenty
    challengers = ()
    litert_weights = "float32"  # int8 not measured on the pretrained backbone

    def training_data(self, dataset, *, log=print) -> Dataset:
        return patch_dataset(dataset, log=log)

    def describe(self, config: TrainConfig) -> str:
        return f", musicnn backbone {'fine-tuned' if config.fine_tune else 'frozen'}"

    def train(self, dataset, *, train_rows, val_rows, config, kept, callbacks, checkpoint=None, verbose=2,
              log=print):
        model, trainee, history = train_transfer(dataset, train_rows=train_rows, val_rows=val_rows, config=config,
                                                 callbacks=callbacks, checkpoint=checkpoint, verbose=verbose)
        kept.restore(trainee)  # the head alone when frozen: it is part of model
        return model, history

    def save_front_end(self, folder: ModelDir, dataset: Dataset) -> None:
        """Nothing: the backbone computes its own input from the audio."""

    def embedding_layer(self, model, config: TrainConfig) -> Optional[str]:
        """The frozen backbone's embedding (its penultimate layer, what the head learns from); None when it is
        fine-tuned (training shapes it: see :meth:`genre_cnn.kinds.cnn.ScratchCnn.embedding_layer`)."""
        return None if config.fine_tune else "musicnn"


KIND = Kind(
    name="musicnn",
    classifier=MusicnnClassifier,
    trainer=MusicnnHead(),
    trains=lambda options: options.get("backbone") == "musicnn",
    recipes={
        "musicnn": TrainedRecipe("musicnn", options={"backbone": "musicnn", "teacher": None, "random_crop": False,
                                                     "augment": ()},
                                 challenge_options={"fine_tune": False, "mixed_precision": False},
                                 title="the pretrained musicnn backbone", command="--backbone musicnn"),
    },
)
