"""Feed Keras batches straight from the memory-mapped feature array (imports Keras)."""

from __future__ import annotations

import math

import numpy as np

from genre_cnn.data.arrays import RowReader
from genre_cnn.runtime.backend import import_keras
from genre_cnn.training.augment import mixup

keras = import_keras()

__all__ = ["ChunkBatches"]


class ChunkBatches(keras.utils.PyDataset):
    """Batches of ``(features, labels)`` for the chunks ``rows``, read from disk on demand.

    Memory holds one batch, never the dataset. With ``shuffle=True`` the order changes every
    epoch, reproducibly for a given ``seed``. Training batches can be augmented (``augmenter``,
    ``mixup_alpha``); random numbers come from a generator seeded by (seed, epoch, batch), so
    augmented training is as reproducible as plain training, whatever thread reads the batch.

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
    n_classes : int, optional
        Serve one-hot label rows of this width instead of class indices (needed with mixup, and
        for the validation batches of a model trained with it).
    augmenter : genre_cnn.training.augment.ChunkAugmenter, optional
        Signal augmentations applied to every batch.
    next_rows : np.ndarray [shape=(n_chunks,)], optional
        Row of the chunk following each chunk in its song, -1 for a song's last chunk (for the
        augmenter's ``shift`` and ``stretch``).
    mixup_alpha : float, optional
        Mix the chunks and labels of every batch (:func:`genre_cnn.training.augment.mixup`); needs ``n_classes``.
    crop_hop_frames : int, optional
        Random crops: each chunk is cut again at a random start between its own first frame and
        ``crop_hop_frames`` later (where the next chunk of its song starts), from its frames and
        the next chunk's (``next_rows``); a song's last chunk is served as stored.
    soft_targets : np.ndarray [shape=(n_chunks, n_classes)], optional
        A teacher's probabilities per chunk: the labels served are then one-hot rows followed by
        the soft targets, ``(batch, 2 * n_classes)`` (a cropped chunk's soft target mixes its own
        and its successor's by their share of the crop); needs ``n_classes``.
    repeats : int
        Times each row is served per epoch (each time cropped and augmented afresh).
    devices : int
        Devices that share every batch (training on several GPUs), each an equal share: Keras
        fails on a device given none, and on a first batch that does not divide evenly. The batch
        size is rounded up to a multiple of ``devices``; a shuffled (training) set leaves out its
        last ``len(rows) % devices`` chunks of each epoch's order (different ones every epoch), and
        an ordered (evaluation) set serves every chunk the same number of times, so its mean loss
        and accuracy are unchanged.
    """

    def __init__(self, *, features, labels, rows, batch_size, shuffle=False, seed=0, prefetch=2, n_classes=None,
                 augmenter=None, next_rows=None, mixup_alpha=None, crop_hop_frames=None, soft_targets=None,
                 repeats=1, devices=1):
        threads = max(1, prefetch)
        super().__init__(workers=threads, use_multiprocessing=False, max_queue_size=4 * threads)
        if mixup_alpha is not None and n_classes is None:
            raise ValueError("mixup needs n_classes (one-hot labels)")
        if augmenter is not None and augmenter.needs_next_chunk and next_rows is None:
            raise ValueError("shift and stretch need next_rows")
        if crop_hop_frames is not None and next_rows is None:
            raise ValueError("random crops need next_rows")
        if soft_targets is not None and n_classes is None:
            raise ValueError("soft targets need n_classes (one-hot labels)")
        self.features = features
        self.labels = labels
        rows = np.repeat(np.asarray(rows, dtype=np.int64), int(repeats))
        if len(rows) % devices and (not shuffle or len(rows) < devices):
            rows = np.repeat(rows, devices // math.gcd(len(rows), devices))  # equal copies of every chunk
        self.rows = rows
        self.batch_size = math.ceil(int(batch_size) / devices) * devices
        self._served = len(rows) - len(rows) % devices
        self.shuffle = shuffle
        self.seed = seed
        self.n_classes = n_classes
        self.augmenter = augmenter
        self.next_rows = next_rows
        self.mixup_alpha = mixup_alpha
        self.crop_hop_frames = crop_hop_frames
        self.soft_targets = soft_targets
        self.epoch = 0
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(self.rows) if shuffle else self.rows
        self._read = RowReader(features)

    def __len__(self) -> int:
        return math.ceil(self._served / self.batch_size)

    def __getitem__(self, index: int):
        picked = self._order[index * self.batch_size : min((index + 1) * self.batch_size, self._served)]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        x = self._read(picked)
        y = self.labels[picked]
        if self.n_classes is not None:
            y = np.eye(self.n_classes, dtype=np.float32)[y]
        following, share_of_next = picked, np.zeros(len(picked))
        if self.crop_hop_frames is not None:
            x, following, share_of_next = self._crop(x, picked, rng)
        if self.soft_targets is not None:
            soft = (1 - share_of_next)[:, None] * self.soft_targets[picked] + \
                share_of_next[:, None] * self.soft_targets[following]
            y = np.concatenate([y, soft.astype(np.float32)], axis=1)
        if self.augmenter is None and self.mixup_alpha is None:
            return x, y
        if self.augmenter is not None:
            context = {}
            if self.augmenter.needs_next_chunk:
                following = self.next_rows[picked]
                has_next = following >= 0
                context = dict(next_chunks=self._read(np.where(has_next, following, picked)), has_next=has_next)
            x = self.augmenter(x, rng, **context)
        if self.mixup_alpha is not None:
            x, y = mixup(x, y, rng, alpha=self.mixup_alpha)
        return x, y

    def _crop(self, x: np.ndarray, picked: np.ndarray, rng: np.random.Generator):
        """Each chunk re-cut at a random frame offset.

        Returns the crops, the row each crop borrows its last frames from (its own for a song's
        last chunk) and the share of the crop taken from that row.
        """
        frames, hop = x.shape[2], min(self.crop_hop_frames, x.shape[2])
        has_next = self.next_rows[picked] >= 0
        following = np.where(has_next, self.next_rows[picked], picked)
        strip = np.concatenate([x, self._read(following)[:, :, frames - hop :]], axis=2)
        start = np.where(has_next, rng.integers(0, hop + 1, len(picked)), 0)
        crops = np.take_along_axis(strip, (start[:, None] + np.arange(frames))[:, None, :], axis=2)
        return crops, following, start / frames

    def on_epoch_end(self) -> None:
        self.epoch += 1
        if self.shuffle:
            self._order = self._rng.permutation(self.rows)
