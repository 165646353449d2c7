"""What each training option buys: song-level k-fold cross-validation on the demo tracks.

Run by hand:  python benchmarks/bench_cv.py [--folds 5] [--epochs 10] [--augment LIST]

Builds the demo dataset (default features) if needed, then runs ``genre-cnn cv`` once per
configuration (plain, balanced class weights, augmentation, both; a head on the frozen musicnn
backbone, and musicnn fine-tuned) with the same folds and seed,
and prints a Markdown table of mean ± std over the folds plus the CPU time of each run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import machine

CONFIGS = {
    "plain": [],
    "class weights": ["--class-weight", "balanced"],
    "augmentation": ["--augment", "{augment}"],
    "augmentation + class weights": ["--augment", "{augment}", "--class-weight", "balanced"],
    "musicnn frozen": ["--backbone", "musicnn"],
    "musicnn fine-tuned": ["--backbone", "musicnn", "--fine-tune"],
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", default="tracks")
    parser.add_argument("--data", default="data/bench-cv")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--augment", default="shift,gain,noise,specaugment,mixup")
    parser.add_argument("--only", default=None, help="comma-separated subset of: " + ", ".join(CONFIGS))
    args = parser.parse_args()
    cli = [sys.executable, "-m", "genre_cnn.cli"]
    if not Path(args.data, "manifest.csv").exists():
        subprocess.run([*cli, "build-dataset", args.tracks, "--out", args.data, "-q"], check=True)
    names = args.only.split(",") if args.only else list(CONFIGS)
    print(f"# {machine()}; {args.folds}-fold cv, {args.epochs} epochs, augment = {args.augment}")
    print("| configuration | song accuracy | chunk accuracy | song macro-F1 | chunk macro-F1 | CPU time | wall |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        options = [part.format(augment=args.augment) for part in CONFIGS[name]]
        with tempfile.TemporaryDirectory() as out:
            before = cpu_seconds()
            subprocess.run([*cli, "cv", "--data", args.data, "--folds", str(args.folds), "--epochs", str(args.epochs),
                            "--out", f"{out}/cv", "-q", *options], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            used = cpu_seconds() - before
            summary = json.loads(Path(out, "cv", "cv.json").read_text())["summary"]
        cells = [f"{summary[k]['mean']:.3f} ± {summary[k]['std']:.3f}"
                 for k in ("song_accuracy", "chunk_accuracy", "song_macro_f1", "chunk_macro_f1")]
        print(f"| {name} | {' | '.join(cells)} | {used:.0f} s | {summary['seconds']:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
