"""Process pools that start fast and stay safe next to TensorFlow."""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Optional

from genre_cnn.errors import ConfigError
from genre_cnn.runtime.native import reuse_freed_memory

__all__ = ["process_pool", "run_dask_tasks"]


def process_pool(workers: int, *, initializer=None, initargs=(), fork: bool = True) -> ProcessPoolExecutor:
    """A :class:`ProcessPoolExecutor` of ``workers`` single-threaded processes.

    Workers are forked (they start in milliseconds) unless TensorFlow is loaded in this process
    or ``fork`` is False: TensorFlow's threads (or a server's) make a forked child unsafe, so they
    are spawned instead. Each worker limits BLAS and OpenMP to one thread, so ``workers``
    processes use ``workers`` cores, not more, and keeps freed memory for reuse
    (:func:`genre_cnn.runtime.native.reuse_freed_memory`).
    """
    safe_to_fork = fork and "fork" in multiprocessing.get_all_start_methods() and "tensorflow" not in sys.modules
    context = multiprocessing.get_context("fork" if safe_to_fork else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                               initargs=(initializer, initargs))


def _start_worker(initializer, initargs) -> None:
    reuse_freed_memory()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # threadpoolctl comes with scikit-learn; without it, keep the defaults
        pass
    if initializer is not None:
        initializer(*initargs)


def run_dask_tasks(function, tasks: list[dict], *, scheduler: Optional[str] = None) -> list:
    """``function(**task)`` for every task, as Dask tasks; results in task order.

    ``scheduler``: ``"processes"`` (default) or ``"threads"`` on this machine, or the address of a
    ``dask.distributed`` scheduler (``tcp://host:8786``; the files the tasks read and write must be
    on a shared file system).

    Raises
    ------
    ConfigError
        Dask is not installed.
    """
    try:
        import dask
    except ImportError:
        raise ConfigError("engine='dask' needs Dask: pip install 'genre-cnn[dask]'") from None
    delayed = [dask.delayed(function)(**task) for task in tasks]
    if scheduler is not None and "://" in scheduler:
        from dask.distributed import Client

        with Client(scheduler) as client:
            return list(client.compute(delayed, sync=True))
    return list(dask.compute(*delayed, scheduler=scheduler or "processes"))
