"""build-dataset vs. the plain tutorial loop vs. the decode-only floor, same files, same run.

Run by hand:  python benchmarks/bench_build.py [--tracks DIR] [--clips 60] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from _common import audio_seconds, machine, synth_clips, timed


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


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tracks", type=Path, help="folder of genre folders (default: synthesised 30 s clips)")
    parser.add_argument("--clips", type=int, default=60, help="synthesised clips when --tracks is not given")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()

    from genre_cnn.config import FeatureConfig
    from genre_cnn.data.dataset import build_dataset, scan_tracks
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

        features = np.load(out / "features.npy")
        assert features.shape == reference.shape, (features.shape, reference.shape)
        difference = float(np.abs(features - reference).max())

    print(f"machine: {machine()}")
    print(f"{len(paths)} files, {seconds:.0f} s of audio, {report.summary['chunks']} chunks; workers={args.workers}")
    rows = [
        ("decode only (soundfile, 1 process)", t_floor),
        (f"decode only (soundfile, {args.workers} processes)", t_floor_parallel),
        ("tutorial loop (librosa, 1 process)", t_tutorial),
        ("genre-cnn build-dataset, workers=1", t_serial),
        (f"genre-cnn build-dataset, workers={args.workers}", t_build),
        (f"genre-cnn rebuild, nothing changed ({again.summary['reused_songs']} reused)", t_rebuild),
    ]
    for name, seconds_taken in rows:
        print(f"  {name:<55} {seconds_taken:7.2f} s  {seconds / seconds_taken:8.0f}x realtime  "
              f"{t_tutorial / seconds_taken:6.1f}x tutorial")
    print(f"max |build-dataset - tutorial| = {difference:.2e} dB (same features)")


if __name__ == "__main__":
    main()
