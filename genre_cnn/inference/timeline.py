"""Genre probabilities over time for long recordings (DJ sets, radio, albums), decoded as a stream."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from genre_cnn.errors import AudioDecodeError, ConfigError
from genre_cnn.inference.classifier import open_classifier
from genre_cnn.inference.prediction import SongVerdict, expand_paths
from genre_cnn.models.registry import DEFAULT_MODELS_DIR
from genre_cnn.plots import plot_timeline
from genre_cnn.runtime.csvfiles import write_csv
from genre_cnn.runtime.files import ensure_folder
from genre_cnn.signal.logmel import SongFeatureStream

__all__ = ["Timeline", "TimelineOutcome", "classify_timeline", "classify_timelines", "write_timeline",
           "check_timeline_options", "MIN_HOP_SECONDS"]

#: The finest timeline step. The work grows as seconds ÷ hop, and windows closer than this repeat
#: nearly the same chunks: a 30 s song at hop 0.001 would be 30,000 chunks (minutes of CPU).
MIN_HOP_SECONDS = 0.5


@dataclasses.dataclass(frozen=True)
class Timeline:
    """Genre probabilities of consecutive windows of one recording.

    Attributes
    ----------
    path : str
    classes : tuple of str
    starts, ends : np.ndarray [shape=(n_windows,)]
        Window bounds in seconds.
    probabilities : np.ndarray [shape=(n_windows, n_classes)]
        The chunks inside each window, combined as a song's are (:class:`SongVerdict`); NaN for a
        window whose chunks were all silent (dropped by the model's silence policy).
    n_chunks : np.ndarray [shape=(n_windows,), dtype=int]
        Chunks combined in each window.
    """

    path: str
    classes: tuple
    starts: np.ndarray
    ends: np.ndarray
    probabilities: np.ndarray
    n_chunks: np.ndarray

    def genres(self) -> list[Optional[str]]:
        """Most likely genre of each window (None where the window was silent)."""
        return [None if not count else self.classes[int(np.argmax(p))]
                for p, count in zip(self.probabilities, self.n_chunks)]

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "classes": list(self.classes),
            "windows": [
                {"start": round(float(s), 3), "end": round(float(e), 3), "genre": genre, "chunks": int(count),
                 "probabilities": None if not count else {c: round(float(v), 6) for c, v in zip(self.classes, p)}}
                for s, e, genre, count, p in zip(self.starts, self.ends, self.genres(), self.n_chunks,
                                                 self.probabilities)
            ],
        }


def check_timeline_options(classifier, *, window: Optional[float] = None,
                           hop: Optional[float] = None) -> tuple[float, float]:
    """The window and hop a timeline of ``classifier`` will use, or an error naming the option to fix.

    Checked before any decoding, so a bad request costs nothing.

    Parameters
    ----------
    classifier : genre_cnn.inference.classifier.Classifier
    window, hop : float, optional
        Seconds, as for :func:`classify_timeline`.

    Returns
    -------
    window, hop : float
        Seconds (``window`` defaults to the chunk length, ``hop`` to ``window``).

    Raises
    ------
    ConfigError
        A model that makes no timelines, ``window`` shorter than a chunk, or ``hop`` not a number of
        seconds of at least :data:`MIN_HOP_SECONDS`.
    """
    if not classifier.makes_timelines:
        raise ConfigError(f"{classifier.model_dir}: timelines work with CNN models trained from scratch; "
                          f"this one is a {classifier.kind} model")
    config = classifier.feature_config
    chunk = config.chunk_seconds
    window = chunk if window is None else float(window)
    hop = window if hop is None else float(hop)
    if not window >= chunk - 0.5 / config.sr:
        raise ConfigError(f"window={window:g} is shorter than the model's chunks ({chunk:.2f} s); "
                          f"use window={chunk:.2f} or more", parameter="window")
    if not (hop > 0 and math.isfinite(hop)):
        raise ConfigError(f"hop={hop!r} must be a positive number of seconds", parameter="hop")
    if hop < MIN_HOP_SECONDS:
        raise ConfigError(f"hop={hop:g} is below the finest timeline step of {MIN_HOP_SECONDS:g} s (the work grows "
                          f"as seconds / hop); use hop={MIN_HOP_SECONDS:g} or more", parameter="hop")
    return window, hop


def classify_timeline(path: str | os.PathLike, classifier, *, window: Optional[float] = None,
                      hop: Optional[float] = None) -> Timeline:
    """Genre probabilities of every ``window`` seconds of a recording, one window every ``hop`` seconds.

    The recording is decoded and featurised as a stream (memory holds one batch of chunks,
    whatever its length). Chunks of the model's length are cut on a grid that fits both the
    window starts and the chunk length; each window's probabilities combine the chunks lying
    inside it as a song's are combined (:class:`genre_cnn.inference.prediction.SongVerdict`).

    Parameters
    ----------
    path : path-like
    classifier : genre_cnn.inference.classifier.Classifier
        From :func:`genre_cnn.inference.classifier.open_classifier`; one that ``makes_timelines`` (a CNN).
    window : float, optional
        Window length in seconds, at least the model's chunk length (default: the chunk length).
    hop : float, optional
        Seconds between window starts (default: ``window``: windows side by side).

    Raises
    ------
    ConfigError
        See :func:`check_timeline_options`.
    AudioDecodeError
        The file cannot be decoded (or is too short / silent, as ``classify`` says).
    """
    config = classifier.feature_config
    chunk = config.chunk_seconds
    window, hop = check_timeline_options(classifier, window=window, hop=hop)
    per_hop = math.ceil(hop / chunk - 1e-9)  # chunk starts per window hop, so chunks never leave gaps
    grid = max(1, round(hop * config.sr / per_hop))  # samples between chunk starts
    stream_config = dataclasses.replace(config, hop_samples=grid)
    offsets, probabilities = [], []
    for features, chunk_offsets in SongFeatureStream(path, stream_config, filterbank=classifier.filterbank):
        probabilities.append(classifier.predict_chunks(features))
        offsets.append(chunk_offsets)
    offsets = np.concatenate(offsets) if offsets else np.zeros(0, np.int64)
    probabilities = np.concatenate(probabilities) if probabilities else np.zeros((0, len(classifier.classes)))
    window_samples = round(window * config.sr)
    hop_samples = grid * per_hop
    end = int(offsets.max()) + config.chunk_samples if len(offsets) else config.chunk_samples
    n_windows = max(1, (end - window_samples) // hop_samples + 1)
    starts = np.arange(n_windows) * hop_samples
    verdicts = [SongVerdict(len(classifier.classes)) for _ in range(n_windows)]
    slack = grid // 2  # chunks rounded to the grid may end a few samples past the window
    for offset, p in zip(offsets, probabilities):
        inside = (starts <= offset) & (offset + config.chunk_samples <= starts + window_samples + slack)
        for window in np.flatnonzero(inside):
            verdicts[window].add(p[np.newaxis])
    combined = np.array([verdict.probabilities for verdict in verdicts])
    counts = np.array([verdict.n_chunks for verdict in verdicts], dtype=np.int64)
    return Timeline(path=str(path), classes=tuple(classifier.classes), starts=starts / config.sr,
                    ends=(starts + window_samples) / config.sr, probabilities=combined, n_chunks=counts)


def write_timeline(timeline: Timeline, out: str | os.PathLike) -> dict:
    """Write ``<stem>.json``, ``<stem>.csv`` and ``<stem>.png`` (stacked probabilities) into ``out``.

    Returns
    -------
    dict
        ``{"json": path, "csv": path, "png": path}``.
    """
    out = ensure_folder(out, what="timeline files")
    stem = out / Path(timeline.path).stem
    paths = {kind: stem.with_name(f"{stem.name}.timeline.{kind}") for kind in ("json", "csv", "png")}
    partial = {kind: path.with_name(path.name + ".partial") for kind, path in paths.items()}
    partial["json"].write_text(json.dumps(timeline.to_dict(), indent=2) + "\n", encoding="utf-8")
    write_csv(partial["csv"], ["start", "end", "genre", "chunks", *timeline.classes],
              ([f"{s:.3f}", f"{e:.3f}", genre or "", int(count), *(("" if not count else f"{v:.6f}") for v in p)]
               for s, e, genre, count, p in zip(timeline.starts, timeline.ends, timeline.genres(), timeline.n_chunks,
                                                timeline.probabilities)))
    with open(partial["png"], "wb") as handle:
        plot_timeline(timeline, handle)
    for kind, path in paths.items():
        os.replace(partial[kind], path)
    return paths


@dataclasses.dataclass(frozen=True)
class TimelineOutcome:
    """One recording of :func:`classify_timelines`: its timeline and the files written, or its error.

    Attributes
    ----------
    path : str
    timeline : Timeline or None
    written : dict or None
        ``{"json": path, "csv": path, "png": path}``.
    error : str or None
        Why the recording could not be read.
    """

    path: str
    timeline: Optional[Timeline] = None
    written: Optional[dict] = None
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None


def classify_timelines(
    paths: Iterable[str | os.PathLike],
    *,
    out: str | os.PathLike,
    model=None,
    models_root: str | os.PathLike = DEFAULT_MODELS_DIR,
    backend: str = "auto",
    window: Optional[float] = None,
    hop: Optional[float] = None,
) -> Iterator[TimelineOutcome]:
    """The timeline of every recording in ``paths`` (files or folders), each written into ``out``.

    Yields one :class:`TimelineOutcome` per file as soon as it is done; a file that cannot be
    read yields its error and the others still run.

    Raises
    ------
    ConfigError
        ``paths`` holds no audio file, or ``window``/``hop`` do not suit the model.
    ModelError
        The model cannot be opened or makes no timelines.
    """
    paths = list(paths)
    classifier = open_classifier(model, models_root=models_root, backend=backend)
    check_timeline_options(classifier, window=window, hop=hop)  # before any file is decoded
    files = list(expand_paths(paths))
    if not files:
        raise ConfigError(f"no audio files found in {', '.join(map(str, paths))}; give audio files or folders "
                          "that hold them", parameter="paths")
    for path in files:
        try:
            timeline = classify_timeline(path, classifier, window=window, hop=hop)
        except AudioDecodeError as exc:
            yield TimelineOutcome(path=str(path), error=str(exc))
            continue
        yield TimelineOutcome(path=str(path), timeline=timeline, written=write_timeline(timeline, out))
