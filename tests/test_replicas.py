"""Training on several GPUs at once: two logical CPU devices stand in for two GPUs.

TensorFlow fixes its devices when it starts, so the fit runs in a fresh Python process.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a fresh TensorFlow process and a real fit

FIT_ON_TWO_REPLICAS = """
import json, sys
from pathlib import Path

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import genre_cnn.runtime.backend as backend

backend.replica_devices = lambda: ["/cpu:0", "/cpu:1"]  # what two GPUs would give

from genre_cnn.config import TrainConfig
from genre_cnn.inference.classifier import load_classifier
from genre_cnn.training.fit import fit

root = Path(sys.argv[1])
lines = []
result = fit(root / "dataset", config=TrainConfig(epochs=3, batch_size=8), name="mirrored",
             models_root=root / "models", checkpoint=root / "checkpoint.keras", verbose=0, log=lines.append)
history = json.loads((result.model_dir / "history.json").read_text())
classifier = load_classifier(result.model_dir, backend="keras")
classified = {song["song"]: classifier.classify_file(root / "tracks" / song["song"]).probabilities
              for song in result.metrics.songs}
import keras
import numpy as np
checkpoint = keras.saving.load_model(root / "checkpoint.keras", compile=False)
saved = classifier.runner.model.get_weights()
same_weights = all(np.array_equal(a, b) for a, b in zip(checkpoint.get_weights(), saved))
print(json.dumps({"log": lines, "loss": history["loss"], "metrics": result.metrics.songs,
                  "classified": classified, "checkpoint_is_the_model": same_weights}))
"""


def test_fit_trains_one_model_on_two_replicas(tmp_path, tiny_config):
    from conftest import write_tracks

    from genre_cnn.data.build import build_dataset

    write_tracks(tmp_path / "tracks")
    build_dataset(tmp_path / "tracks", out=tmp_path / "dataset", config=tiny_config, workers=1,
                  val_fraction=0.2, test_fraction=0.2)

    run = subprocess.run([sys.executable, "-c", FIT_ON_TWO_REPLICAS, str(tmp_path)], capture_output=True,
                         text=True, timeout=600)

    assert run.returncode == 0, run.stderr[-3000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert any("2 replicas" in line for line in outcome["log"])  # fit says it trains on both
    assert outcome["loss"][-1] < outcome["loss"][0]  # and it learns
    for song in outcome["metrics"]:  # the saved model is the plain network: it classifies as fit measured
        classified = outcome["classified"][song["song"]]
        assert classified == pytest.approx(song["probabilities"], abs=1e-5)
    assert outcome["checkpoint_is_the_model"]  # --checkpoint saved the kept epoch from the replicas
