"""FeatureConfig and TrainConfig: defaults, validation messages, JSON round trip."""

import json

import pytest

from genre_cnn.config import FEATURE_VERSION, FeatureConfig, TrainConfig, read_json, write_json
from genre_cnn.errors import ConfigError


def test_defaults_follow_the_article():
    config = FeatureConfig()
    assert (config.sr, config.chunk_samples, config.hop_samples) == (22050, 100_000, 100_000)
    assert (config.n_fft, config.hop_length, config.n_mels) == (2048, 512, 128)
    assert config.input_shape == (128, 1 + 100_000 // 512)


def test_from_seconds_scales_the_default_chunk_to_the_sample_rate():
    assert FeatureConfig.from_seconds().chunk_samples == 100_000
    config = FeatureConfig.from_seconds(sr=16000, chunk_seconds=2.0, hop_seconds=0.5)
    assert (config.chunk_samples, config.hop_samples) == (32000, 8000)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"n_mels": 0}, "n_mels=0 must be a positive integer"),
        ({"tail": "wrap"}, "tail='wrap' must be one of 'drop', 'pad'"),
        ({"short": "loop"}, "short='loop' must be one of 'pad', 'skip'"),
        ({"chunk_samples": 1000, "hop_samples": 1000}, "n_fft=2048 must not exceed chunk_samples=1000"),
        ({"fmax": 20000.0}, "must satisfy 0 <= fmin < fmax <= sr/2 = 11025"),
        ({"min_seconds": -1}, "min_seconds=-1 must be a number >= 0"),
    ],
    ids=["zero-mels", "bad-tail", "bad-short", "fft-longer-than-chunk", "fmax-above-nyquist", "negative-min"],
)
def test_feature_config_rejects_bad_values_with_name_and_rule(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FeatureConfig(**options)


def test_from_seconds_rejects_non_positive_lengths():
    with pytest.raises(ConfigError, match="chunk_seconds=0 must be a positive number of seconds"):
        FeatureConfig.from_seconds(chunk_seconds=0)


def test_config_round_trips_through_json(tmp_path):
    config = FeatureConfig(sr=16000, chunk_samples=16000, hop_samples=8000, tail="pad", fmax=7000.0)
    write_json(tmp_path / "c.json", config.to_dict())
    assert FeatureConfig.from_dict(read_json(tmp_path / "c.json", what="config")) == config
    train = TrainConfig(epochs=3, batch_size=4, learning_rate=0.01, seed=7)
    assert TrainConfig.from_dict(json.loads(json.dumps(train.to_dict()))) == train


def test_config_from_another_version_is_refused():
    data = FeatureConfig().to_dict() | {"version": FEATURE_VERSION + 1}
    with pytest.raises(ConfigError, match="rebuild the dataset or refit the model"):
        FeatureConfig.from_dict(data)
    with pytest.raises(ConfigError, match=r"unknown fields \['window'\]"):
        FeatureConfig.from_dict(FeatureConfig().to_dict() | {"window": "hamming"})


def test_invalid_json_names_the_file(tmp_path):
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json: the config is not valid JSON"):
        read_json(tmp_path / "broken.json", what="the config")


@pytest.mark.parametrize(
    "options, message",
    [({"epochs": 0}, "epochs=0"), ({"batch_size": -1}, "batch_size=-1"),
     ({"learning_rate": 0.0}, "learning_rate=0.0"), ({"seed": -2}, "seed=-2")],
    ids=["epochs", "batch-size", "learning-rate", "seed"],
)
def test_train_config_rejects_bad_values(options, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**options)
