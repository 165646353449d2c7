"""Process pools that start fast and stay safe next to TensorFlow."""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

__all__ = ["process_pool"]


def process_pool(workers: int, *, initializer=None, initargs=(), fork: bool = True) -> ProcessPoolExecutor:
    """A :class:`ProcessPoolExecutor` of ``workers`` single-threaded processes.

    Workers are forked (they start in milliseconds) unless TensorFlow is loaded in this process
    or ``fork`` is False: TensorFlow's threads (or a server's) make a forked child unsafe, so they
    are spawned instead. Each worker limits BLAS and OpenMP to one thread, so ``workers``
    processes use ``workers`` cores, not more.
    """
    safe_to_fork = fork and "fork" in multiprocessing.get_all_start_methods() and "tensorflow" not in sys.modules
    context = multiprocessing.get_context("fork" if safe_to_fork else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                               initargs=(initializer, initargs))


def _start_worker(initializer, initargs) -> None:
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # threadpoolctl comes with scikit-learn; without it, keep the defaults
        pass
    if initializer is not None:
        initializer(*initargs)
