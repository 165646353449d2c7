"""Time of fit's last step, the reference profile for ``monitor``, on the demo tracks.

Builds the demo dataset, fits one epoch, then writes the model's reference profile again three times
and prints each run's wall and CPU seconds. Run it with another checkout on ``PYTHONPATH`` to compare
(it also runs on versions where ``build_dataset`` lived in ``genre_cnn.data.dataset``):

    python benchmarks/bench_profile_step.py
    PYTHONPATH=/tmp/genre-cnn-previous python benchmarks/bench_profile_step.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from _common import machine

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import genre_cnn
    from genre_cnn.config import TrainConfig
    from genre_cnn.data.dataset import load_dataset
    from genre_cnn.monitoring import write_reference_profile
    from genre_cnn.training.fit import fit

    try:
        from genre_cnn.data.build import build_dataset
    except ImportError:  # before data/ was split
        from genre_cnn.data.dataset import build_dataset

    print(machine(), genre_cnn.__file__, flush=True)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        build_dataset(ROOT / "tracks", out=work / "dataset", workers=2)
        fit(work / "dataset", config=TrainConfig(epochs=1), model_dir=work / "model", verbose=0,
            log=lambda message: None)
        dataset = load_dataset(work / "dataset")
        runs = []
        for _ in range(3):
            wall, cpu = time.perf_counter(), time.process_time()
            write_reference_profile(work / "model", dataset, log=lambda message: None)
            runs.append(f"{time.perf_counter() - wall:.2f} s wall / {time.process_time() - cpu:.2f} s CPU")
        print(f"{len(set(dataset.songs))} songs; profile step: {', '.join(runs)}")


if __name__ == "__main__":
    main()
