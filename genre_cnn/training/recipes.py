"""How a kind is trained (its :class:`Trainer`) and compared (its recipes); the cross-validation of any network.

Two words, one meaning each. Each kind (:mod:`genre_cnn.kinds`) brings one :class:`Trainer`, how ``fit``
trains a network of that kind (:func:`genre_cnn.kinds.trainer_for`), and, by name, its *recipes*: what
``cv --recipes`` compares and ``fit --compare`` challenges with (:func:`genre_cnn.kinds.recipe_named`).
A network's recipe is a :class:`TrainedRecipe`: a kind and some of its options, set over the shared
options of the run (and over that kind's options the run was given), trained by the kind's trainer.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional, Protocol

import numpy as np

from genre_cnn.config import TrainConfig
from genre_cnn.data.dataset import Dataset
from genre_cnn.errors import GenreCnnError
from genre_cnn.kinds import configured, trainer_for
from genre_cnn.models.store import ModelDir
from genre_cnn.training.cv import train_folds
from genre_cnn.training.fit import test_metrics, train_model

__all__ = ["Trainer", "TrainedRecipe"]


class Trainer(Protocol):
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
    challengers : tuple of str
        The recipes (:func:`genre_cnn.kinds.recipe_named`) that ``fit --compare`` trains on the same
        songs, to tell the user when one of them would do better.
    litert_weights : {"float32", "int8"}
        How the model folder's ``model.tflite`` (what ``classify`` runs) stores the weights
        (:data:`genre_cnn.inference.runners.LITERT_WEIGHTS`): int8 only where its parity was measured.
    """

    kind: str
    unit: str
    replicated: bool
    challengers: tuple[str, ...]
    litert_weights: str

    def training_data(self, dataset: Dataset, *, log: Callable[[str], None]) -> Dataset:
        """The dataset this kind trains on, made from a loaded chunk dataset."""

    def describe(self, config: TrainConfig) -> str:
        """What the training log says about this training (``", random crops"``...)."""

    def train(self, dataset: Dataset, *, train_rows: np.ndarray, val_rows: np.ndarray, config: TrainConfig,
              kept, callbacks: list, checkpoint, verbose: int, log: Callable[[str], None]) -> tuple[object, dict]:
        """Fit a fresh network; returns it with the kept epoch's weights, and the history."""

    def save_front_end(self, folder: ModelDir, dataset: Dataset) -> None:
        """Save what classification needs besides the network to compute its input."""

    def embedding_layer(self, model, config: TrainConfig) -> Optional[str]:
        """The layer of ``model`` whose output places a song among the training songs
        (:class:`~genre_cnn.models.novelty.Novelty`), or None when this kind has none yet."""


class TrainedRecipe:
    """A network trained per fold (or for ``fit``'s comparison) with the shared options and its own.

    Parameters
    ----------
    name : str
        As ``cv --recipes`` knows it.
    kind : str
        The kind it trains (:mod:`genre_cnn.kinds`).
    options : mapping
        Options of that kind this recipe sets (``{"teacher": "musicnn"}``), over those the run gave
        that kind; the options the run gave another kind do not apply.
    title : str
        How ``fit``'s comparison names it.
    command : str
        The ``genre-cnn fit`` options that train it (for "fit it with: ...").
    """

    def __init__(self, name: str, *, kind: str, options: Mapping = {}, title: str = "", command: str = "") -> None:
        self.name = name
        self.kind = kind
        self.options = dict(options)
        self.title = title or name
        self.command = command

    def configure(self, config: TrainConfig) -> TrainConfig:
        """The run's ``config``, training this recipe's kind with this recipe's options set over the run's own."""
        given = config.option_values() if config.kind == self.kind else {}
        return configured(dataclasses.replace(config, kind=self.kind, options={**given, **self.options}))

    def run_folds(self, dataset: Dataset, fold_of_song: dict, *, config: TrainConfig, val_fraction: float,
                  verbose: int = 0, log: Callable[[str], None] = print, engine: str = "local",
                  scheduler: Optional[str] = None) -> list[dict]:
        """Train and test one model per fold (:func:`genre_cnn.training.cv.train_folds`)."""
        return train_folds(dataset, fold_of_song, config=self.configure(config), val_fraction=val_fraction,
                           verbose=verbose, log=log, engine=engine, scheduler=scheduler)

    def challenge(self, dataset: Dataset, *, config: TrainConfig, log: Callable[[str], None] = print) -> dict:
        """Train this recipe on the dataset's training songs and measure it on its test songs (``fit``'s comparison).

        The challenger gets the same songs, splits, epochs, seed and refit as the model it is
        compared with; only the recipe differs.

        Returns
        -------
        dict
            ``{name: {"song_accuracy", "test_songs", "command"}}``, or ``{name: {"error": why}}`` when it
            could not be trained (e.g. the songs' audio moved since the dataset was built).
        """
        challenger = self.configure(config)
        log(f"Comparing with {self.title} on the same songs")
        try:
            data = trainer_for(challenger).training_data(dataset, log=log)
            train_rows, val_rows, test_rows = (data.indices(s) for s in ("train", "val", "test"))
            trained = train_model(data, train_rows=train_rows, val_rows=val_rows, config=challenger, verbose=0,
                                  log=lambda message: None)
            measured = test_metrics(trained.model, data, test_rows, batch_size=challenger.batch_size,
                                    calibration=trained.calibration)
        except (GenreCnnError, OSError) as exc:  # the model is fitted: a failed comparison must not lose it
            return {self.name: {"error": str(exc)}}
        options = f" --epochs {config.epochs}" + (f" --seed {config.seed}" if config.seed else "") \
            + ("" if config.refit else " --no-refit")
        return {self.name: {"song_accuracy": measured["song_accuracy"], "test_songs": measured["test_songs"],
                            "command": " ".join(filter(None, ("genre-cnn fit", self.command,
                                                              f"--data {dataset.path}{options}")))}}
