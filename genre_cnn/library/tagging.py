"""Tag a music library from the sound: predict each song's genre and, when asked, write it into the file.

Nothing is written unless ``write=True``. Then only files without a genre tag are written (all
files with ``overwrite=True``), never a song whose top probability is below ``min_confidence``
nor one the model flags unfamiliar (unlike every song it learned from: speech, noise, another genre),
and every write goes through :func:`genre_cnn.library.tags.write_genre` (journal, copy, audio
check, rename). A second run skips the files the same model already tagged.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

from genre_cnn.errors import ConfigError, DatasetError, TagError
from genre_cnn.inference.classifier import classify_files, open_classifier
from genre_cnn.inference.prediction import SongPrediction, expand_paths
from genre_cnn.library.tags import (
    TAG_FAMILIES,
    TagJournal,
    is_read_only,
    read_tags,
    remove_stale_copies,
    supports_tags,
    write_genre,
)
from genre_cnn.models.registry import DEFAULT_MODELS_DIR
from genre_cnn.models.store import ModelDir
from genre_cnn.runtime.csvfiles import escape_text

__all__ = ["DEFAULT_MIN_CONFIDENCE", "ACTIONS", "TagDecision", "TagRun", "tag_library", "model_signature", "TagReport"]

#: A song whose top genre probability is below this is "unsure" and never written, when the model has no
#: threshold of its own (one fitted before calibration; see :class:`genre_cnn.models.calibration.Calibration`).
DEFAULT_MIN_CONFIDENCE = 0.6
#: What :class:`TagDecision.action` can be, in the order the summary counts them.
ACTIONS = ("write", "keep", "skip", "error")


@dataclasses.dataclass(frozen=True)
class TagDecision:
    """What ``tag`` does (or would do) with one file.

    Attributes
    ----------
    path : Path
    current : tuple of str
        The file's genre tag values before the run.
    genre : str or None
        The predicted genre (None when the file was not classified).
    probability : float or None
        Its probability.
    action : {"write", "keep", "skip", "error"}
        ``write``: the genre goes (or would go, without ``write=True``) into the file; ``keep``: the
        file keeps its genre; ``skip``: not written, for the ``reason`` given; ``error``: the file
        could not be read or classified.
    reason : str
        One line for a person.
    written : bool
        Whether the file was changed by this run.
    """

    path: Path
    current: tuple[str, ...]
    genre: Optional[str]
    probability: Optional[float]
    action: str
    reason: str
    written: bool = False

    def to_dict(self) -> dict:
        return {"path": os.fsdecode(self.path), "current": "; ".join(self.current), "genre": self.genre,
                "probability": None if self.probability is None else round(self.probability, 4),
                "action": self.action, "written": self.written, "reason": self.reason}


def model_signature(classifier) -> str:
    """How a model signs the genres it writes: ``genre-cnn NAME@FINGERPRINT`` (:meth:`ModelDir.fingerprint`)."""
    folder = ModelDir(Path(classifier.model_dir))
    return f"genre-cnn {folder.name}@{folder.fingerprint()}"


class TagRun:
    """One pass of :func:`tag_library` over a library; iterate it to run it.

    Attributes
    ----------
    journal : Path or None
        The undo journal (with ``write=True``).
    counts : collections.Counter
        Files per action, and ``"written"``, once the run is over.
    signature : str
        The model's :func:`model_signature`.
    """

    def __init__(self, files: list[Path], classifier, *, write: bool, overwrite: bool, min_confidence: float,
                 journal: Optional[Path], workers: Optional[int]) -> None:
        self.files, self.classifier = files, classifier
        self.write, self.overwrite, self.min_confidence = write, overwrite, min_confidence
        self.journal, self.workers = journal, workers
        self.signature = model_signature(classifier)
        self.counts: collections.Counter = collections.Counter()

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[TagDecision]:
        journal = TagJournal(self.journal) if self.write else None
        try:
            for decision in self._decide_all(journal):
                self.counts[decision.action] += 1
                self.counts["written"] += decision.written
                yield decision
        finally:
            if journal is not None:
                journal.close()

    def _decide_all(self, journal: Optional[TagJournal]) -> Iterator[TagDecision]:
        candidates = []  # (path, current genres, (size, mtime_ns)) of the files to classify
        for path in self.files:
            decision, state = self._before_classifying(path)
            if decision is not None:
                yield decision
            else:
                candidates.append((path, *state))
        predictions = classify_files([path for path, _, _ in candidates], self.classifier, workers=self.workers)
        for (path, current, expect), prediction in zip(candidates, predictions):
            yield self._after_classifying(path, current, expect, prediction, journal)

    def _before_classifying(self, path: Path):
        """A decision that needs no prediction, or ``None`` and the file's genres and state."""
        if not supports_tags(path):
            return TagDecision(path, (), None, None, "skip", f"tags of {path.suffix or 'extension-less'} files are "
                               f"not supported ({', '.join(TAG_FAMILIES)} are)"), None
        try:
            tags = read_tags(path)
            stat = path.stat()
        except (TagError, OSError) as exc:
            return TagDecision(path, (), None, None, "error", _reason(exc, path)), None
        if tags.source and tags.source.split(" p=")[0] == self.signature:
            return TagDecision(path, tags.genres, None, None, "skip", "already tagged by this model"), None
        if tags.genres and not self.overwrite:
            return TagDecision(path, tags.genres, None, None, "keep",
                               "has a genre tag: kept (overwrite to replace it)"), None
        if self.write and (is_read_only(path) or is_read_only(path.parent)):
            return TagDecision(path, tags.genres, None, None, "skip",
                               "read-only (file or folder): make it writable to tag it"), None
        return None, (tags.genres, (stat.st_size, stat.st_mtime_ns))

    def _after_classifying(self, path: Path, current: tuple, expect: tuple, prediction: SongPrediction,
                           journal: Optional[TagJournal]) -> TagDecision:
        if not prediction.ok:
            return TagDecision(path, current, None, None, "error", _reason(prediction.error, path))
        (genre, probability), *rest = prediction.top(2)
        if prediction.unfamiliar:
            return TagDecision(path, current, genre, probability, "skip",
                               f"unfamiliar: not like the songs the model learned from (novelty "
                               f"{prediction.novelty:.1f}), so {genre} {probability:.2f} is not written")
        if probability < self.min_confidence:
            runner_up = f", then {rest[0][0]} {rest[0][1]:.2f}" if rest else ""
            return TagDecision(path, current, genre, probability, "skip",
                               f"unsure: {genre} {probability:.2f}{runner_up} "
                               f"(below the minimum confidence {self.min_confidence:.2f})")
        if any(value.casefold() == genre.casefold() for value in current):
            return TagDecision(path, current, genre, probability, "keep", f"already {genre}")
        change = f"{'; '.join(current) or '(no genre)'} -> {genre}"
        if journal is None:
            return TagDecision(path, current, genre, probability, "write", f"would write: {change}")
        try:
            write_genre(path, genre, source=f"{self.signature} p={probability:.2f}", journal=journal, expect=expect)
        except TagError as exc:
            return TagDecision(path, current, genre, probability, "skip", _reason(exc, path))
        return TagDecision(path, current, genre, probability, "write", change, written=True)


def _reason(error, path: Path) -> str:
    """An error's message without the file name it starts with (the decision already names the file)."""
    if isinstance(error, OSError):
        return f"cannot be read ({error.strerror})"
    text = str(error)
    return text[len(f"{path}: "):] if text.startswith(f"{path}: ") else text


def tag_library(
    library: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    model: Optional[str | os.PathLike] = None,
    models_root: str | os.PathLike = DEFAULT_MODELS_DIR,
    write: bool = False,
    overwrite: bool = False,
    min_confidence: Optional[float] = None,
    journal: Optional[str | os.PathLike] = None,
    workers: Optional[int] = None,
    backend: str = "auto",
) -> TagRun:
    """Predict the genre of every song of a library and, with ``write=True``, write it into its tags.

    Parameters
    ----------
    library : path-like or iterable of path-like
        Folders (searched recursively; hidden files and folders skipped) and/or files.
    model : path-like, optional
        Any model folder (:func:`genre_cnn.inference.classifier.open_classifier`); default: the latest fit.
    models_root : path-like
    write : bool
        Change files. Without it the run only says what it would do.
    overwrite : bool
        Also replace genre tags the files already have (by default only untagged files are written).
    min_confidence : float, optional
        Songs whose (calibrated) top genre probability is below this are "unsure" and never written.
        Default: the model's own threshold (chosen when it was fitted, so that songs at least that sure
        were right 90 % of the time), or :data:`DEFAULT_MIN_CONFIDENCE` for a model without one.
    journal : path-like, optional
        The undo journal (``write=True``); default ``genre-cnn-tags-YYYYMMDD-HHMMSS.jsonl`` in the
        current folder. An existing journal is appended to. :func:`genre_cnn.library.tags.undo_journal`
        undoes it.
    workers : int, optional
        Processes classifying songs in parallel (default: one per core).
    backend : {"auto", "litert", "keras"}

    Returns
    -------
    TagRun
        Iterate it to run it: one :class:`TagDecision` per audio file, as it is decided.

    Raises
    ------
    ConfigError
        ``min_confidence`` outside [0, 1].
    ModelError, DatasetError
        The model cannot be opened, or ``library`` does not exist.
    """
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise ConfigError(f"min_confidence={min_confidence:g} must be in [0, 1] (a probability)",
                          parameter="min_confidence")
    roots = [library] if isinstance(library, (str, os.PathLike)) else list(library)
    missing = [str(root) for root in roots if not Path(root).exists()]
    if missing:
        raise DatasetError(f"library={missing[0]}: does not exist; pass a folder of songs or audio files",
                           parameter="library")
    classifier = open_classifier(model, models_root=models_root, backend=backend)
    if min_confidence is None:
        min_confidence = DEFAULT_MIN_CONFIDENCE if classifier.min_confidence is None else classifier.min_confidence
    if write:  # copies that a killed run left beside the songs (the songs themselves are whole)
        remove_stale_copies(Path(root) if Path(root).is_dir() else Path(root).parent for root in roots)
    if write and journal is None:
        journal = f"genre-cnn-tags-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    files = list(expand_paths(roots))
    return TagRun(files, classifier, write=write, overwrite=overwrite, min_confidence=min_confidence,
                  journal=Path(journal) if write else None, workers=workers)


class TagReport:
    """One line per :class:`TagDecision` in a CSV (``.csv``) or JSON Lines (``.jsonl``/``.json``) file.

    Each line is flushed as it is written, so an interrupted run's report holds every decision made.
    """

    COLUMNS = ("path", "current", "genre", "probability", "action", "written", "reason")

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.format = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(self.path.suffix.lower())
        if self.format is None:
            raise ConfigError(f"report={self.path}: name a .csv or .jsonl file", parameter="report")
        try:
            self._file = open(self.path, "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise ConfigError(f"report={self.path}: cannot be written ({exc.strerror})", parameter="report") from None
        if self.format == "csv":
            self._csv = csv.writer(self._file)
            self._csv.writerow(self.COLUMNS)

    def add(self, decision: TagDecision) -> None:
        row = decision.to_dict()
        if self.format == "csv":
            self._csv.writerow([escape_text(row["path"]), escape_text(row["current"]), row["genre"] or "",
                                "" if row["probability"] is None else row["probability"], row["action"],
                                int(row["written"]), escape_text(row["reason"])])
        else:
            row.update(path=escape_text(row["path"]), current=escape_text(row["current"]),
                       reason=escape_text(row["reason"]))
            self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "TagReport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
