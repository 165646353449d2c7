"""What 8-bit (or 16-bit) weights in the LiteRT file cost and buy: parity with float32, and the network's time.

For each ``--pair MODEL_DIR SONGS`` (a fitted CNN folder and a folder of songs, searched recursively), the
model's Keras network (with its novelty embedding, as ``fit`` exports it) is exported three ways
(float32, float16 weights, dynamic-range int8 weights), every song's chunks are computed once and run
through each file on one thread (wall time of the network alone), and the verdicts are compared with
float32's as a user sees them: the top genre, the largest probability difference, the unfamiliar flag
and the unsure flag.

    python benchmarks/bench_litert_weights.py --pair models/demo tracks \\
        --pair models/dev ../shared/dev-music --pair models/real ../shared/real-genres
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine

WEIGHTS = ("float32", "float16", "int8")


def export(model, path: Path, weights: str) -> Path:
    """``weights`` as the shipped ``export_litert`` writes int8 and float32; float16 with the converter's own option."""
    from genre_cnn.inference.runners import export_litert

    if weights != "float16":
        export_litert(model, path, weights=weights)
        return path
    import contextlib
    import io

    import tensorflow as tf

    with contextlib.redirect_stdout(io.StringIO()):
        model.export(str(path), format="litert", optimizations=[tf.lite.Optimize.DEFAULT],
                     target_spec={"supported_types": [tf.float16]})
    return path


def measure(model_dir: Path, songs: list[Path], work: Path) -> None:
    from genre_cnn.errors import AudioDecodeError
    from genre_cnn.inference.classifier import open_classifier
    from genre_cnn.inference.prediction import expand_paths, song_probabilities
    from genre_cnn.inference.runners import KerasRunner, LiteRTRunner, with_embedding

    classifier = open_classifier(model_dir, backend="keras")
    n = len(classifier.classes)
    network = with_embedding(KerasRunner(model_dir / "model.keras").model, classifier.novelty)
    runners = {w: LiteRTRunner(export(network, work / f"{model_dir.name}-{w}.tflite", w), threads=1) for w in WEIGHTS}
    sizes = {w: (work / f"{model_dir.name}-{w}.tflite").stat().st_size for w in WEIGHTS}
    seconds = dict.fromkeys(WEIGHTS, 0.0)
    probabilities, novelty = {w: [] for w in WEIGHTS}, {w: [] for w in WEIGHTS}
    for song in expand_paths(songs):
        try:
            chunks = np.concatenate(list(classifier.network_inputs(song)))
        except AudioDecodeError:  # unreadable: not a parity question
            continue
        for w, runner in runners.items():
            runner.predict(chunks, batch_size=len(chunks))  # the interpreter sized for this song before timing
            started = time.perf_counter()
            raw = runner.predict(chunks, batch_size=len(chunks))
            seconds[w] += time.perf_counter() - started
            probabilities[w].append(song_probabilities(classifier.calibration.apply(raw[:, :n])))
            if classifier.novelty is not None:
                novelty[w].append(float(classifier.novelty.score(raw[:, n:].mean(axis=0))[0]))
    exact = np.array(probabilities["float32"])
    print(f"\n{model_dir} on {len(exact)} songs ({n} genres)")
    print("| weights | file | network per song (wall, 1 thread) | same top genre | max abs. difference (p99) | "
          "unfamiliar flag same | unsure flag same |")
    print("|---|---|---|---|---|---|---|")
    for w in WEIGHTS:
        p = np.array(probabilities[w])
        same_top = np.mean(p.argmax(axis=1) == exact.argmax(axis=1))
        unfamiliar = unsure = "-"
        if novelty[w]:
            a, b, t = np.array(novelty[w]), np.array(novelty["float32"]), classifier.novelty.threshold
            unfamiliar = f"{np.mean((a > t) == (b > t)):.1%}"
        if classifier.min_confidence is not None:
            u = classifier.min_confidence
            unsure = f"{np.mean((p.max(axis=1) < u) == (exact.max(axis=1) < u)):.1%}"
        largest = np.abs(p - exact).max(axis=1)
        print(f"| {w} | {sizes[w] / 1e3:.0f} kB | {1000 * seconds[w] / len(exact):.1f} ms | {same_top:.1%} | "
              f"{largest.max():.4f} ({np.quantile(largest, 0.99):.4f}) | {unfamiliar} | {unsure} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pair", nargs=2, action="append", metavar=("MODEL_DIR", "SONGS"), required=True)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as work:
        for model_dir, songs in args.pair:
            measure(Path(model_dir), [Path(songs)], Path(work))


if __name__ == "__main__":
    main()
