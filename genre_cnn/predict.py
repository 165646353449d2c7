"""Classify songs with a saved model: per-chunk probabilities averaged per song."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from .audio import is_audio_file
from .config import FeatureConfig, read_json
from .errors import AudioDecodeError, ConfigError, ModelError
from .registry import DEFAULT_MODELS_DIR, resolve_model_dir

__all__ = ["SongPrediction", "GenreClassifier", "load_classifier", "classify", "expand_paths"]


@dataclasses.dataclass(frozen=True)
class SongPrediction:
    """The verdict on one file: its genre probabilities, or why it could not be classified."""

    path: str
    genre: Optional[str] = None
    probabilities: Optional[dict] = None
    n_chunks: int = 0
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` most likely genres with their probabilities, most likely first."""
        ranked = sorted(self.probabilities.items(), key=lambda item: -item[1])
        return ranked[:k]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class GenreClassifier:
    """A saved model together with the feature config and classes it was trained with.

    Use :func:`load_classifier` to make one.

    Attributes
    ----------
    model_dir : Path
    classes : tuple of str
        Genre names, in the order of the probability columns.
    feature_config : FeatureConfig
    """

    def __init__(self, model_dir: Path, model, classes: Sequence[str], feature_config: FeatureConfig):
        self.model_dir = model_dir
        self.model = model
        self.classes = tuple(classes)
        self.feature_config = feature_config

    def predict_chunks(self, features: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Probabilities of each chunk, shape ``(n_chunks, n_classes)``."""
        return np.asarray(self.model.predict(features, batch_size=batch_size, verbose=0))

    def classify_file(self, path: str | os.PathLike) -> SongPrediction:
        """Classify one song; decoding problems become a :class:`SongPrediction` with ``error``."""
        from .features import SongFeatureStream

        total = np.zeros(len(self.classes))
        n_chunks = 0
        try:
            for features, _ in SongFeatureStream(path, self.feature_config):
                total += self.predict_chunks(features).sum(axis=0)
                n_chunks += len(features)
        except AudioDecodeError as exc:
            return SongPrediction(path=str(path), error=str(exc))
        song_probs = total / n_chunks
        return SongPrediction(
            path=str(path),
            genre=self.classes[int(song_probs.argmax())],
            probabilities={c: float(p) for c, p in zip(self.classes, song_probs)},
            n_chunks=n_chunks,
        )


def load_classifier(
    model: Optional[str | os.PathLike] = None, *, models_root: str | os.PathLike = DEFAULT_MODELS_DIR
) -> GenreClassifier:
    """Load a model folder written by :func:`genre_cnn.fit` (default: the latest one).

    The Keras file is loaded in safe mode (no arbitrary code). The saved feature config must be
    one this version computes, and must agree with the model's input and output shapes.

    Raises
    ------
    ModelError
        Missing or incomplete model folder, or a config this version cannot reproduce.
    """
    model_dir = resolve_model_dir(model, models_root=models_root)
    saved = read_json(model_dir / "config.json", what="the model config", error=ModelError)
    try:
        feature_config = FeatureConfig.from_dict(saved.get("feature_config"))
        classes = saved["classes"]
    except (ConfigError, KeyError, AttributeError) as exc:
        raise ModelError(
            f"{model_dir / 'config.json'}: cannot reproduce this model's features ({exc}); "
            "refit it with this version of genre-cnn"
        ) from None

    from .backend import import_keras

    keras = import_keras()
    try:
        keras_model = keras.saving.load_model(model_dir / "model.keras", safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for broken archives
        raise ModelError(f"{model_dir / 'model.keras'}: cannot be loaded ({exc}); refit the model") from None
    expected_in = (None, *feature_config.input_shape)
    expected_out = (None, len(classes))
    if tuple(keras_model.input_shape) != expected_in or tuple(keras_model.output_shape) != expected_out:
        raise ModelError(
            f"{model_dir}: model.keras takes {keras_model.input_shape} and gives {keras_model.output_shape} "
            f"but config.json describes {expected_in} -> {expected_out}; the folder mixes two models, refit it"
        )
    return GenreClassifier(model_dir, keras_model, classes, feature_config)


def expand_paths(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files as given, folders replaced by their audio files (recursively, sorted, hidden skipped)."""
    for path in map(Path, paths):
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
                # symbolic links are kept even when broken: classify then says what is wrong with them
                if (found.is_file() or found.is_symlink()) and not hidden and is_audio_file(found):
                    yield found
        else:
            yield path


def classify(
    paths: Iterable[str | os.PathLike],
    *,
    model: Optional[str | os.PathLike | GenreClassifier] = None,
    models_root: str | os.PathLike = DEFAULT_MODELS_DIR,
) -> list[SongPrediction]:
    """Classify songs and folders of songs.

    Parameters
    ----------
    paths : iterable of path-like
        Audio files and/or folders (searched recursively for audio files).
    model : path-like or GenreClassifier, optional
        Model folder or an already loaded classifier; default: the latest model under ``models_root``.
    models_root : path-like

    Returns
    -------
    list of SongPrediction
        One per file, in order; unreadable files carry an ``error`` instead of probabilities.
    """
    classifier = model if isinstance(model, GenreClassifier) else load_classifier(model, models_root=models_root)
    return [classifier.classify_file(path) for path in expand_paths(paths)]
