"""Native-library settings: chatter kept off the terminal, freed memory kept for reuse."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys

__all__ = ["native_stderr_silenced", "reuse_freed_memory"]

#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap instead of a fresh ``mmap`` each.
MMAP_THRESHOLD_BYTES = 64 * 2**20
#: Freed heap memory kept for the next allocation, up to this much, instead of given back at once.
TRIM_THRESHOLD_BYTES = 256 * 2**20


@functools.cache
def reuse_freed_memory() -> bool:
    """Make glibc keep freed blocks of up to 64 MB for reuse in this process.

    Decoding and featurising a song allocates a few arrays of megabytes each. glibc serves every
    block over 128 kB with a fresh ``mmap`` and unmaps it on release, so the kernel zeroes those
    pages again for the next song: measured on ``classify`` of 272 songs, 2.2 s of the 15 s of CPU
    time were spent in the kernel, 0.5 s with this setting. Peak memory is unchanged (only memory
    already used is kept).

    Returns
    -------
    bool
        False where the C library is not glibc (macOS, musl, Windows): nothing is changed there.
    """
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into this process, the C library's among them
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 (glibc only)
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                   TRIM_THRESHOLD_BYTES))


@contextlib.contextmanager
def native_stderr_silenced():
    """Silence what C code writes to file descriptor 2 (TensorFlow's CUDA probing, mpg123's notes).

    ``TF_CPP_MIN_LOG_LEVEL`` does not cover the messages logged before absl is initialised.
    Python exceptions are unaffected: they are raised after the descriptor is restored.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (some notebooks): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
