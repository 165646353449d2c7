"""Per-genre loss weights, so that a genre with few songs counts as much as a large one."""

from __future__ import annotations

import numpy as np

__all__ = ["class_weights"]


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Balanced weights, ``n / (n_classes * count)`` per genre (scikit-learn's "balanced")."""
    counts = np.bincount(np.asarray(labels), minlength=n_classes).astype(float)
    return len(labels) / (n_classes * np.maximum(counts, 1))
