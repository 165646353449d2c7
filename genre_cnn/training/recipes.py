"""One training recipe per kind of network: what it trains on, how it trains, what it saves.

:func:`recipe_for` is the one place that chooses the recipe from a :class:`TrainConfig`;
``fit`` and ``cv`` then only call it (the scikit-learn baseline has its own command and module,
:mod:`genre_cnn.training.baseline`).
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

import numpy as np

from genre_cnn.config import TrainConfig
from genre_cnn.data.dataset import Dataset
from genre_cnn.models.cnn import SUMMARY_LAYER
from genre_cnn.models.store import ModelDir
from genre_cnn.training.scratch import train_scratch
from genre_cnn.training.transfer import patch_dataset, train_transfer

__all__ = ["Recipe", "ScratchCnn", "MusicnnHead", "recipe_for"]


class Recipe(Protocol):
    """How one kind of network is trained.

    Attributes
    ----------
    kind : str
        What the model folder's ``config.json`` records as ``"kind"`` (and ``classify`` opens).
    unit : str
        What one training example is, for messages ("chunks", "patches").
    replicated : bool
        Whether it trains a copy of the network on each of several GPUs
        (:func:`genre_cnn.runtime.backend.training_strategy`).
    """

    kind: str
    unit: str
    replicated: bool

    def training_data(self, dataset: Dataset, *, log: Callable[[str], None]) -> Dataset:
        """The dataset this kind trains on, made from a loaded chunk dataset."""

    def describe(self, config: TrainConfig) -> str:
        """What the training log says about this recipe (``", random crops"``...)."""

    def train(self, dataset: Dataset, *, train_rows: np.ndarray, val_rows: np.ndarray, config: TrainConfig,
              kept, callbacks: list, checkpoint, verbose: int, log: Callable[[str], None]) -> tuple[object, dict]:
        """Fit a fresh network; returns it with the kept epoch's weights, and the history."""

    def save_front_end(self, folder: ModelDir, dataset: Dataset) -> None:
        """Save what classification needs besides the network to compute its input."""

    def embedding_layer(self, model, config: TrainConfig) -> Optional[str]:
        """The layer of ``model`` whose output places a song among the training songs
        (:class:`~genre_cnn.models.novelty.Novelty`), or None when this kind has none yet."""


class ScratchCnn:
    """The small CNN from scratch on log-mel chunks (:func:`genre_cnn.training.scratch.train_scratch`)."""

    kind = "cnn"
    unit = "chunks"
    replicated = True

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


class MusicnnHead:
    """A genre head on the pretrained musicnn backbone, frozen or fine-tuned, on musicnn's own patches."""

    kind = "musicnn"
    unit = "patches"
    replicated = False  # a small head on precomputed embeddings: one device is plenty

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
        fine-tuned (training shapes it: see :meth:`ScratchCnn.embedding_layer`)."""
        return None if config.fine_tune else "musicnn"


def recipe_for(config: TrainConfig) -> Recipe:
    """The recipe that trains what ``config`` asks for: the musicnn head with a backbone, else the CNN."""
    return MusicnnHead() if config.backbone else ScratchCnn()
