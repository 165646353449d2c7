"""How much CPU the baseline's descriptors cost per song, with pYIN's pitch grid as shipped and as a candidate.

Runs :func:`genre_cnn.signal.descriptors.song_descriptors` on the same songs in this one process (after a
warm-up song, so numba's compilation is not counted), once with ``PITCH_RESOLUTION`` as shipped and once
with ``--resolution`` semitones, and prints the CPU seconds per song and how far the pitch columns move
(median relative change over the songs). Whether the baseline keeps its accuracy is for
``bench_accuracy.py --recipes baseline`` to say.

    python benchmarks/bench_descriptors.py                      # 10 songs of ../shared/real-genres, 0.5 semitone
    python benchmarks/bench_descriptors.py --songs 20 --tracks tracks --resolution 0.25
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from _common import machine

ROOT = Path(__file__).resolve().parents[1]
PITCH_COLUMNS = ("f0_mean", "f0_median", "f0_std", "f0_p5", "f0_p95", "voiced_fraction")


def describe(paths: list[Path], resolution: float) -> tuple[float, list[dict]]:
    from genre_cnn.signal import descriptors

    shipped = descriptors.PITCH_RESOLUTION
    descriptors.PITCH_RESOLUTION = resolution
    try:
        descriptors.song_descriptors(paths[0])  # warm-up: numba compiles librosa's kernels once per process
        started = time.process_time()
        values = [descriptors.song_descriptors(path) for path in paths[1:]]
        return (time.process_time() - started) / len(values), values
    finally:
        descriptors.PITCH_RESOLUTION = shipped


def main() -> None:
    from genre_cnn.signal.audio import is_audio_file
    from genre_cnn.signal.descriptors import PITCH_RESOLUTION

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracks", type=Path, default=ROOT.parent / "shared" / "real-genres")
    parser.add_argument("--songs", type=int, default=10)
    parser.add_argument("--resolution", type=float, default=0.5, help="the candidate pitch grid, in semitones")
    args = parser.parse_args()
    paths = sorted(p for p in args.tracks.rglob("*") if is_audio_file(p))[: args.songs + 1]
    print(machine())
    shipped, old = describe(paths, PITCH_RESOLUTION)
    candidate, new = describe(paths, args.resolution)
    print(f"{len(paths) - 1} songs of {args.tracks}, CPU seconds per song (one process, warm):")
    print(f"| pitch grid | CPU s / song |\n|---|---|\n| {PITCH_RESOLUTION:g} semitone (shipped) | {shipped:.2f} |\n"
          f"| {args.resolution:g} semitone (candidate) | {candidate:.2f} |\n| speed-up | {shipped / candidate:.1f}x |")
    for column in PITCH_COLUMNS:
        change = [abs(a[column] - b[column]) / max(abs(b[column]), 1e-9) for a, b in zip(new, old)
                  if np.isfinite(a[column]) and np.isfinite(b[column])]
        print(f"{column}: median relative change {np.median(change):.1%}, largest {np.max(change):.1%}")


if __name__ == "__main__":
    main()
