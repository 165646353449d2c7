"""Epoch time and peak memory: genre-cnn fit (streamed from disk) vs. model.fit on arrays in RAM.

Run by hand:  python benchmarks/bench_fit.py [--chunks 1000]

Makes two synthetic datasets of N and 4N default-size chunks (128 x 196 log-mel, 100 kB each) and
trains each way in a fresh process, so peak RSS is that of one run.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import machine


def make_dataset(path: Path, n_chunks: int) -> Path:
    from genre_cnn.config import FeatureConfig, write_json
    from genre_cnn.data.arrays import NpyAppender

    config = FeatureConfig()
    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = np.arange(n_chunks) % 3
    with NpyAppender(path / "features.npy", row_shape=config.input_shape) as out:
        for start in range(0, n_chunks, 100):
            block = labels[start : start + 100]
            x = rng.normal(-40, 15, (len(block), *config.input_shape)).astype(np.float32)
            x[:, :40] += 10 * block[:, None, None]  # something to learn
            out.append(x)
    with open(path / "manifest.csv", "w") as handle:
        handle.write("song,label,chunk,offset_seconds,split\n")
        for i, label in enumerate(labels):
            split = "val" if i % 20 == 0 else "train"
            handle.write(f"song{i // 6}.mp3,g{label},{i % 6},0,{split}\n")
    write_json(path / "feature_config.json", config.to_dict())
    write_json(path / "classes.json", ["g0", "g1", "g2"])
    return path


def run_streamed(data: str, epochs: int, out: str) -> dict:
    from genre_cnn.config import TrainConfig
    from genre_cnn.training.fit import fit

    result = fit(data, config=TrainConfig(epochs=epochs), model_dir=out, models_root=out + "-models", verbose=0,
                 log=lambda message: None)
    history = json.loads((result.model_dir / "history.json").read_text())
    return {"epoch_seconds": history["epoch_seconds"]}


def run_in_ram(data: str, epochs: int, out: str) -> dict:
    from genre_cnn.data.dataset import load_dataset
    from genre_cnn.models.cnn import build_model
    from genre_cnn.runtime.backend import import_keras
    from genre_cnn.training.scratch import band_statistics

    keras = import_keras()
    from genre_cnn.training.callbacks import EpochTimes

    dataset = load_dataset(data)
    x = np.array(dataset.features)  # the whole dataset in RAM, as tutorials do
    train, val = dataset.indices("train"), dataset.indices("val")
    mean, variance = band_statistics(x, train)
    model = build_model(dataset.feature_config.input_shape, 3, mel_mean=mean, mel_variance=variance)
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    timer = EpochTimes()
    model.fit(x[train], dataset.labels[train], validation_data=(x[val], dataset.labels[val]), batch_size=32,
              epochs=epochs, callbacks=[timer], verbose=0)
    return {"epoch_seconds": timer.seconds}


def epoch(result: dict) -> float:
    """Median epoch time, the first (graph tracing) left out when there are more."""
    times = result["epoch_seconds"]
    return float(np.median(times[1:] if len(times) > 1 else times))


def child(mode: str, data: str, epochs: int, out: str) -> None:
    result = (run_streamed if mode == "streamed" else run_in_ram)(data, epochs, out)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=1000, help="N (the larger dataset has 4N)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs at N (the median after the first is timed)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, data, epochs, out = args.child
        return child(mode, data, int(epochs), out)

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, epochs in ((args.chunks, args.epochs), (4 * args.chunks, 1)):
            data = make_dataset(Path(tmp) / f"data{n}", n)
            for mode in ("streamed", "in_ram"):
                output = subprocess.run(
                    [sys.executable, __file__, "--child", mode, str(data), str(epochs), f"{tmp}/model-{mode}-{n}"],
                    capture_output=True, text=True, check=True,
                ).stdout
                results[(mode, n)] = json.loads(output.strip().splitlines()[-1])

    n = args.chunks
    print(f"machine: {machine()}")
    for mode in ("streamed", "in_ram"):
        small, large = results[(mode, n)], results[(mode, 4 * n)]
        print(f"  {mode:<9} epoch at N={n}: {epoch(small):6.1f} s (each: "
              f"{', '.join(f'{s:.1f}' for s in small['epoch_seconds'])})   "
              f"peak RSS N: {small['peak_rss_mb']:6.0f} MB   4N: {large['peak_rss_mb']:6.0f} MB   "
              f"(4N / N = {large['peak_rss_mb'] / small['peak_rss_mb']:.2f})")
    ratio = epoch(results[("streamed", n)]) / epoch(results[("in_ram", n)])
    print(f"streamed epoch / in-RAM epoch = {ratio:.2f}")


if __name__ == "__main__":
    main()
