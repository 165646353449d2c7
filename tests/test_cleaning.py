"""Silence trimming and noise reduction: applied before chunking, saved in the config, reported."""

import json

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import SR, TINY_CLI_OPTIONS, synth_song, write_tracks

from genre_cnn.cli import main
from genre_cnn.config import FeatureConfig
from genre_cnn.errors import ConfigError
from genre_cnn.signal.logmel import song_features


def padded_with_silence(path, *, before=2.0, tone=3.0, after=1.5):
    y = np.concatenate([np.zeros(int(before * SR)), synth_song("tones", 0, seconds=tone), np.zeros(int(after * SR))])
    soundfile.write(path, y.astype(np.float32), SR, subtype="FLOAT")
    return path


def test_trimming_removes_leading_and_trailing_silence(tmp_path, tiny_config):
    import dataclasses

    song = padded_with_silence(tmp_path / "s.wav")
    features, offsets, stats = song_features(song, dataclasses.replace(tiny_config, trim_db=60.0))
    assert stats["trimmed_seconds"] == pytest.approx(3.5, abs=0.3)  # trim works on 2048-sample frames
    assert len(features) == 3  # 3 s of tone -> three 1 s chunks, none silent
    _, _, untrimmed = song_features(song, tiny_config)
    assert untrimmed["silent_chunks"] >= 2 and untrimmed["trimmed_seconds"] == 0


def test_noise_reduction_lowers_the_noise(tmp_path, tiny_config, rng):
    import dataclasses

    noisy = synth_song("tones", 1, seconds=4) + 0.05 * rng.standard_normal(4 * SR).astype(np.float32)
    soundfile.write(tmp_path / "n.wav", noisy, SR, subtype="FLOAT")
    clean, _, stats = song_features(tmp_path / "n.wav", dataclasses.replace(tiny_config, denoise=True))
    raw, _, _ = song_features(tmp_path / "n.wav", tiny_config)
    assert stats["denoise_db"] > 0.5
    top_bands = slice(10, 16)  # the tone lives low; above it there is only noise
    assert clean[:, top_bands].mean() < raw[:, top_bands].mean() - 3


def test_cli_options_are_saved_in_the_feature_config_and_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tracks = write_tracks(tmp_path / "tracks", songs=3, seconds=2)
    padded_with_silence(tracks / "tones" / "quiet_edges.wav")
    result = CliRunner().invoke(main, ["build-dataset", "tracks", *TINY_CLI_OPTIONS, "--trim-silence",
                                       "--denoise", "--val-fraction", "0", "--test-fraction", "0.3"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "data" / "dataset" / "feature_config.json").read_text())
    assert (config["trim_db"], config["denoise"]) == (60.0, True)
    assert "Trimmed 3." in result.stdout and "Noise reduction lowered the level by" in result.stdout
    result = CliRunner().invoke(main, ["build-dataset", "tracks", *TINY_CLI_OPTIONS, "--trim-silence", "30",
                                       "--out", "ds30", "-q", "--val-fraction", "0", "--test-fraction", "0.3"])
    assert json.loads((tmp_path / "ds30" / "feature_config.json").read_text())["trim_db"] == 30.0


def test_bad_trim_level():
    with pytest.raises(ConfigError, match="trim_db=-3 must be a positive number of dB"):
        FeatureConfig(trim_db=-3)


def test_classify_cleans_like_the_model_was_trained(tmp_path, tiny_config):
    import dataclasses

    from genre_cnn.config import TrainConfig
    from genre_cnn.data.build import build_dataset
    from genre_cnn.inference.classifier import classify
    from genre_cnn.training.fit import fit

    tracks = write_tracks(tmp_path / "tracks", songs=3, seconds=2)
    build_dataset(tracks, out=tmp_path / "ds", config=dataclasses.replace(tiny_config, trim_db=60.0), workers=1,
                  val_fraction=0, test_fraction=0.3)
    result = fit(tmp_path / "ds", config=TrainConfig(epochs=1, batch_size=8), model_dir=tmp_path / "m",
                 models_root=tmp_path / "models", verbose=0, log=lambda message: None)
    [prediction] = classify([padded_with_silence(tmp_path / "edges.wav")], model=result.model_dir)
    assert prediction.n_chunks == 3  # 6.5 s file, 3.2 s after trimming
