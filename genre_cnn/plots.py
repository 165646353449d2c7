"""Figures (the only module that imports matplotlib): training history and confusion matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

__all__ = ["plot_history", "plot_confusion"]


def _figure(**options):
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    return Figure(layout="constrained", **options)


def plot_history(history: Mapping[str, Sequence[float]], path: Path, *, best_epoch: int = -1):
    """Accuracy and loss per epoch, train and validation, with the kept epoch marked.

    Parameters
    ----------
    history : mapping
        Keras ``History.history``: ``loss``, ``accuracy`` and optionally ``val_loss``,
        ``val_accuracy``.
    path : Path
        PNG to write.
    best_epoch : int
        Zero-based epoch whose weights were kept (marked with a dashed line), -1 for none.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure = _figure(figsize=(10, 4))
    axes = figure.subplots(1, 2)
    for ax, metric, title in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in history:
                epochs = range(1, len(history[key]) + 1)
                ax.plot(epochs, history[key], marker="o", label=label)
        if best_epoch >= 0:
            ax.axvline(best_epoch + 1, color="grey", linestyle="--", label="kept epoch")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.savefig(path, dpi=100)
    return figure


def plot_confusion(metrics: Mapping, classes: Sequence[str], path: Path):
    """Confusion matrices of the test set, per chunk and per song, side by side.

    Parameters
    ----------
    metrics : mapping
        Output of :func:`genre_cnn.metrics.evaluate_chunks`.
    classes : sequence of str
    path : Path
        PNG to write.
    """
    import numpy as np
    from sklearn.metrics import ConfusionMatrixDisplay

    size = 4 + 0.4 * len(classes)
    figure = _figure(figsize=(2 * size + 1, size))
    axes = figure.subplots(1, 2)
    for ax, key, what, accuracy in (
        (axes[0], "confusion_chunks", "chunks", metrics["chunk_accuracy"]),
        (axes[1], "confusion_songs", "songs", metrics["song_accuracy"]),
    ):
        display = ConfusionMatrixDisplay(np.array(metrics[key]), display_labels=list(classes))
        display.plot(ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45)
        ax.set_title(f"Test {what}: accuracy {accuracy:.1%}")
    figure.savefig(path, dpi=100)
    return figure
