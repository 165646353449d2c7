"""Song embeddings from the pretrained musicnn backbone, for users' own downstream models."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable

import numpy as np

from genre_cnn.errors import AudioDecodeError, ConfigError
from genre_cnn.inference.classifier import expand_paths
from genre_cnn.models.musicnn import HOP, PATCH_FRAMES, SR, load_musicnn, song_patches
from genre_cnn.runtime.files import atomic_file

__all__ = ["Embeddings", "embed_songs", "save_embeddings"]


@dataclasses.dataclass(frozen=True)
class Embeddings:
    """musicnn embeddings of songs: one 200-d vector per song (mean of its patches), and per patch.

    Attributes
    ----------
    paths : list of str
        The songs that could be read, in order.
    songs : np.ndarray [shape=(n_songs, 200)]
    patches : np.ndarray [shape=(n_patches, 200)]
    patch_song : np.ndarray [shape=(n_patches,), dtype=int]
        Index into ``paths`` of each patch.
    patch_start : np.ndarray [shape=(n_patches,)]
        Start of each patch in its song, in seconds.
    failed : list of (str, str)
        Files that could not be read, with the reason.
    """

    paths: list
    songs: np.ndarray
    patches: np.ndarray
    patch_song: np.ndarray
    patch_start: np.ndarray
    failed: list


def embed_songs(paths: Iterable[str | os.PathLike]) -> Embeddings:
    """Embed every audio file of ``paths`` (files and folders) with the frozen musicnn backbone."""
    model = load_musicnn()
    kept, per_song, per_patch, owner, starts, failed = [], [], [], [], [], []
    for path in expand_paths(paths):
        try:
            patches = song_patches(path)
        except AudioDecodeError as exc:
            failed.append((str(path), str(exc)))
            continue
        vectors = np.asarray(model.predict(patches, batch_size=32, verbose=0)["embedding"], dtype=np.float32)
        per_song.append(vectors.mean(axis=0))
        per_patch.append(vectors)
        owner.append(np.full(len(vectors), len(kept)))
        starts.append(np.arange(len(vectors)) * PATCH_FRAMES * HOP / SR)
        kept.append(str(path))
    empty = np.zeros((0, 200), np.float32)
    return Embeddings(
        paths=kept,
        songs=np.stack(per_song) if per_song else empty,
        patches=np.concatenate(per_patch) if per_patch else empty,
        patch_song=np.concatenate(owner).astype(np.int64) if owner else np.zeros(0, np.int64),
        patch_start=np.concatenate(starts) if starts else np.zeros(0),
        failed=failed,
    )


def save_embeddings(embeddings: Embeddings, out: str | os.PathLike, *, patches: bool = False) -> Path:
    """Write ``out`` (``.npz``): ``paths`` and ``embeddings``, plus ``patch_*`` arrays with ``patches``.

    The file is written beside ``out`` and renamed, so an existing file is replaced only when complete.
    """
    out = Path(out)
    if out.suffix != ".npz":
        raise ConfigError(f"out={out}: the file name must end in .npz", parameter="out")
    arrays = {"paths": np.array(embeddings.paths, dtype=str), "embeddings": embeddings.songs}
    if patches:
        arrays.update(patch_embeddings=embeddings.patches, patch_song=embeddings.patch_song,
                      patch_start=embeddings.patch_start)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out) as partial:
        np.savez(partial, **arrays)
    return out
