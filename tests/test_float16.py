"""Features on disk in float16: half the disk and page cache, the same dataset otherwise."""

from __future__ import annotations

import dataclasses

import numpy as np
from click.testing import CliRunner
from conftest import TINY_CLI_OPTIONS

from genre_cnn.cli import main
from genre_cnn.config import FeatureConfig, TrainConfig
from genre_cnn.data.arrays import RowReader
from genre_cnn.data.build import build_dataset
from genre_cnn.data.dataset import load_dataset
from genre_cnn.training.fit import fit


def test_float16_features_take_half_the_bytes_and_read_back_as_float32(tracks_dir, tiny_config, tmp_path):
    build_dataset(tracks_dir, out=tmp_path / "f32", config=tiny_config, workers=1)
    build_dataset(tracks_dir, out=tmp_path / "f16", config=dataclasses.replace(tiny_config, dtype="float16"),
                  workers=1)
    wide, narrow = load_dataset(tmp_path / "f32"), load_dataset(tmp_path / "f16")
    assert narrow.features.dtype == np.float16
    assert (tmp_path / "f16" / "features.npy").stat().st_size < 0.51 * (tmp_path / "f32" / "features.npy").stat().st_size
    rows = np.array([4, 0, 7])
    read = RowReader(narrow.features)(rows)
    assert read.dtype == np.float32
    np.testing.assert_allclose(read, RowReader(wide.features)(rows), atol=0.032)  # dB: float16's step at 40 dB
    assert list(narrow.songs) == list(wide.songs) and list(narrow.splits) == list(wide.splits)


def test_a_model_trains_on_float16_features(tracks_dir, tiny_config, tmp_path):
    build_dataset(tracks_dir, out=tmp_path / "f16", config=dataclasses.replace(tiny_config, dtype="float16"),
                  workers=1, val_fraction=0.2, test_fraction=0.2)
    result = fit(tmp_path / "f16", config=TrainConfig(epochs=2, batch_size=8), model_dir=tmp_path / "m",
                 verbose=0, log=lambda message: None)
    assert 0 <= result.metrics.song_accuracy <= 1


def test_build_dataset_dtype_option(tracks_dir, tmp_path):
    result = CliRunner().invoke(main, ["build-dataset", str(tracks_dir), "--out", str(tmp_path / "d"), "--dtype",
                                       "float16", *TINY_CLI_OPTIONS, "-q"])
    assert result.exit_code == 0, result.output
    assert load_dataset(tmp_path / "d").feature_config.dtype == "float16"
    bad = CliRunner().invoke(main, ["build-dataset", str(tracks_dir), "--dtype", "int8"])
    assert bad.exit_code == 2 and "'int8' is not one of 'float32', 'float16'" in bad.output


def test_a_config_saved_before_the_option_reads_as_float32():
    saved = FeatureConfig().to_dict()
    del saved["dtype"]
    assert FeatureConfig.from_dict(saved).dtype == "float32"
