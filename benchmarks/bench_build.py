"""build-dataset vs. the plain tutorial loop vs. the decode-only floor, same files, same run.

Ends with the targets of the scale issue, each beside what explains it in the same run: the
realtime factor, the ratio to the decode floor and what one song's log-mel costs against its
decoding (the ratio cannot fall below 1 + log-mel / decode), and a 4-song build run as a user runs
it (a fresh ``genre-cnn`` process, imports included).

Run by hand:  python benchmarks/bench_build.py [--tracks DIR] [--clips 100] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import audio_seconds, front_end, genre_cnn_command, machine, synth_clips, timed


def tutorial_loop(paths):
    """What a tutorial writes: librosa.load, 100000-sample chunks, mel + dB per chunk, a list."""
    import librosa

    features = []
    for path in paths:
        y, sr = librosa.load(path, sr=22050)
        for start in range(0, len(y) - 100_000 + 1, 100_000):
            mel = librosa.feature.melspectrogram(y=y[start : start + 100_000], sr=sr, n_fft=2048, hop_length=512,
                                                 n_mels=128)
            features.append(librosa.power_to_db(mel, ref=1.0, top_db=None))
    return np.array(features)


def decode_only(paths):
    import soundfile

    return sum(len(soundfile.read(str(p), dtype="float32")[0]) for p in paths)


def decode_in_processes(paths, workers):
    from genre_cnn.runtime.parallel import process_pool

    with process_pool(workers) as pool:
        return sum(pool.map(_decoded_samples, paths, chunksize=max(1, len(paths) // (4 * workers))))


def _decoded_samples(path):
    return decode_only([path])


def song_stage_costs(paths, config) -> tuple[float, float]:
    """Milliseconds of CPU per song on one thread: decoding, and the log-mel of its chunks."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        costs = np.array([front_end(path, config)[1:] for path in paths])
    return tuple(1000 * costs.mean(axis=0))


def cold_cli_build(paths, tmp: Path) -> float:
    """Wall seconds of ``genre-cnn build-dataset`` of 4 songs in a fresh process, as a user runs it."""
    tracks = tmp / "four"
    for path in paths[:4]:
        (tracks / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tracks / path.parent.name / path.name)
    start = time.perf_counter()
    subprocess.run([*genre_cnn_command(), "build-dataset", str(tracks), "--out", str(tmp / "four_ds"),
                    "--val-fraction", "0", "--test-fraction", "0"], check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracks", type=Path, help="folder of genre folders (default: synthesised 30 s clips)")
    parser.add_argument("--clips", type=int, default=60, help="synthesised clips when --tracks is not given")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()

    from genre_cnn.config import FeatureConfig
    from genre_cnn.data.build import build_dataset
    from genre_cnn.data.tracks import scan_tracks
    from genre_cnn.runtime.native import reuse_freed_memory
    from genre_cnn.signal.logmel import log_mel

    reuse_freed_memory()  # as the genre-cnn command does

    with tempfile.TemporaryDirectory() as tmp:
        tracks = args.tracks or synth_clips(Path(tmp) / "tracks", n=args.clips)
        paths = [song.path for song in scan_tracks(tracks).songs]
        seconds = audio_seconds(paths)
        # warm-up: imports and first calls (numba, FFT plans) are not what we compare
        tutorial_loop(paths[:1])
        log_mel(np.zeros((1, 100_000), np.float32), FeatureConfig())

        t_floor, _ = timed(decode_only, paths)
        t_floor_parallel, _ = timed(decode_in_processes, paths, args.workers)
        t_tutorial, reference = timed(tutorial_loop, paths)
        out = Path(tmp) / "ds"
        t_build, report = timed(build_dataset, tracks, out=out, workers=args.workers, force=True, val_fraction=0,
                                test_fraction=0)
        t_rebuild, again = timed(build_dataset, tracks, out=out, workers=args.workers, val_fraction=0,
                                 test_fraction=0)
        t_serial, _ = timed(build_dataset, tracks, out=Path(tmp) / "ds1", workers=1, force=True, val_fraction=0,
                            test_fraction=0)

        t_four = min(cold_cli_build(paths[::max(1, len(paths) // 4)], Path(tmp) / f"cold{i}") for i in range(3))
        decode_ms, log_mel_ms = song_stage_costs(paths[:20], FeatureConfig())
        features = np.load(out / "features.npy")
        assert features.shape == reference.shape, (features.shape, reference.shape)
        difference = np.abs(features - reference)
        audible = reference > -80  # below, float32 rounding of tiny powers dominates the dB

    print(f"machine: {machine()}")
    print(f"{len(paths)} files, {seconds:.0f} s of audio, {report.summary.chunks} chunks; workers={args.workers}")
    rows = [
        ("decode only (soundfile, 1 process)", t_floor),
        (f"decode only (soundfile, {args.workers} processes)", t_floor_parallel),
        ("tutorial loop (librosa, 1 process)", t_tutorial),
        ("genre-cnn build-dataset, workers=1", t_serial),
        (f"genre-cnn build-dataset, workers={args.workers}", t_build),
        (f"genre-cnn rebuild, nothing changed ({again.summary.reused_songs} reused)", t_rebuild),
    ]
    for name, seconds_taken in rows:
        print(f"  {name:<55} {seconds_taken:7.2f} s  {seconds / seconds_taken:8.0f}x realtime  "
              f"{t_tutorial / seconds_taken:6.1f}x tutorial")
    print(f"max |build-dataset - tutorial| = {difference[audible].max():.2e} dB where the tutorial's bins are above "
          f"-80 dB, {difference.max():.2e} dB in all (float32 rounding near the floor)")
    print(f"one song on one thread: decoding {decode_ms:.1f} ms, log-mel {log_mel_ms:.1f} ms "
          f"(a build can come no closer than {1 + log_mel_ms / decode_ms:.2f}x to the decode floor)")
    print("targets:")
    ratio = t_build / t_floor_parallel
    for target, measured, met in [
        ("build >= 1800x realtime", f"{seconds / t_build:.0f}x", seconds / t_build >= 1800),
        (f"build within 1.5x of the {args.workers}-process decode floor", f"{ratio:.2f}x", ratio <= 1.5),
        ("4-song build (fresh genre-cnn process, best of 3) under 1 s", f"{t_four:.2f} s", t_four < 1),
    ]:
        print(f"  {target:<60} {measured:>9}  {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
