"""Classify a whole library into a results table that survives a crash: ``classify LIBRARY --out results.csv``.

A second run with the same table and model skips every file the table already holds unchanged
(same path, size and modification time) and appends the rest, so a run stopped by Ctrl-C,
``kill -9`` or a reboot goes on where it stopped, losing at most the rows in flight.
"""

from __future__ import annotations

import collections
import os
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Optional

from genre_cnn.errors import ConfigError, DatasetError, GenreCnnWarning
from genre_cnn.inference.classifier import classify_files, open_classifier
from genre_cnn.inference.prediction import expand_paths
from genre_cnn.library.results import ResultRow, ResultsTable
from genre_cnn.models.registry import DEFAULT_MODELS_DIR
from genre_cnn.models.store import ModelDir

__all__ = ["BulkRun", "classify_library", "TASK_SONGS", "ENGINES"]

#: Songs per Dask task: enough that opening the model once per task is nothing, few enough that a
#: lost worker costs little.
TASK_SONGS = 200
#: Where the songs are classified: this machine's cores, or a ``dask.distributed`` cluster.
ENGINES = ("local", "dask")


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

    def __init__(self, files: list[Path], classifier, table: ResultsTable, *, workers: Optional[int],
                 scheduler: Optional[str] = None) -> None:
        self.classifier, self.table, self.workers, self.scheduler = classifier, table, workers, scheduler
        self.files, self.to_do, self.unreadable = len(files), [], []
        for path in files:
            try:
                stat = path.stat()
                state = (stat.st_size, stat.st_mtime_ns)
            except OSError:  # a broken link: classify says what is wrong with it, once
                state = (0, 0)
            if table.done.get(os.fsdecode(path)) != state:
                self.to_do.append((path, *state))
        self.already_done = self.files - len(self.to_do)
        self.genres: collections.Counter = collections.Counter()

    def __len__(self) -> int:
        return len(self.to_do)

    def __iter__(self) -> Iterator[ResultRow]:
        try:
            rows = self._on_dask() if self.scheduler else self._here()
            for row in rows:
                self.table.add(row)
                self.genres[row.genre] += 1
                yield row
        finally:
            self.table.close()

    def _here(self) -> Iterator[ResultRow]:
        predictions = classify_files([path for path, _, _ in self.to_do], self.classifier, workers=self.workers)
        for (path, size, mtime_ns), prediction in zip(self.to_do, predictions):
            yield _row(path, size, mtime_ns, prediction, self.table.model)

    def _on_dask(self) -> Iterator[ResultRow]:
        """Tasks of :data:`TASK_SONGS` songs on the cluster, their rows in the order tasks finish.

        A task whose worker dies is run again by Dask elsewhere; its rows arrive once, with its result.
        """
        # lazy: only this engine needs Dask, an optional extra
        from dask.distributed import Client, as_completed

        if not self.to_do:
            return
        tasks = [self.to_do[start : start + TASK_SONGS] for start in range(0, len(self.to_do), TASK_SONGS)]
        try:
            client = Client(self.scheduler, timeout="10s")
        except OSError as exc:
            raise ConfigError(f"scheduler={self.scheduler}: cannot connect ({exc}); start the Dask scheduler or "
                              "check its address", parameter="scheduler") from None
        with client:
            futures = client.map(_classify_task, tasks, model_dir=os.fsdecode(self.classifier.model_dir),
                                 model=self.table.model, backend=self.classifier.backend, pure=False)
            for future in as_completed(futures):
                yield from future.result()
                future.release()


def _row(path: Path, size: int, mtime_ns: int, prediction, model: str) -> ResultRow:
    return ResultRow(os.fsdecode(path), size, mtime_ns, model, prediction.genre, prediction.probabilities,
                     prediction.n_chunks, prediction.error, prediction.unsure, prediction.novelty,
                     prediction.unfamiliar)


#: The classifier a Dask worker process opened, by model folder: opened once, used by every task.
_worker_classifiers: dict = {}


def _classify_task(songs: list, *, model_dir: str, model: str, backend: str) -> list[ResultRow]:
    """One Dask task: classify ``songs`` (path, size, mtime) with the model (as the client opened it), on one core."""
    key = (model_dir, backend)
    if key not in _worker_classifiers:
        with warnings.catch_warnings():  # the client has said what there was to say about the model
            warnings.simplefilter("ignore", GenreCnnWarning)
            _worker_classifiers[key] = open_classifier(model_dir, backend="auto" if backend == "sklearn" else backend)
    classifier = _worker_classifiers[key]
    return [_row(path, size, mtime_ns, classifier.classify_file(path), model) for path, size, mtime_ns in songs]


def classify_library(
    paths: Iterable[str | os.PathLike],
    *,
    out: str | os.PathLike,
    model: Optional[str | os.PathLike] = None,
    models_root: str | os.PathLike = DEFAULT_MODELS_DIR,
    workers: Optional[int] = None,
    backend: str = "auto",
    engine: str = "local",
    scheduler: Optional[str] = None,
) -> BulkRun:
    """Classify every audio file of ``paths`` into the results table ``out``, resuming it if it exists.

    Parameters
    ----------
    paths : iterable of path-like
        Folders (searched recursively, hidden files skipped) and/or files; rows name them by their
        real path (links resolved; a broken link by its own absolute path).
    out : path-like
        The table: ``.csv``, ``.jsonl`` or ``.parquet`` (:class:`genre_cnn.library.results.ResultsTable`).
    model : path-like, optional
        Any model folder; default: the latest fit.
    models_root : path-like
    workers : int, optional
        Processes classifying in parallel (default: one per core).
    backend : {"auto", "litert", "keras"}
    engine : {"local", "dask"}
        ``"dask"``: tasks of :data:`TASK_SONGS` songs on the ``dask.distributed`` cluster at
        ``scheduler``; each worker opens the model once; this process writes the same table as a
        local run (rows in the order tasks finish). The files and the model must be at the same
        paths on every worker (a shared file system).
    scheduler : str, optional
        The cluster's address, ``tcp://HOST:PORT`` (``engine="dask"`` only).

    Returns
    -------
    BulkRun
        Iterate it to run it; the table is complete (and synced) when the iteration ends or stops.

    Raises
    ------
    ConfigError
        ``out`` is not a table this model can resume (see :class:`ResultsTable`), a bad ``engine``, or
        ``engine="dask"`` without ``scheduler`` or without Dask installed (a scheduler that cannot be
        reached: when the run is iterated).
    DatasetError
        A path does not exist, or no audio file was found.
    ModelError
        The model cannot be opened.
    """
    if engine not in ENGINES:
        raise ConfigError(f"engine={engine!r} must be one of {', '.join(ENGINES)}", parameter="engine")
    if engine == "dask" and scheduler is None:
        raise ConfigError("engine='dask' runs on a cluster: give scheduler='tcp://HOST:PORT' (on this machine the "
                          "local engine already uses every core)", parameter="scheduler")
    if engine == "local" and scheduler is not None:
        raise ConfigError(f"scheduler={scheduler} only applies with engine='dask'", parameter="scheduler")
    if engine == "dask":
        try:
            import distributed  # noqa: F401  # lazy: only checks that the optional extra is there
        except ImportError:
            raise ConfigError("engine='dask' needs Dask: pip install 'genre-cnn[dask]'", parameter="engine") from None
    paths = [Path(path) for path in paths]
    missing = [path for path in paths if not os.path.lexists(path)]
    if missing:
        raise DatasetError(f"{missing[0]}: does not exist; pass folders of songs or audio files")
    classifier = open_classifier(model, models_root=models_root, backend=backend)
    # rows name files by their real path: the same library reached through a link resumes the same rows
    files = [Path(os.path.realpath(path)) if not path.is_symlink() or path.exists() else Path(os.path.abspath(path))
             for path in expand_paths(paths)]
    if not files:
        raise DatasetError(f"no audio files found in {', '.join(map(str, paths))}")
    folder = ModelDir(Path(classifier.model_dir))
    table = ResultsTable(out, classes=classifier.classes, model=f"{folder.name}@{folder.fingerprint()}")
    return BulkRun(files, classifier, table, workers=workers, scheduler=scheduler)
