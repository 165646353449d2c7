"""Cold start of 'genre-cnn classify one.mp3' (fresh processes), folder throughput (also into a resumable
--out table, fresh and resumed), and its ceiling.

The ceiling: what one song costs in one process on one thread, stage by stage (decoding, log-mel,
network), and the songs per second that ``os.cpu_count()`` such processes could reach at most.

The demo tracks are 22.05 kHz mono mp3s; ``--stereo-44k`` re-encodes the copies as 44.1 kHz stereo mp3s (the
format of most bought or ripped music, which costs about twice as much to decode). The songs' format is printed.

Run by hand:  python benchmarks/bench_classify.py [--model models/demo] [--tracks tracks] [--runs 7] [--stereo-44k]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from _common import front_end, genre_cnn_command, machine

#: Songs per second of ``classify FOLDER`` that the scale issue (#31) asks for on 2 cores (40 before it).
TARGET = 60


def wall(command) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def as_stereo_44k(song: Path) -> None:
    """Rewrite ``song`` as a 44.1 kHz stereo mp3 (resampled; the right channel 30 samples late, 1 dB lower)."""
    import numpy as np
    import soundfile
    import soxr

    from genre_cnn.signal.audio import mono_mix

    y, sr = soundfile.read(song, dtype="float32", always_2d=True)
    y = soxr.resample(mono_mix(y), sr, 44100)
    right = 0.9 * np.concatenate([np.zeros(30, np.float32), y[:-30]])
    soundfile.write(song, np.stack([y, right], axis=1), 44100, format="MP3")


def describe_format(songs: list) -> str:
    import soundfile

    infos = [soundfile.info(str(song)) for song in songs]
    formats = sorted({(info.samplerate, info.channels) for info in infos})
    kbps = 8 * sum(song.stat().st_size for song in songs) / sum(info.duration for info in infos) / 1000
    return (", ".join(f"{rate} Hz {'mono' if channels == 1 else f'{channels} channels'}" for rate, channels in formats)
            + f", {kbps:.0f} kbit/s on average")


def stage_costs(model: Path, songs: list) -> dict:
    """Milliseconds per song of each stage of classification, one process, one thread."""
    from threadpoolctl import threadpool_limits

    from genre_cnn.inference.classifier import load_classifier
    from genre_cnn.runtime.native import reuse_freed_memory

    reuse_freed_memory()  # as the command does
    classifier = load_classifier(model, backend="litert")
    spent = {"decode": 0.0, "log-mel": 0.0, "network": 0.0}
    classifier.classify_file(songs[0])  # warm the file cache and the interpreter
    with threadpool_limits(1):
        for song in songs:
            features, spent_decoding, spent_on_log_mel = front_end(song, classifier.feature_config,
                                                                   filterbank=classifier.filterbank)
            start = time.process_time()
            classifier.predict_chunks(features)
            spent["decode"] += spent_decoding
            spent["log-mel"] += spent_on_log_mel
            spent["network"] += time.process_time() - start
    return {stage: 1000 * seconds / len(songs) for stage, seconds in spent.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("models/demo"))
    parser.add_argument("--tracks", type=Path, default=Path("tracks"))
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--copies", type=int, default=4, help="folder = this many copies of the tracks")
    parser.add_argument("--stereo-44k", action="store_true", help="re-encode the copies as 44.1 kHz stereo mp3s")
    args = parser.parse_args()
    base = genre_cnn_command()
    material = Path(tempfile.mkdtemp(prefix="bench_classify_"))
    try:
        shutil.copytree(args.tracks, material / "one", ignore=shutil.ignore_patterns("licenses"))
        songs = sorted((material / "one").rglob("*.mp3"))
        if args.stereo_44k:
            for song in songs:
                as_stereo_44k(song)
        print(f"{len(songs)} songs of {describe_format(songs)}")
        run(args, base, material, songs)
    finally:
        shutil.rmtree(material)


def run(args, base, material: Path, songs: list) -> None:
    song = songs[0]

    for backend in ("litert", "keras"):
        times = [wall([*base, "classify", str(song), "--model", str(args.model), "--backend", backend])
                 for _ in range(args.runs)]
        print(f"cold classify of one 30 s mp3, {backend:>6}: median {statistics.median(times):.2f} s "
              f"(min {min(times):.2f}, max {max(times):.2f}, {args.runs} runs)")

    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.copies):
            shutil.copytree(material / "one", Path(tmp) / f"copy{i}")
        n = len(list(Path(tmp).rglob("*.mp3")))
        rates = {}
        for workers in (1, os.cpu_count()):
            seconds = wall([*base, "classify", tmp, "--model", str(args.model), "--workers", str(workers)])
            rates[workers] = n / seconds
            print(f"classify FOLDER of {n} songs, workers={workers}: {seconds:.1f} s = {n / seconds:.1f} songs/s "
                  "(process start included)")
        table = Path(tmp) / "results.csv"
        seconds = wall([*base, "classify", tmp, "--model", str(args.model), "--out", str(table)])
        print(f"classify FOLDER --out results.csv, {n} songs: {seconds:.1f} s = {n / seconds:.1f} songs/s")
        lines = table.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = lines[: 1 + (len(lines) - 1) // 2]  # a run stopped half-way
        table.write_text("".join(kept), encoding="utf-8")
        seconds = wall([*base, "classify", tmp, "--model", str(args.model), "--out", str(table)])
        left = n - (len(kept) - 1)
        print(f"resumed after half: {left} songs left in {seconds:.1f} s = {left / seconds:.1f} songs/s "
              f"(the table's {len(kept) - 1} rows read and skipped)")
        seconds = wall([*base, "classify", tmp, "--model", str(args.model), "--out", str(table)])
        print(f"resumed when complete: {seconds:.2f} s for {n} files checked, none classified")
    costs = stage_costs(args.model, songs)
    total = sum(costs.values())
    print(f"one song, one process, one thread ({len(songs)} songs): "
          + ", ".join(f"{stage} {ms:.1f} ms" for stage, ms in costs.items()) + f" = {total:.1f} ms of CPU")
    ceiling = os.cpu_count() * 1000 / total
    print(f"ceiling with {os.cpu_count()} processes and no overhead: {ceiling:.1f} songs/s")
    measured = rates[os.cpu_count()]
    print(f"target: classify FOLDER >= {TARGET} songs/s: {measured:.1f} songs/s, "
          f"{'met' if measured >= TARGET else 'NOT met'} ({measured / ceiling:.0%} of this run's ceiling; "
          f"{TARGET} songs/s needs <= {os.cpu_count() * 1000 / TARGET:.0f} ms "
          f"of CPU per song, this run spent {total:.0f})")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
