"""Score several models on the same labelled songs."""

from __future__ import annotations

import os
from typing import Sequence

from genre_cnn.analysis.evaluate import evaluate_model

__all__ = ["compare_models"]


def compare_models(models: Sequence[str | os.PathLike], tracks_dir: str | os.PathLike) -> list[dict]:
    """Song accuracy of each model on the songs of ``tracks_dir/<genre>/``.

    A song whose genre a model does not know counts as wrong; unreadable songs are counted apart.

    Returns
    -------
    list of dict
        Per model: ``model``, ``kind`` (cnn, musicnn or baseline), ``songs``, ``failed``, ``accuracy``.
    """
    rows = []
    for model in models:
        result = evaluate_model(model, tracks_dir)
        rows.append({"model": str(model), "kind": result["kind"],
                     "songs": result["songs"], "failed": len(result["failed"]), "accuracy": result["accuracy"]})
    return rows
