"""Peak memory of build-dataset (and classify) on one long recording: it should not grow with its length.

Writes a genre folder holding one mp3 of each length (plus short songs for a second genre), runs
``genre-cnn build-dataset`` in a fresh process per length and reports the peak RSS of that process
and its workers. With ``--model DIR`` it also runs ``genre-cnn classify --model DIR`` on each
recording and on a 30 s clip.

    python benchmarks/bench_long_file.py --minutes 15 30 60 [--model models/demo]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from _common import machine

SR = 22050


def long_mp3(path: Path, minutes: float) -> None:
    """A tone that changes pitch every few seconds, written block by block (memory stays small)."""
    block = SR * 10
    with soundfile.SoundFile(path, "w", samplerate=SR, channels=1, format="MP3") as out:
        for start in range(0, int(minutes * 60 * SR), block):
            t = (start + np.arange(block)) / SR
            pitch = 220 * 2 ** ((start // (SR * 5)) % 12 / 12)
            out.write((0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32))


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """Run ``command`` in a child that reports the peak RSS of its own descendants."""
    probe = ("import resource, subprocess, sys, time; s = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - s)")
    out = subprocess.run([sys.executable, "-c", probe, *command], check=True, capture_output=True, text=True)
    peak, seconds = out.stdout.split()
    return float(peak), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, nargs="+", default=[15, 30, 60])
    parser.add_argument("--model", type=Path, default=None, help="also measure classify with this model")
    parser.add_argument("--skip-build", action="store_true", help="measure classify only")
    args = parser.parse_args()
    print(machine())
    rows = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        if args.model is not None:
            long_mp3(work / "clip.mp3", 0.5)
            peak, seconds = peak_rss_mb(["genre-cnn", "classify", "--model", str(args.model), "--workers", "1",
                                         str(work / "clip.mp3")])
            print(f"classify, 30 s clip: peak RSS {peak:.0f} MB, {seconds:.1f} s", flush=True)
        for minutes in args.minutes:
            tracks = work / f"tracks_{minutes:g}"
            (tracks / "long").mkdir(parents=True)
            (tracks / "short").mkdir()
            started = time.perf_counter()
            long_mp3(tracks / "long" / "recording.mp3", minutes)
            for i in range(2):
                long_mp3(tracks / "short" / f"s{i}.mp3", 0.2)
            print(f"wrote {minutes:g} min in {time.perf_counter() - started:.1f} s", flush=True)
            if args.model is not None:
                peak, seconds = peak_rss_mb(["genre-cnn", "classify", "--model", str(args.model), "--workers", "1",
                                             str(tracks / "long" / "recording.mp3")])
                print(f"classify, {minutes:g} min: peak RSS {peak:.0f} MB, {seconds:.1f} s", flush=True)
            if args.skip_build:
                continue
            peak, seconds = peak_rss_mb(["genre-cnn", "build-dataset", str(tracks),
                                         "--out", str(work / f"ds_{minutes:g}"),
                                         "--val-fraction", "0", "--test-fraction", "0", "-q"])
            rows.append((minutes, peak, seconds))
            print(f"{minutes:g} min: peak RSS {peak:.0f} MB, {seconds:.1f} s", flush=True)
    print("\n| recording | peak RSS (build-dataset and workers) | time |\n|---|---|---|")
    for minutes, peak, seconds in rows:
        print(f"| {minutes:g} min | {peak:.0f} MB | {seconds:.1f} s |")


if __name__ == "__main__":
    main()
