"""Process pools that start fast and stay safe next to TensorFlow."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Optional

from genre_cnn.errors import ConfigError
from genre_cnn.runtime.files import release_inherited_locks
from genre_cnn.runtime.native import reuse_freed_memory

__all__ = ["process_pool", "stop_pool", "run_dask_tasks", "die_with_parent"]

#: ``prctl`` option of Linux: the signal a process receives when its parent dies (linux/prctl.h).
_PR_SET_PDEATHSIG = 1
#: Where ``prctl`` is missing, how often a worker checks that its parent is still alive, in seconds.
PARENT_CHECK_SECONDS = 0.5


def process_pool(workers: int, *, initializer=None, initargs=(), fork: bool = True) -> ProcessPoolExecutor:
    """A :class:`ProcessPoolExecutor` of ``workers`` single-threaded processes.

    Workers are forked (they start in milliseconds) unless TensorFlow is loaded in this process
    or ``fork`` is False: TensorFlow's threads (or a server's) make a forked child unsafe, so they
    are spawned instead. Each worker limits BLAS and OpenMP to one thread, so ``workers``
    processes use ``workers`` cores, not more, and keeps freed memory for reuse
    (:func:`genre_cnn.runtime.native.reuse_freed_memory`).

    A worker dies with the process that started it (:func:`die_with_parent`), also when that
    process is killed with ``kill -9`` or by the out-of-memory killer, and a forked worker closes
    its copies of the parent's output locks (:func:`genre_cnn.runtime.files.release_inherited_locks`),
    so a killed command leaves no process running and no lock held.
    """
    safe_to_fork = fork and "fork" in multiprocessing.get_all_start_methods() and "tensorflow" not in sys.modules
    context = multiprocessing.get_context("fork" if safe_to_fork else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                               initargs=(os.getpid(), initializer, initargs))


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel the pool's queued work and end its processes now, even those in the middle of a task.

    For pools whose tasks are answers (a server's), not writes: nothing is lost by ending them.
    Before Python 3.14 (``kill_workers``) the processes are found in the executor's ``_processes``
    (private, but the same from Python 3.8 to 3.13); where it is missing, the pool is only shut down.

    Parameters
    ----------
    pool : ProcessPoolExecutor
    """
    kill = getattr(pool, "kill_workers", None)  # Python 3.14+
    if kill is not None:
        kill()
    else:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
    pool.shutdown(wait=True, cancel_futures=True)  # the executor sees its processes gone and cleans up


def die_with_parent(parent_pid: int) -> None:
    """End this process as soon as the process ``parent_pid`` (its parent) is gone.

    On Linux the kernel sends SIGKILL on the parent's death (``prctl(PR_SET_PDEATHSIG)``), checked
    once against a parent that died before the call; elsewhere a daemon thread checks the parent
    every :data:`PARENT_CHECK_SECONDS`. Without it a pool worker whose parent was killed would wait
    for work forever, re-parented to init. Linux sends the signal when the *thread* that started the
    worker ends: the pools here start their workers from the thread that submits work (the main
    thread, or a server's event loop), which lives as long as the pool.

    Parameters
    ----------
    parent_pid : int
        The process id of the parent, read before the worker started.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        armed = sys.platform.startswith("linux") and libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        armed = False
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(PARENT_CHECK_SECONDS)
            os._exit(1)

        threading.Thread(target=watch, name="genre-cnn-parent-watch", daemon=True).start()


def _start_worker(parent_pid: int, initializer, initargs) -> None:
    die_with_parent(parent_pid)
    release_inherited_locks()
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
