"""The ``musicnn`` kind: a genre head on the pretrained musicnn backbone, on musicnn's own 3 s patches.

Its network and front end are :mod:`genre_cnn.models.musicnn`, its training
:mod:`genre_cnn.training.transfer`; this module puts them together as a kind (:mod:`genre_cnn.kinds`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Mapping, Optional

import numpy as np

from genre_cnn.config import FeatureConfig, TrainConfig, check_bool
from genre_cnn.data.dataset import Dataset
from genre_cnn.inference.classifier import GenreClassifier
from genre_cnn.inference.occlusion import TimedViews
from genre_cnn.kinds import Kind, options_of
from genre_cnn.models.musicnn import HOP, N_MELS, PATCH_FRAMES, SR, song_patches
from genre_cnn.models.store import ModelDir
from genre_cnn.signal.logmel import mel_band_edges
from genre_cnn.training.recipes import TrainedRecipe
from genre_cnn.training.transfer import patch_dataset, train_transfer

__all__ = ["MusicnnOptions", "MusicnnClassifier", "MusicnnHead", "KIND"]


@dataclasses.dataclass(frozen=True)
class MusicnnOptions:
    """The options of a genre head on the musicnn backbone (``TrainConfig(kind="musicnn", options=...)``).

    Parameters
    ----------
    fine_tune : bool
        Also update the backbone's top layers (at a tenth of the learning rate), instead of training
        the head alone on cached embeddings.
    """

    fine_tune: bool = False

    def __post_init__(self) -> None:
        check_bool("fine_tune", self.fine_tune)

    @classmethod
    def from_flat_train_config(cls, saved: Mapping) -> "MusicnnOptions":
        """The options in a flat ``train_config`` saved before kinds had their own."""
        return cls(fine_tune=saved.get("fine_tune", False))


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
        return f", musicnn backbone {'fine-tuned' if options_of(config).fine_tune else 'frozen'}"

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
        return None if options_of(config).fine_tune else "musicnn"


KIND = Kind(
    name="musicnn",
    classifier=MusicnnClassifier,
    options=MusicnnOptions,
    trainer=MusicnnHead(),
    claims_flat_train_config=lambda saved: saved.get("backbone") == "musicnn",
    recipes={
        "musicnn": TrainedRecipe("musicnn", kind="musicnn", title="the pretrained musicnn backbone",
                                 command="--backbone musicnn"),
    },
)
