"""Feed Keras batches straight from the memory-mapped feature array (imports Keras)."""

from __future__ import annotations

import math
import os

import numpy as np

from .backend import import_keras

keras = import_keras()

__all__ = ["ChunkBatches"]


class ChunkBatches(keras.utils.PyDataset):
    """Batches of ``(features, labels)`` for the chunks ``rows``, read from disk on demand.

    Memory holds one batch, never the dataset. With ``shuffle=True`` the order changes every
    epoch, reproducibly for a given ``seed``.

    Parameters
    ----------
    features : np.ndarray [shape=(n_chunks, n_mels, n_frames)]
        Usually the read-only memory map of ``features.npy``.
    labels : np.ndarray [shape=(n_chunks,)]
    rows : np.ndarray of int
        Chunks to serve.
    batch_size : int
    shuffle : bool
    seed : int
    """

    def __init__(self, *, features, labels, rows, batch_size, shuffle=False, seed=0):
        super().__init__()
        self.features = features
        self.labels = labels
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(self.rows) if shuffle else self.rows
        self._file = None

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __getitem__(self, index: int):
        picked = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return self._read_rows(picked), self.labels[picked]

    def _read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows of ``features``: from a ``.npy`` memory map with ``os.pread`` (no mapped pages stay
        resident, so memory does not grow with the dataset), else by indexing."""
        row_shape = self.features.shape[1:]
        x = np.empty((len(rows), *row_shape), dtype=np.float32)
        filename = getattr(self.features, "filename", None)
        if filename is None or self.features.dtype != np.float32 or not hasattr(os, "pread"):
            order = np.argsort(rows, kind="stable")
            x[order] = self.features[rows[order]]
            return x
        if self._file is None:
            self._file = os.open(filename, os.O_RDONLY)
        row_bytes = x[0].nbytes
        for i, row in enumerate(rows):
            buffer = os.pread(self._file, row_bytes, self.features.offset + int(row) * row_bytes)
            x[i] = np.frombuffer(buffer, dtype=np.float32).reshape(row_shape)
        return x

    def __del__(self):
        if getattr(self, "_file", None) is not None:
            os.close(self._file)

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._order = self._rng.permutation(self.rows)
