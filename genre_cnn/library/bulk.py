"""Classify a whole library into a results table that survives a crash: ``classify LIBRARY --out results.csv``.

A second run with the same table and model skips every file the table already holds unchanged
(same path, size and modification time) and appends the rest, so a run stopped by Ctrl-C,
``kill -9`` or a reboot goes on where it stopped, losing at most the rows in flight.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import Iterable, Iterator, Optional

from genre_cnn.inference.classifier import classify_files, open_classifier
from genre_cnn.inference.prediction import expand_paths
from genre_cnn.library.results import ResultRow, ResultsTable
from genre_cnn.models.registry import DEFAULT_MODELS_DIR
from genre_cnn.models.store import ModelDir

__all__ = ["BulkRun", "classify_library"]


class BulkRun:
    """One run of :func:`classify_library`; iterate it to run it (one :class:`ResultRow` per file classified).

    Attributes
    ----------
    table : ResultsTable
    files : int
        Audio files found.
    already_done : int
        Files the table already held unchanged (not classified again).
    to_do : list of (Path, int, int)
        The files to classify, with their size and modification time.
    genres : collections.Counter
        Songs per genre classified in this run (``None`` counts the errors), once iterated.
    """

    def __init__(self, files: list[Path], classifier, table: ResultsTable, *, workers: Optional[int]) -> None:
        self.classifier, self.table, self.workers = classifier, table, workers
        self.files, self.to_do, self.unreadable = len(files), [], []
        for path in files:
            try:
                stat = path.stat()
            except OSError:  # a broken link: classify says what is wrong with it
                self.to_do.append((path, 0, 0))
                continue
            if table.done.get(os.fsdecode(path)) != (stat.st_size, stat.st_mtime_ns):
                self.to_do.append((path, stat.st_size, stat.st_mtime_ns))
        self.already_done = self.files - len(self.to_do)
        self.genres: collections.Counter = collections.Counter()

    def __len__(self) -> int:
        return len(self.to_do)

    def __iter__(self) -> Iterator[ResultRow]:
        try:
            predictions = classify_files([path for path, _, _ in self.to_do], self.classifier, workers=self.workers)
            for (path, size, mtime_ns), prediction in zip(self.to_do, predictions):
                row = ResultRow(os.fsdecode(path), size, mtime_ns, self.table.model, prediction.genre,
                                prediction.probabilities, prediction.n_chunks, prediction.error)
                self.table.add(row)
                self.genres[row.genre] += 1
                yield row
        finally:
            self.table.close()


def classify_library(
    paths: Iterable[str | os.PathLike],
    *,
    out: str | os.PathLike,
    model: Optional[str | os.PathLike] = None,
    models_root: str | os.PathLike = DEFAULT_MODELS_DIR,
    workers: Optional[int] = None,
    backend: str = "auto",
) -> BulkRun:
    """Classify every audio file of ``paths`` into the results table ``out``, resuming it if it exists.

    Parameters
    ----------
    paths : iterable of path-like
        Folders (searched recursively, hidden files skipped) and/or files; rows name them by their
        absolute path.
    out : path-like
        The table: ``.csv``, ``.jsonl`` or ``.parquet`` (:class:`genre_cnn.library.results.ResultsTable`).
    model : path-like, optional
        Any model folder; default: the latest fit.
    models_root : path-like
    workers : int, optional
        Processes classifying in parallel (default: one per core).
    backend : {"auto", "litert", "keras"}

    Returns
    -------
    BulkRun
        Iterate it to run it; the table is complete (and synced) when the iteration ends or stops.

    Raises
    ------
    ConfigError
        ``out`` is not a table this model can resume (see :class:`ResultsTable`).
    ModelError
        The model cannot be opened.
    """
    classifier = open_classifier(model, models_root=models_root, backend=backend)
    folder = ModelDir(Path(classifier.model_dir))
    table = ResultsTable(out, classes=classifier.classes, model=f"{folder.name}@{folder.fingerprint()}")
    files = [Path(os.path.abspath(path)) for path in expand_paths(paths)]
    return BulkRun(files, classifier, table, workers=workers)
