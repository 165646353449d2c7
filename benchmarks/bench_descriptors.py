"""How much CPU the baseline's descriptors cost per song: pYIN decoded by librosa and by the package.

Runs :func:`genre_cnn.signal.descriptors.song_descriptors` on the same songs in this one process (after a
warm-up song, so numba's compilation is not counted), once with ``librosa.pyin`` itself (what the
package used until 2026-12-07), once as shipped (:func:`genre_cnn.signal.pitch.pitch_track`: the same
pYIN, decoded over the transitions that exist), and, with ``--resolution``, as shipped on another pitch grid.
Prints the CPU seconds per song and how many descriptor values differ from librosa's (pitch columns: the
median relative change over the songs).

    python benchmarks/bench_descriptors.py                      # 10 songs of ../shared/real-genres
    python benchmarks/bench_descriptors.py --songs 20 --tracks tracks --resolution 0.5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from unittest import mock

import numpy as np
from _common import machine

ROOT = Path(__file__).resolve().parents[1]
PITCH_COLUMNS = ("f0_mean", "f0_median", "f0_std", "f0_p5", "f0_p95", "voiced_fraction")


def describe(paths: list[Path], *, resolution: float, librosa_decoding: bool) -> tuple[float, list[dict]]:
    from genre_cnn.signal import descriptors, pitch

    internals = (lambda: None) if librosa_decoding else pitch._pyin_internals
    with mock.patch.object(descriptors, "PITCH_RESOLUTION", resolution), \
            mock.patch.object(pitch, "_pyin_internals", internals):
        descriptors.song_descriptors(paths[0])  # warm-up: numba compiles its kernels once per process
        started = time.process_time()
        values = [descriptors.song_descriptors(path) for path in paths[1:]]
        return (time.process_time() - started) / len(values), values


def compare(name: str, seconds: float, values: list[dict], *, reference: list[dict], reference_seconds: float) -> int:
    differing = sum(a[c] != b[c] and not (np.isnan(a[c]) and np.isnan(b[c]))
                    for a, b in zip(values, reference) for c in a)
    print(f"| {name} | {seconds:.2f} | {reference_seconds / seconds:.1f}x | {differing} of "
          f"{len(values) * len(values[0])} |")
    return differing


def main() -> None:
    from genre_cnn.signal.audio import is_audio_file
    from genre_cnn.signal.descriptors import PITCH_RESOLUTION

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracks", type=Path, default=ROOT.parent / "shared" / "real-genres")
    parser.add_argument("--songs", type=int, default=10)
    parser.add_argument("--resolution", type=float, default=None, help="also a candidate pitch grid, in semitones")
    args = parser.parse_args()
    paths = sorted(p for p in args.tracks.rglob("*") if is_audio_file(p))[: args.songs + 1]
    print(machine())
    librosa_seconds, reference = describe(paths, resolution=PITCH_RESOLUTION, librosa_decoding=True)
    shipped, values = describe(paths, resolution=PITCH_RESOLUTION, librosa_decoding=False)
    print(f"{len(paths) - 1} songs of {args.tracks}, CPU seconds per song (one process, warm):")
    print("| pYIN | CPU s / song | speed-up | values unlike librosa's |\n|---|---|---|---|")
    print(f"| librosa.pyin, {PITCH_RESOLUTION:g} semitone (until 2026-12-07) | {librosa_seconds:.2f} | 1.0x | 0 |")
    compare(f"pitch_track, {PITCH_RESOLUTION:g} semitone (shipped)", shipped, values, reference=reference,
            reference_seconds=librosa_seconds)
    if args.resolution is not None:
        candidate, new = describe(paths, resolution=args.resolution, librosa_decoding=False)
        compare(f"pitch_track, {args.resolution:g} semitone (candidate)", candidate, new, reference=reference,
                reference_seconds=librosa_seconds)
        for column in PITCH_COLUMNS:
            change = [abs(a[column] - b[column]) / max(abs(b[column]), 1e-9) for a, b in zip(new, reference)
                      if np.isfinite(a[column]) and np.isfinite(b[column])]
            print(f"{column}: median relative change {np.median(change):.1%}, largest {np.max(change):.1%}")


if __name__ == "__main__":
    main()
