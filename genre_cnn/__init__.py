"""genre-cnn: teach a small CNN to tell music genres apart, from a folder of songs per genre.

The public functions are imported lazily so that ``import genre_cnn`` stays instant and never
imports TensorFlow.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "FeatureConfig",
    "TrainConfig",
    "build_dataset",
    "load_dataset",
    "fit",
    "classify",
    "load_classifier",
    "GenreCnnError",
]

_LAZY = {
    "FeatureConfig": "config",
    "TrainConfig": "config",
    "build_dataset": "dataset",
    "load_dataset": "dataset",
    "fit": "train",
    "classify": "predict",
    "load_classifier": "predict",
    "GenreCnnError": "errors",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'genre_cnn' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
