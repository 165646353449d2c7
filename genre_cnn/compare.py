"""Score several models on the same labelled songs."""

from __future__ import annotations

import os
from typing import Sequence

__all__ = ["compare_models"]


def compare_models(models: Sequence[str | os.PathLike], tracks_dir: str | os.PathLike) -> list[dict]:
    """Song accuracy of each model on the songs of ``tracks_dir/<genre>/``.

    A song whose genre a model does not know counts as wrong; unreadable songs are counted apart.

    Returns
    -------
    list of dict
        Per model: ``model``, ``kind`` (cnn or baseline), ``songs``, ``failed``, ``accuracy``.
    """
    from .dataset import scan_tracks
    from .predict import classify

    tracks = scan_tracks(tracks_dir)
    truth = {str(song.path): song.label for song in tracks.songs}
    rows = []
    for model in models:
        predictions = classify(list(truth), model=model)
        scored = [p for p in predictions if p.ok]
        correct = sum(p.genre == truth[p.path] for p in scored)
        kind = "baseline" if _is_baseline(model) else "cnn"
        rows.append({"model": str(model), "kind": kind, "songs": len(scored),
                     "failed": len(predictions) - len(scored), "accuracy": correct / max(len(scored), 1)})
    return rows


def _is_baseline(model) -> bool:
    from pathlib import Path

    from .baseline import is_baseline

    return is_baseline(Path(model))
