"""Everything ``genre-cnn show`` draws about one song."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from genre_cnn.config import FeatureConfig
from genre_cnn.errors import ConfigError
from genre_cnn.models.registry import resolve_model_dir
from genre_cnn.models.store import ModelDir
from genre_cnn.plots import plot_song_views
from genre_cnn.signal.audio import load_excerpt
from genre_cnn.signal.logmel import SongFeatureStream

__all__ = ["show_song"]


def show_song(
    path: str | os.PathLike,
    *,
    out: Optional[str | os.PathLike] = None,
    offset: float = 0.0,
    duration: Optional[float] = 30.0,
    chunk: int = 0,
    n_mfcc: int = 20,
    model: Optional[str | os.PathLike] = None,
):
    """Draw waveform, spectrum, STFT, mel, MFCC and the CNN's input chunk of one song into a PNG.

    Parameters
    ----------
    path : path-like
        The song.
    out : path-like, optional
        PNG to write; default ``<song name>.png`` in the working folder.
    offset, duration : float
        The excerpt drawn in the first five panels, in seconds (``duration=None``: to the end).
    chunk : int
        Which chunk of the whole song to show as the CNN's input (0 = the first).
    n_mfcc : int
        Number of MFCCs.
    model : path-like, optional
        Use this model's feature config for the CNN panel (default: the default config).

    Returns
    -------
    (Path, matplotlib.figure.Figure)
    """
    if offset < 0 or (duration is not None and duration <= 0):
        raise ConfigError(f"offset={offset:g} must be >= 0 and duration={duration} > 0", parameter="offset")
    if isinstance(chunk, bool) or chunk < 0 or n_mfcc < 1:
        raise ConfigError(f"chunk={chunk} must be >= 0 and n_mfcc={n_mfcc} >= 1", parameter="chunk")
    config = _feature_config(model)
    path = Path(path)
    out = Path(out) if out is not None else Path(f"{path.stem}.png")
    y = load_excerpt(path, sr=config.sr, offset=offset, duration=duration)

    seen = 0
    for features, offsets in SongFeatureStream(path, config):
        if chunk < seen + len(features):
            cnn_input, start = features[chunk - seen], offsets[chunk - seen] / config.sr
            break
        seen += len(features)
    else:
        raise ConfigError(f"chunk={chunk}: {path} has {seen} chunk(s), numbered 0 to {seen - 1}", parameter="chunk")
    out.parent.mkdir(parents=True, exist_ok=True)
    figure = plot_song_views(
        y, sr=config.sr, title=f"{path.name} ({offset:g}–{offset + len(y) / config.sr:g} s)",
        cnn_input=cnn_input, cnn_config=config,
        chunk_label=f"chunk {chunk} ({start:.1f}–{start + config.chunk_seconds:.1f} s)",
        offset=offset, n_mfcc=n_mfcc, path=out,
    )
    return out, figure


def _feature_config(model) -> FeatureConfig:
    if model is None:
        return FeatureConfig()

    return ModelDir(resolve_model_dir(model)).read_feature_config()
