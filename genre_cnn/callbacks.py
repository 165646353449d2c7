"""Keras callbacks used by :func:`genre_cnn.fit` (imports Keras: load only when training)."""

from __future__ import annotations

import time

import numpy as np

from .backend import import_keras

keras = import_keras()

__all__ = ["BestWeights", "EpochTimes"]


class BestWeights(keras.callbacks.Callback):
    """Remember the weights of the epoch with the lowest ``monitor`` and put them back on request.

    Parameters
    ----------
    monitor : str
        A key of Keras' epoch logs, e.g. ``"val_loss"``.
    """

    def __init__(self, *, monitor: str = "val_loss") -> None:
        super().__init__()
        self.monitor = monitor
        self.best = np.inf
        self.best_epoch = -1
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best, self.best_epoch = float(value), epoch
            self.best_weights = self.model.get_weights()

    def restore(self, model) -> None:
        """Load the best weights into ``model`` (nothing happens if no epoch reported ``monitor``)."""
        if self.best_weights is not None:
            model.set_weights(self.best_weights)


class EpochTimes(keras.callbacks.Callback):
    """Record the wall time of every epoch (seconds) in ``seconds``."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
