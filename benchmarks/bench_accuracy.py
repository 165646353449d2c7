"""Which recipe learns genres best? 5-fold song-level cross-validation, every recipe on the same folds.

For each real set (the demo tracks, and ``../shared/dev-music`` when present) it builds a dataset
(``--test-fraction 0``), then runs :func:`genre_cnn.training.cv.compare_recipes` with the CNN from scratch
(the default recipe), the CNN distilled from musicnn, the musicnn backbone and the scikit-learn
baseline, and prints song accuracy mean ± std and CPU time. ``--before CHECKOUT`` also runs
``genre-cnn cv`` of another checkout of genre-cnn (e.g. the previous release, for "today's
recipe") on the same dataset and folds.

    python benchmarks/bench_accuracy.py --before /tmp/genre-cnn-previous
    python benchmarks/bench_accuracy.py --sets dev --dev-groups source --folds 3 --val-fraction 0
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

ROOT = Path(__file__).resolve().parents[1]
DEV_MUSIC = ROOT.parent / "shared" / "dev-music"


def build(name: str, work: Path, *, group_column: str | None = None) -> Path:
    from genre_cnn.data.dataset import build_dataset
    from genre_cnn.data.metadata import scan_metadata

    songs = ROOT / "tracks" if name == "demo" else scan_metadata(
        DEV_MUSIC / "metadata.csv", audio_root=DEV_MUSIC, path_column="path", label_column="genre",
        group_column=group_column)
    return build_dataset(songs, out=work / name, val_fraction=0.15, test_fraction=0.0).path


def before(checkout: Path, data: Path, out: Path, *, folds: int, epochs: int) -> dict:
    """``genre-cnn cv`` of another checkout: its summary and CPU time."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "genre_cnn", "cv", "--data", str(data), "--folds", str(folds),
                    "--epochs", str(epochs), "--out", str(out), "-q"], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(checkout)}, cwd=checkout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads((out / "cv.json").read_text())["summary"]
    summary["cpu_seconds"] = round(after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime, 1)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", nargs="+", default=["demo", "dev"] if DEV_MUSIC.is_dir() else ["demo"])
    parser.add_argument("--recipes", default="scratch,teacher,musicnn,baseline")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--before", type=Path, default=None, help="another checkout of genre-cnn to compare")
    parser.add_argument("--val-fraction", type=float, default=0.15,
                        help="share of each fold's training songs held out for validation (0 with few groups)")
    parser.add_argument("--dev-groups", default=None, metavar="COLUMN",
                        help="dev-music's metadata column whose groups never straddle folds (e.g. source)")
    args = parser.parse_args()

    from genre_cnn.config import TrainConfig
    from genre_cnn.training.cv import compare_recipes

    print(machine(), flush=True)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for name in args.sets:
            started = time.perf_counter()
            data = build(name, work, group_column=args.dev_groups if name == "dev" else None)
            rows = {}
            if args.before is not None:
                rows["previous default (before)"] = before(args.before, data, work / f"{name}-before",
                                                           folds=args.folds, epochs=args.epochs)
            result = compare_recipes(data, recipes=args.recipes.split(","), config=TrainConfig(epochs=args.epochs),
                                     folds=args.folds, val_fraction=args.val_fraction, out=work / f"{name}-cv",
                                     log=lambda message: None)
            rows.update(result.summary["recipes"])
            print(f"\n{name}: {result.summary['songs']} songs, {result.summary['folds']}-fold "
                  f"({result.summary['fold_source']}), {args.epochs} epochs, {time.perf_counter() - started:.0f} s")
            print("| recipe | song accuracy | song macro-F1 | chunk accuracy | CPU time |\n|---|---|---|---|---|")
            for recipe, summary in rows.items():
                cells = [summary[k] for k in ("song_accuracy", "song_macro_f1", "chunk_accuracy")]
                text = ["-" if c is None else f"{c['mean']:.3f} ± {c['std']:.3f}" for c in cells]
                print(f"| {recipe} | {' | '.join(text)} | {summary['cpu_seconds']:.0f} s |", flush=True)
            (ROOT / "benchmarks" / f".accuracy-{name}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
