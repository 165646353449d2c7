"""What classifying a song gives back, and what every kind of model offers to classify one."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional, Protocol, runtime_checkable

from genre_cnn.signal.audio import is_audio_file

__all__ = ["SongPrediction", "Classifier", "expand_paths"]


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


@runtime_checkable
class Classifier(Protocol):
    """What every kind of model offers ``classify``, ``evaluate``, ``compare``, ``serve`` and ``monitor``.

    Kinds: :class:`CnnClassifier` (the CNN from scratch), :class:`MusicnnClassifier` (a head on
    the pretrained musicnn backbone), :class:`genre_cnn.inference.baseline.BaselineClassifier` (scikit-learn
    on descriptors). :func:`open_classifier` opens any model folder as the right one.
    """

    model_dir: Path
    classes: tuple
    kind: str  #: "cnn", "musicnn" or "baseline", as written in the model's config.json
    backend: str  #: what runs the model: "litert", "keras" or "sklearn"
    makes_timelines: bool  #: whether :func:`genre_cnn.inference.timeline.classify_timeline` can use it
    inputs_are_log_mel: bool  #: whether its network's inputs are the log-mel chunks (their band means come free)
    profiles_from_dataset: bool  #: whether ``monitor --rebuild-profile DATASET`` can profile it (a baseline cannot)

    def classify_file(self, path: str | os.PathLike) -> SongPrediction: ...


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
