"""Build a huge library in shards (on many machines or a Dask cluster) and merge them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from genre_cnn.data.arrays import NpyAppender
from genre_cnn.data.build import BuildReport, build_dataset
from genre_cnn.data.cache import merge_song_indexes
from genre_cnn.data.dataset import load_dataset, read_summary
from genre_cnn.data.split import check_shard
from genre_cnn.data.store import DATASET_FOLDER, DatasetDir
from genre_cnn.data.summary import BuildSummary
from genre_cnn.errors import ConfigError, DatasetError
from genre_cnn.runtime.files import atomic_directory, check_output_folder, exclusive_lock
from genre_cnn.runtime.parallel import run_dask_tasks

__all__ = ["parse_shard", "merge_datasets", "build_with_dask"]


def parse_shard(text: str) -> tuple[int, int]:
    """``"3/100"`` -> ``(3, 100)``, checked."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"shard={text!r} must look like I/N, e.g. 0/4 (shard I of N, I from 0)",
                          parameter="shard") from None
    return check_shard((index, count))


def merge_datasets(shard_dirs: Sequence[str | os.PathLike], *, out: str | os.PathLike) -> BuildReport:
    """Concatenate shard datasets (same feature config and genres) into one dataset.

    Features are copied shard by shard (memory: one shard's memory map, not the data).

    Raises
    ------
    DatasetError
        No shards, or shards made with different feature configs, genres or split options.
    """
    shards = [load_dataset(path) for path in shard_dirs]
    if not shards:
        raise DatasetError("no shard datasets given to merge")
    first = shards[0]
    summaries = [read_summary(shard.path) for shard in shards]
    for shard, summary in zip(shards[1:], summaries[1:]):
        same_split = summary.same_split_options(summaries[0])
        if shard.feature_config != first.feature_config or shard.classes != first.classes or not same_split:
            raise DatasetError(
                f"{shard.path}: made with other feature options, genres or split options than {first.path}; "
                "build every shard with the same command, changing only --shard"
            )
    out = check_output_folder(out, kind=DATASET_FOLDER, inputs=shard_dirs)
    with exclusive_lock(out, command="genre-cnn merge-datasets"), \
            atomic_directory(out, kind=DATASET_FOLDER, inputs=shard_dirs) as tmp:
        merged, sources = DatasetDir(tmp), [DatasetDir(shard.path) for shard in shards]
        with NpyAppender(merged / merged.FEATURES, row_shape=first.feature_config.input_shape,
                         dtype=first.feature_config.dtype) as features:
            for shard in shards:
                for start in range(0, len(shard.features), 256):
                    features.append(shard.features[start : start + 256])
        merged.write_concatenated(merged.MANIFEST, sources)
        merged.write_concatenated(merged.SKIPPED, sources)
        merge_song_indexes([(source, len(shard.features)) for source, shard in zip(sources, shards)], merged)
        merged.write_offsets(np.concatenate([source.read_offsets() for source in sources]))
        merged.write_config(first.feature_config, first.classes)
        summary = BuildSummary.merge(
            summaries, sources=[str(shard.path) for shard in shards],
            groups=len({g for shard in shards for g in np.unique(shard.groups) if g}),
            folds=sorted({f for shard in shards for f in np.unique(shard.folds) if f}))
        merged.write_summary(summary)
    return BuildReport(path=out, summary=summary)


def build_with_dask(
    tracks_dir: str | os.PathLike,
    *,
    out: str | os.PathLike,
    shards: int,
    scheduler: Optional[str] = None,
    **options,
) -> BuildReport:
    """Build ``shards`` shards as Dask tasks, then merge them into ``out``.

    Each task runs :func:`genre_cnn.build_dataset` with ``shard=(i, shards)`` into
    ``out/../.NAME.shards/i`` (a shared file system is needed on a cluster).

    Parameters
    ----------
    tracks_dir, out : path-like
    shards : int
        Number of shards (tasks).
    scheduler : str, optional
        A Dask scheduler: ``"processes"`` or ``"threads"`` on this machine, or the address of a
        ``dask.distributed`` scheduler (``"tcp://host:8786"``). Default: ``"processes"``.
    **options
        Passed to :func:`genre_cnn.build_dataset` (``config``, fractions, ``seed``, ``force``).
    """
    out = Path(out)
    shard_root = out.parent / f".{out.name}.shards"
    tasks = [dict(tracks_dir=tracks_dir, out=shard_root / str(i), shard=(i, shards), workers=1, **options)
             for i in range(shards)]
    reports = run_dask_tasks(build_dataset, tasks, scheduler=scheduler)
    return merge_datasets([report.path for report in reports], out=out)
