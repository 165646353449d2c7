"""Keep chatter from native libraries off the terminal."""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["native_stderr_silenced"]


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
