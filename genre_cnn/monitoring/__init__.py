"""``genre-cnn monitor``: tell when incoming audio no longer looks like the training data.

    from genre_cnn.monitoring import monitor
    report = monitor("models/demo", ["incoming/"])
    print(report.drifted, [check.name for check in report.checks if check.drifted])
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Callable, Optional

from genre_cnn.data.dataset import load_dataset
from genre_cnn.errors import ModelError
from genre_cnn.inference.classifier import open_classifier
from genre_cnn.models.registry import resolve_model_dir
from genre_cnn.monitoring.profile import PROFILE_FILE, Profile, SongProfiler, load_profile, profile_songs, save_profile
from genre_cnn.runtime.files import exclusive_lock

__all__ = ["DRIFT_EXIT_CODE", "Check", "DriftReport", "MonitorError", "PROFILE_FILE", "Profile", "SongProfiler",
           "compare", "load_profile", "monitor", "profile_songs", "read_serve_log",
           "write_reference_profile", "rebuild_profile"]

#: Exported lazily: the drift checks import scipy.stats (~1 s), which writing or reading a profile
#: (``fit``, ``baseline``, ``serve --log``) does not need.
_DRIFT = ("DRIFT_EXIT_CODE", "Check", "DriftReport", "MonitorError", "compare", "monitor", "read_serve_log")


def __getattr__(name: str):
    if name in _DRIFT:
        return getattr(importlib.import_module("genre_cnn.monitoring.drift"), name)
    raise AttributeError(f"module 'genre_cnn.monitoring' has no attribute {name!r}")


def write_reference_profile(model_dir: str | os.PathLike, dataset, *, inputs=None,
                            log: Callable[[str], None] = print) -> Optional[Path]:
    """Profile a model's dataset songs and save ``profile.npz`` in ``model_dir`` (what ``fit`` does).

    From what the dataset holds (:meth:`Profile.from_dataset`: no song is decoded again, unless the
    dataset was built before songs' levels were recorded). ``inputs``: the network's inputs when
    they are not the dataset's chunks (musicnn's patches). Songs whose audio can no longer be read
    are left out (and counted in the log line); when none can be read, no profile is written and the
    log says how to add one later.

    Returns
    -------
    Path or None
        The profile written, or None.
    """
    model_dir = Path(model_dir)
    profile, skipped = Profile.from_dataset(dataset, open_classifier(model_dir), inputs=inputs)
    if profile is None:
        log(f"No reference profile for 'genre-cnn monitor': none of the {len(skipped)} song(s) of {dataset.path} "
            "could be read again")
        return None
    save_profile(profile, model_dir / PROFILE_FILE)
    if skipped:
        log(f"Reference profile: {profile.n_songs} song(s); {len(skipped)} could not be read again, "
            f"e.g. {skipped[0][0]}")
    return model_dir / PROFILE_FILE


def rebuild_profile(model_dir: str | os.PathLike, dataset_dir: str | os.PathLike, *,
                    log: Callable[[str], None] = print) -> Path:
    """Add (or replace) the reference profile of a model, from the dataset it was fitted on.

    Raises
    ------
    ModelError
        No model at ``model_dir``, or no song of the dataset could be read.
    DatasetError
        No dataset at ``dataset_dir``.
    """
    model_dir = resolve_model_dir(model_dir)
    dataset = load_dataset(dataset_dir)
    with exclusive_lock(model_dir, command="genre-cnn monitor --rebuild-profile"):
        written = write_reference_profile(model_dir, dataset, log=log)
    if written is None:
        raise ModelError(f"{dataset_dir}: none of its songs could be read again (moved or deleted?); "
                         "rebuild the dataset from the songs, then the profile")
    return written
