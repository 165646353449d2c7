"""Cold start of 'genre-cnn classify one.mp3' (fresh processes) and folder throughput.

Run by hand:  python benchmarks/bench_classify.py [--model models/demo] [--tracks tracks] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine


def wall(command) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("models/demo"))
    parser.add_argument("--tracks", type=Path, default=Path("tracks"))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--copies", type=int, default=4, help="folder = this many copies of the tracks")
    args = parser.parse_args()
    executable = shutil.which("genre-cnn") or sys.executable
    base = [executable] if executable.endswith("genre-cnn") else [sys.executable, "-m", "genre_cnn"]
    song = sorted(args.tracks.rglob("*.mp3"))[0]

    for backend in ("litert", "keras"):
        times = [wall([*base, "classify", str(song), "--model", str(args.model), "--backend", backend])
                 for _ in range(args.runs)]
        print(f"cold classify of one 30 s mp3, {backend:>6}: median {statistics.median(times):.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}, {args.runs} runs)")

    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.copies):
            shutil.copytree(args.tracks, Path(tmp) / f"copy{i}", ignore=shutil.ignore_patterns("licenses"))
        n = len(list(Path(tmp).rglob("*.mp3")))
        for workers in (1, os.cpu_count()):
            seconds = wall([*base, "classify", tmp, "--model", str(args.model), "--workers", str(workers)])
            print(f"classify FOLDER of {n} songs, workers={workers}: {seconds:.1f} s = {n / seconds:.1f} songs/s "
                  "(process start included)")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
