"""Score a model on any labelled set of songs: accuracy, macro-F1, per-genre report, confusion."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from genre_cnn.config import write_json
from genre_cnn.data.metadata import scan_labelled
from genre_cnn.errors import DatasetError
from genre_cnn.inference.classifier import classify, open_classifier
from genre_cnn.plots import plot_confusion
from genre_cnn.runtime.files import ensure_folder

__all__ = ["evaluate_model"]


def evaluate_model(
    model: str | os.PathLike,
    tracks_dir: str | os.PathLike,
    *,
    out: Optional[str | os.PathLike] = None,
    **columns,
) -> dict:
    """Classify every song of ``tracks_dir/<genre>/`` (or of a metadata CSV) with ``model`` and score the verdicts.

    Songs of a genre the model does not know count as wrong (and are listed); unreadable songs
    are counted apart.

    Parameters
    ----------
    model : path-like
        A CNN model folder or a baseline folder.
    tracks_dir : path-like
        Labelled songs: a folder with one sub-folder per genre, or a metadata CSV.
    out : path-like, optional
        Folder for ``evaluation.json`` and ``confusion.png``.
    **columns
        ``audio_root``, ``path_column``, ``label_column`` of a CSV
        (see :func:`genre_cnn.data.metadata.scan_metadata`).

    Returns
    -------
    dict
        ``songs``, ``failed``, ``accuracy``, ``macro_f1``, ``per_class`` (precision, recall, F1,
        songs), ``confusion`` (rows true, columns predicted, in ``classes`` order), ``classes``,
        ``unknown_genres`` (genres of classified songs that the model lacks: always wrong),
        ``unclassified_genres`` (genres none of whose songs could be classified: see ``failed``).
    """
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


    classifier = open_classifier(model)
    tracks = scan_labelled(tracks_dir, **columns)
    truth = {str(song.path): song.label for song in tracks.songs}
    predictions = classify(list(truth), model=classifier)
    scored = [p for p in predictions if p.ok]
    if not scored:
        raise DatasetError(f"{tracks_dir}: none of the {len(predictions)} songs could be classified")
    model_classes = list(scored[0].probabilities)
    scored_genres = {truth[p.path] for p in scored}
    unknown = sorted(scored_genres - set(model_classes))  # classified, so always wrong
    classes = model_classes + unknown
    y_true = [classes.index(truth[p.path]) for p in scored]
    y_pred = [classes.index(p.genre) for p in scored]
    everything = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=everything,
                                                                     zero_division=0)
    result = {
        "model": str(model),
        "kind": classifier.kind,
        "tracks_dir": str(tracks_dir),
        "songs": len(scored),
        "failed": [{"path": p.path, "error": p.error} for p in predictions if not p.ok],
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=list(range(len(model_classes))), average="macro",
                                   zero_division=0)),
        "classes": classes,
        "unknown_genres": unknown,
        "unclassified_genres": sorted(set(truth.values()) - scored_genres),
        "per_class": {name: {"precision": float(p), "recall": float(r), "f1": float(s), "songs": int(n)}
                      for name, p, r, s, n in zip(classes, precision, recall, f1, support)},
        "confusion": confusion_matrix(y_true, y_pred, labels=everything).tolist(),
    }
    if out is not None:
        out = ensure_folder(out, what="evaluation files")
        write_json(out / "evaluation.json", result)
        plot_confusion({"confusion_songs": np.array(result["confusion"]), "song_accuracy": result["accuracy"]},
                       classes, out / "confusion.png", chunks=False)
    return result
