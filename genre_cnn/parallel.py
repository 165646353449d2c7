"""Process pools that start fast and stay safe next to TensorFlow."""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

__all__ = ["process_pool"]


def process_pool(workers: int, **options) -> ProcessPoolExecutor:
    """A :class:`ProcessPoolExecutor` of ``workers`` processes.

    Workers are forked (they start in milliseconds) unless TensorFlow is loaded in this process:
    its threads make a forked child unsafe, so they are spawned instead.
    """
    safe_to_fork = "fork" in multiprocessing.get_all_start_methods() and "tensorflow" not in sys.modules
    context = multiprocessing.get_context("fork" if safe_to_fork else "spawn")
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, **options)
