"""Which recipe learns genres best? 5-fold song-level cross-validation, every recipe on the same folds.

For each real set (the demo tracks, ``../shared/dev-music`` and ``../shared/real-genres`` when present;
real-genres' folds keep an artist's songs together) it builds a dataset (``--test-fraction 0``), then
runs :func:`genre_cnn.training.cv.compare_recipes` with the CNN from scratch
(the default recipe), the CNN distilled from musicnn, the musicnn backbone and the scikit-learn
baseline, and prints song accuracy mean ± std and CPU time. ``--before CHECKOUT`` also runs
``genre-cnn cv`` of another checkout of genre-cnn (e.g. the previous release, for "today's
recipe") on the same dataset and folds.

    python benchmarks/bench_accuracy.py --before /tmp/genre-cnn-previous
    python benchmarks/bench_accuracy.py --sets dev --dev-groups source --folds 3 --val-fraction 0
    python benchmarks/bench_accuracy.py --sets real --recipes scratch,baseline --seeds 0,1,2
    python benchmarks/bench_accuracy.py --sets real dev --songs-per-genre 12 --seeds 0,1,2   # small data
    python benchmarks/bench_accuracy.py --sets real --recipes scratch,baseline --heads summary,wide

``--seeds`` repeats the comparison with other seeds (each seed deals its own folds; every recipe of
one seed shares them) and ends with each recipe's mean over all seeds' folds. ``--songs-per-genre N``
keeps N songs of each genre, one from each of N artists on real-genres (drawn with seed 0): with 5
folds, ~0.8 N songs per genre train each fold, the small-data regime of a personal collection.
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

import numpy as np
from _common import machine

ROOT = Path(__file__).resolve().parents[1]
DEV_MUSIC = ROOT.parent / "shared" / "dev-music"
REAL_GENRES = ROOT.parent / "shared" / "real-genres"


def build(name: str, work: Path, *, group_column: str | None = None, songs_per_genre: int | None = None) -> Path:
    import dataclasses

    import numpy as np

    from genre_cnn.data.build import build_dataset
    from genre_cnn.data.metadata import scan_metadata
    from genre_cnn.data.tracks import scan_tracks

    if name == "demo":
        songs = scan_tracks(ROOT / "tracks")
    else:
        folder = DEV_MUSIC if name == "dev" else REAL_GENRES
        songs = scan_metadata(folder / "metadata.csv", audio_root=folder, path_column="path", label_column="genre",
                              group_column="artist" if name == "real" else group_column)
    if songs_per_genre is not None:  # one song from each of N groups (artists) a genre, drawn with seed 0
        rng, kept = np.random.default_rng(0), []
        for genre in sorted({song.label for song in songs.songs}):
            by_group: dict[str, list] = {}
            for song in songs.songs:
                if song.label == genre:
                    by_group.setdefault(song.group or song.relative, []).append(song)
            groups = sorted(by_group)
            for group in rng.permutation(groups)[:songs_per_genre]:  # a group of one song draws nothing more
                mine = by_group[group]
                kept.append(mine[rng.integers(len(mine))] if len(mine) > 1 else mine[0])
        songs = dataclasses.replace(songs, songs=tuple(kept))
    return build_dataset(songs, out=work / name, val_fraction=0.15, test_fraction=0.0).path


def before(checkout: Path, data: Path, out: Path, *, folds: int, epochs: int, seed: int = 0) -> dict:
    """``genre-cnn cv`` of another checkout: its summary and CPU time."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "genre_cnn", "cv", "--data", str(data), "--folds", str(folds),
                    "--epochs", str(epochs), "--seed", str(seed), "--out", str(out), "-q"], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(checkout)}, cwd=checkout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    saved = json.loads((out / "cv.json").read_text())
    summary = saved["summary"]
    summary["fold_song_accuracy"] = [fold["song_accuracy"] for fold in saved["folds"]]
    summary["cpu_seconds"] = round(after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime, 1)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", nargs="+", choices=("demo", "dev", "real"),
                        default=["demo"] + ["dev"] * DEV_MUSIC.is_dir() + ["real"] * REAL_GENRES.is_dir())
    parser.add_argument("--seeds", default="0", help="comma-separated seeds; each deals its own folds")
    parser.add_argument("--songs-per-genre", type=int, default=None,
                        help="small-data mode: keep N songs a genre, one from each of N artists on real-genres "
                             "(the sets of two N are not nested; a genre with fewer artists keeps fewer songs)")
    parser.add_argument("--recipes", default="scratch,teacher,musicnn,baseline")
    parser.add_argument("--heads", default="wide",
                        help="comma-separated CNN heads (the CNN's head option) for the scratch and teacher recipes: "
                             "the first for the main rows; each one after it adds rows 'RECIPE (head HEAD)' on the "
                             "same folds")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--before", type=Path, default=None, help="another checkout of genre-cnn to compare")
    parser.add_argument("--val-fraction", type=float, default=0.15,
                        help="share of each fold's training songs held out for validation (0 with few groups)")
    parser.add_argument("--no-refit", dest="refit", action="store_false",
                        help="the CNN recipes save the first network instead of refitting on training + validation")
    parser.add_argument("--dev-groups", default=None, metavar="COLUMN",
                        help="dev-music's metadata column whose groups never straddle folds (e.g. source)")
    args = parser.parse_args()

    from genre_cnn.config import TrainConfig
    from genre_cnn.training.cv import compare_recipes

    print(machine(), flush=True)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for name in args.sets:
            data = build(name, work, group_column=args.dev_groups if name == "dev" else None,
                         songs_per_genre=args.songs_per_genre)
            every_fold: dict[str, list[float]] = {}
            for seed in [int(s) for s in args.seeds.split(",")]:
                started = time.perf_counter()
                rows = {}
                if args.before is not None:
                    rows["previous default (before)"] = before(args.before, data, work / f"{name}-before-{seed}",
                                                               folds=args.folds, epochs=args.epochs, seed=seed)
                result = compare_recipes(data, recipes=args.recipes.split(","), folds=args.folds,
                                         config=TrainConfig(epochs=args.epochs, seed=seed, refit=args.refit,
                                                            options={"head": args.heads.split(",")[0]}),
                                         val_fraction=args.val_fraction, out=work / f"{name}-cv-{seed}",
                                         log=lambda message: None)
                rows.update(result.summary["recipes"])
                for recipe, folds in result.folds.items():
                    every_fold.setdefault(recipe, []).extend(fold["song_accuracy"] for fold in folds)
                networks = [recipe for recipe in args.recipes.split(",") if recipe in ("scratch", "teacher")]
                for head in args.heads.split(",")[1:]:
                    other = compare_recipes(data, recipes=networks, folds=args.folds,
                                            config=TrainConfig(epochs=args.epochs, seed=seed, refit=args.refit,
                                                               options={"head": head}),
                                            val_fraction=args.val_fraction, out=work / f"{name}-cv-{seed}-{head}",
                                            log=lambda message: None)
                    for recipe, summary in other.summary["recipes"].items():
                        rows[f"{recipe} (head {head})"] = summary
                        every_fold.setdefault(f"{recipe} (head {head})", []).extend(
                            fold["song_accuracy"] for fold in other.folds[recipe])
                if "previous default (before)" in rows:
                    every_fold.setdefault("previous default (before)", []).extend(rows["previous default (before)"]
                                                                                 .get("fold_song_accuracy", []))
                print(f"\n{name}, seed {seed}: {result.summary['songs']} songs, {result.summary['folds']}-fold "
                      f"({result.summary['fold_source']}), {args.epochs} epochs, "
                      f"{time.perf_counter() - started:.0f} s")
                print("| recipe | song accuracy | song macro-F1 | chunk accuracy | ECE, network's own "
                      "| ECE, calibrated | CPU time |\n|---|---|---|---|---|---|---|")
                for recipe, summary in rows.items():
                    cells = [summary.get(k) for k in ("song_accuracy", "song_macro_f1", "chunk_accuracy",
                                                      "ece_uncalibrated", "ece")]
                    text = ["-" if c is None else f"{c['mean']:.3f} ± {c['std']:.3f}" for c in cells]
                    for column, pooled in ((3, "ece_uncalibrated_pooled"), (4, "ece_pooled")):  # every fold's songs
                        if summary.get(pooled) is not None:
                            text[column] += f" (pooled {summary[pooled]:.3f})"
                    if summary.get("ece_pooled_chance") is not None:  # perfect probabilities on as many songs
                        text[4] = text[4][:-1] + f"; chance {summary['ece_pooled_chance']:.3f})"
                    print(f"| {recipe} | {' | '.join(text)} | {summary['cpu_seconds']:.0f} s |", flush=True)
                (ROOT / "benchmarks" / f".accuracy-{name}-{seed}.json").write_text(json.dumps(rows, indent=1))
            print(f"\n{name}, all seeds ({args.seeds}): song accuracy, mean ± std over every fold of every seed")
            for recipe, values in every_fold.items():
                print(f"| {recipe} | {np.mean(values):.3f} ± {np.std(values):.3f} | {len(values)} folds |", flush=True)


if __name__ == "__main__":
    main()
