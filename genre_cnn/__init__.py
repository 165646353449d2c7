"""genre-cnn: teach a small CNN to tell music genres apart, from a folder of songs per genre.

The layers, each importing only the ones listed before it:

=============  ==================================================================
``runtime``    Keras/TensorFlow set-up, process pools, atomic files
``signal``     one song: decode, chunk, clean, log-mel, descriptors
``data``       datasets on disk: tracks, metadata, splits, store, cache, shards
``models``     the CNN and its layers, musicnn, model folders
``inference``  one classifier per model kind, runners, timelines, exports
``monitoring`` profiles of songs and drift checks
``training``   fit recipes, batches, augmentation, distillation, baseline, cv
``library``    a music library's genre tags: datasets from them, tagging, undo
``analysis``   evaluation, comparison, EDA, spectrogram views
``serving``    the HTTP API and web page
=============  ==================================================================

``errors``, ``config`` and ``plots`` sit below all of them; ``cli`` and ``report`` above.
The public names are imported lazily so that ``import genre_cnn`` stays instant and never
imports TensorFlow.
"""

from __future__ import annotations

import importlib

from genre_cnn.version import __version__

#: Public name -> the module that defines it.
_LAZY = {
    "FeatureConfig": "config",
    "TrainConfig": "config",
    "GenreCnnError": "errors",
    "build_dataset": "data.build",
    "load_dataset": "data.dataset",
    "BuildReport": "data.build",
    "Dataset": "data.dataset",
    "BuildSummary": "data.summary",
    "DatasetDir": "data.store",
    "ModelDir": "models.store",
    "Metrics": "models.store",
    "fit": "training.fit",
    "FitResult": "training.fit",
    "cross_validate": "training.cv",
    "compare_recipes": "training.cv",
    "CvResult": "training.cv",
    "fit_baseline": "kinds.baseline",
    "classify": "inference.classifier",
    "open_classifier": "inference.classifier",
    "load_classifier": "inference.classifier",
    "SongPrediction": "inference.prediction",
    "SongEmbedding": "inference.prediction",
    "Classifier": "inference.prediction",
    "classify_timeline": "inference.timeline",
    "explain": "analysis.explain",
    "Timeline": "inference.timeline",
    "classify_timelines": "inference.timeline",
    "export_model": "inference.export",
    "embed_songs": "inference.embed",
    "evaluate_model": "analysis.evaluate",
    "compare_models": "analysis.compare",
    "scan_tagged": "library.dataset",
    "dataset_from_tags": "library.dataset",
    "GenreMap": "library.genres",
    "tag_library": "library.tagging",
    "undo_journal": "library.tags",
    "monitor": "monitoring",
    "DriftReport": "monitoring.drift",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"genre_cnn.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'genre_cnn' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
