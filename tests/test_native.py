"""Native settings: freed memory is kept for the next song, not zeroed again by the kernel."""

from __future__ import annotations

import platform
import resource

import numpy as np
import pytest

from genre_cnn.runtime.native import reuse_freed_memory
from genre_cnn.runtime.parallel import process_pool

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")

#: Larger than glibc's own ceiling for serving blocks from the heap (32 MB), under ours (64 MB).
BLOCK_BYTES = 40 * 2**20
REPEATS = 5
#: A freshly mapped block faults at least once per page, or per 2 MB with transparent huge pages.
FRESH_BLOCK_FAULTS = BLOCK_BYTES // (2 * 2**20)


def page_faults_of_repeated_blocks(repeats: int = REPEATS) -> int:
    """Minor page faults while allocating, filling and freeing the same large block ``repeats`` times."""
    np.ones(BLOCK_BYTES // 8)  # the first one may fault: the heap grows once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        block = np.ones(BLOCK_BYTES // 8)
        del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def without_the_setting() -> int:
    return page_faults_of_repeated_blocks()


@glibc_only
def test_a_pool_worker_reuses_freed_memory():
    with process_pool(1) as pool:
        faults = pool.submit(page_faults_of_repeated_blocks).result()
    assert faults < FRESH_BLOCK_FAULTS  # fewer than one fresh block in all the repeats


@glibc_only
def test_without_the_setting_every_large_block_is_zeroed_again():
    # the same measurement in a process that never called reuse_freed_memory: what the setting saves
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        faults = pool.apply(without_the_setting)
    assert faults >= REPEATS * FRESH_BLOCK_FAULTS  # every block mapped and zeroed afresh


@glibc_only
def test_reuse_freed_memory_says_it_took_effect():
    assert reuse_freed_memory() is True
