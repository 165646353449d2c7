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
from genre_cnn.training.metrics import score_songs

__all__ = ["evaluate_model"]


def evaluate_model(
    model: str | os.PathLike,
    tracks_dir: str | os.PathLike,
    *,
    out: Optional[str | os.PathLike] = None,
    min_confidence: Optional[float] = None,
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
    min_confidence : float, optional
        The unsure threshold to score (default: the model's own).
    **columns
        ``audio_root``, ``path_column``, ``label_column`` of a CSV
        (see :func:`genre_cnn.data.metadata.scan_metadata`).

    Returns
    -------
    dict
        ``songs``, ``failed``, ``accuracy``, ``macro_f1``, ``per_class`` (precision, recall, F1,
        songs), ``confusion`` (rows true, columns predicted, in ``classes`` order), ``classes``,
        ``unknown_genres`` (genres of classified songs that the model lacks: always wrong),
        ``unclassified_genres`` (genres none of whose songs could be classified: see ``failed``),
        ``ece`` and ``brier`` (expected calibration error and Brier score of the probabilities, on the
        ``calibration_songs`` of genres the model knows), ``unsure`` (None without a threshold, else
        ``min_confidence``, the ``songs`` flagged, their ``share``, how many of them were ``wrong``, and
        the ``sure_accuracy`` of the others), ``unfamiliar`` (None for a model without a novelty reference,
        else ``max_novelty``, the ``songs`` flagged, their ``share``, how many were ``wrong``, how many of
        an ``unknown_genre``, and the ``familiar_accuracy`` of the others).
    """
    classifier = open_classifier(model, min_confidence=min_confidence)
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
    labels = [classes.index(truth[p.path]) for p in scored]
    probabilities = np.array([[p.probabilities[c] for c in model_classes] for p in scored])
    scores = score_songs(labels, probabilities, classes=classes)
    result = {
        "model": str(model),
        "kind": classifier.kind,
        "tracks_dir": str(tracks_dir),
        "songs": len(scored),
        "failed": [{"path": p.path, "error": p.error} for p in predictions if not p.ok],
        "accuracy": scores.accuracy,
        "macro_f1": scores.macro_f1,
        "classes": classes,
        "unknown_genres": unknown,
        "unclassified_genres": sorted(set(truth.values()) - scored_genres),
        "per_class": scores.per_class,
        "confusion": scores.confusion,
        "calibration_songs": scores.calibration_songs, "ece": scores.ece, "brier": scores.brier,
        "ece_chance": scores.ece_chance,
        "unsure": _unsure_scores(scored, truth, classifier.min_confidence),
        "unfamiliar": _unfamiliar_scores(scored, truth, classifier.novelty),
    }
    if out is not None:
        out = ensure_folder(out, what="evaluation files")
        write_json(out / "evaluation.json", result)
        plot_confusion(classes, out / "confusion.png", songs=result["confusion"], song_accuracy=result["accuracy"])
    return result


def _unsure_scores(scored: list, truth: dict, min_confidence: Optional[float]) -> Optional[dict]:
    """How the unsure flag did: how many verdicts it flagged, how many of those were wrong (a flag that is
    never right is noise), and the accuracy of the verdicts it let through. None without a threshold."""
    if min_confidence is None:
        return None
    flagged, wrong, accuracy = _flag_scores(scored, truth, [p.unsure for p in scored])
    return {"min_confidence": float(min_confidence), "songs": len(flagged), "share": len(flagged) / len(scored),
            "wrong": wrong, "sure_accuracy": accuracy}


def _unfamiliar_scores(scored: list, truth: dict, novelty) -> Optional[dict]:
    """How the unfamiliar flag did: the songs it flagged, how many of them were wrong (songs of a genre the
    model does not know always are), and the accuracy of the songs it let through. None without novelty."""
    if novelty is None:
        return None
    known = set(scored[0].probabilities)
    flagged, wrong, accuracy = _flag_scores(scored, truth, [bool(p.unfamiliar) for p in scored])
    return {"max_novelty": float(novelty.threshold), "songs": len(flagged), "share": len(flagged) / len(scored),
            "wrong": wrong, "unknown_genre": sum(truth[p.path] not in known for p in flagged),
            "familiar_accuracy": accuracy}


def _flag_scores(scored: list, truth: dict, flags: list) -> tuple[list, int, Optional[float]]:
    """The flagged verdicts, how many of them were wrong, and the accuracy of the others (None if none)."""
    flagged = [p for p, flag in zip(scored, flags) if flag]
    kept = [p for p, flag in zip(scored, flags) if not flag]
    accuracy = sum(p.genre == truth[p.path] for p in kept) / len(kept) if kept else None
    return flagged, sum(p.genre != truth[p.path] for p in flagged), accuracy
