"""Feed Keras batches straight from the memory-mapped feature array (imports Keras)."""

from __future__ import annotations

import math

import numpy as np

from .arrays import RowReader
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
    prefetch : int
        Threads reading the next batches while the current one trains (Keras keeps their order,
        so results stay deterministic); 1 reads in the training loop itself.
    """

    def __init__(self, *, features, labels, rows, batch_size, shuffle=False, seed=0, prefetch=2):
        threads = max(1, prefetch)
        super().__init__(workers=threads, use_multiprocessing=False, max_queue_size=4 * threads)
        self.features = features
        self.labels = labels
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(self.rows) if shuffle else self.rows
        self._read = RowReader(features)

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __getitem__(self, index: int):
        picked = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return self._read(picked), self.labels[picked]

    def on_epoch_end(self) -> None:
        if self.shuffle:
            self._order = self._rng.permutation(self.rows)
