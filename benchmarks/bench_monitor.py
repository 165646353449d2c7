"""False-alarm rate and detection rate of `genre-cnn monitor` on the demo songs.

False alarms: the demo songs are profiled once with a model, then split at random into two halves
(`--splits` seeds); each half is compared with the other, so any drift verdict is false.
Detection: for each shift (and `--seeds` seeds), 10 random demo songs are changed and compared with the
model's saved reference profile; the share of runs in which the expected check fires is reported.

Run by hand:  python benchmarks/bench_monitor.py --model models/demo [--splits 200] [--seeds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_monitor import shifted_songs  # noqa: E402  (the shifts the tests use)

EXPECTED = {"gain -12 dB": "loudness", "low-pass 4 kHz": "spectral balance",
            "resampled to 8 kHz and back": "spectral balance", "white noise 10 dB SNR": "spectral balance"}


def main() -> None:
    from genre_cnn.inference.classifier import open_classifier
    from genre_cnn.monitoring import Profile, SongProfiler, compare, monitor, profile_songs

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=Path("models/demo"))
    parser.add_argument("--tracks", type=Path, default=Path("tracks"))
    parser.add_argument("--splits", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()

    classifier = open_classifier(args.model)
    songs = sorted(args.tracks.rglob("*.mp3"))
    started = time.perf_counter()
    profiled, _ = profile_songs(songs, SongProfiler(classifier))
    print(f"profiled {len(profiled)} songs in {time.perf_counter() - started:.1f} s")
    alarms, fired = 0, {}
    for seed in range(args.splits):
        order = np.random.default_rng(seed).permutation(len(profiled))
        half = len(order) // 2
        reference, incoming = (Profile.from_songs(classifier.classes, [profiled[i] for i in part])
                               for part in (order[:half], order[half:]))
        report = compare(reference, incoming, alpha=args.alpha, seed=seed, permutations=200)
        alarms += report.drifted
        for check in report.checks:
            fired[check.name] = fired.get(check.name, 0) + check.drifted
    print(f"false alarms: {alarms} of {args.splits} random half/half splits = {alarms / args.splits:.3f} "
          f"(alpha {args.alpha}); by check: {({k: v for k, v in fired.items() if v})}")

    print("| shift | expected check | detected | also flagged |\n|---|---|---|---|")
    for shift, check in EXPECTED.items():
        hits, others = 0, {}
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as tmp:
                report = monitor(args.model, [shifted_songs(Path(tmp) / "in", shift, seed=seed)], min_songs=5,
                                 alpha=args.alpha, seed=seed)
            verdicts = {c.name: c.drifted for c in report.checks}
            hits += verdicts[check]
            for name, drifted in verdicts.items():
                if drifted and name != check:
                    others[name] = others.get(name, 0) + 1
        also = ", ".join(f"{k} {v}/{args.seeds}" for k, v in others.items())
        print(f"| {shift} | {check} | {hits}/{args.seeds} | {also} |")
    print(f"machine: {machine()}")


if __name__ == "__main__":
    main()
