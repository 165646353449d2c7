"""Keras callbacks used by :func:`genre_cnn.fit` (imports Keras: load only when training)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from genre_cnn.runtime.backend import import_keras

keras = import_keras()

__all__ = ["KeptEpoch", "EpochTimes", "BestCheckpoint"]


class KeptEpoch(keras.callbacks.Callback):
    """Choose the epoch whose weights are kept: the one with the lowest ``monitor``, or the last.

    Parameters
    ----------
    monitor : str
        A key of Keras' epoch logs, e.g. ``"val_loss"``.
    keep : {"best", "last"}
        ``"best"`` remembers the weights of the epoch with the lowest ``monitor`` and puts them
        back on :meth:`restore`; ``"last"`` keeps the weights the training ends with.
    """

    def __init__(self, *, monitor: str = "val_loss", keep: str = "best") -> None:
        super().__init__()
        self.monitor = monitor
        self.keep = keep
        self.lowest = np.inf
        self.kept_epoch = -1
        self.kept_weights = None

    @property
    def selected_by(self) -> str:
        """How the kept epoch was chosen, for the metrics: the monitored key, or ``"last epoch"``."""
        return self.monitor if self.keep == "best" else "last epoch"

    def on_epoch_end(self, epoch, logs=None):
        if self.keep == "last":
            self.kept_epoch = epoch
            return
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.lowest:
            self.lowest, self.kept_epoch = float(value), epoch
            self.kept_weights = self.model.get_weights()

    def restore(self, model) -> None:
        """Load the kept weights into ``model`` (nothing to do when the last epoch is kept)."""
        if self.keep == "best" and self.kept_weights is not None:
            model.set_weights(self.kept_weights)


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


class BestCheckpoint(keras.callbacks.Callback):
    """Save ``model`` to ``path`` whenever the epoch to keep changes (Keras' ModelCheckpoint, made safe).

    With ``keep="best"`` that is whenever ``monitor`` improves; with ``keep="last"``, every epoch
    (see :class:`KeptEpoch`): the checkpoint always holds the model that would be saved.

    The file is written beside ``path`` and renamed over it, so a run killed mid-save leaves the
    previous checkpoint intact. ``model`` is the plain model (without training-only layers), so
    the checkpoint loads like any saved genre-cnn network.

    Parameters
    ----------
    path : path-like
        A ``.keras`` file.
    model : keras.Model
        What to save (may differ from the model being fitted, which can wrap it).
    monitor : str
    keep : {"best", "last"}
    """

    def __init__(self, path, *, model, monitor: str = "val_loss", keep: str = "best") -> None:
        super().__init__()
        self.path = Path(path)
        self.saved_model = model
        self.monitor = monitor
        self.keep = keep
        self.best = np.inf

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if self.keep == "best":
            if value is None or not value < self.best:
                return
            self.best = float(value)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.stem}.partial.keras")
        self.saved_model.save(partial)
        os.replace(partial, self.path)
