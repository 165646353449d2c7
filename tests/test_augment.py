"""Augmentation: what each option does to a training chunk, and that only training chunks change."""

import json

import numpy as np
import pytest

from genre_cnn.config import FeatureConfig, TrainConfig
from genre_cnn.errors import ConfigError
from genre_cnn.kinds import train_config_from_dict
from genre_cnn.kinds.cnn import CnnOptions
from genre_cnn.signal.logmel import log_mel, mel_filterbank
from genre_cnn.training.augment import ChunkAugmenter, mixup

CONFIG = FeatureConfig(sr=8000, chunk_samples=8000, hop_samples=8000, n_fft=256, hop_length=128, n_mels=32)


def augmenter(*names, **options):
    return ChunkAugmenter(CONFIG, CnnOptions(augment=names, **options), filterbank=mel_filterbank(CONFIG))


def music(rng, n=64):
    """``n`` log-mel chunks of noisy harmonic tones."""
    t = np.arange(CONFIG.chunk_samples) / CONFIG.sr
    chunks = [sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3)) + 0.01 * rng.standard_normal(len(t))
              for f in rng.uniform(150, 600, n)]
    return log_mel(np.array(chunks), CONFIG)


def changed(a, b):
    return ~np.isclose(a, b, atol=1e-4).all(axis=(1, 2))


def test_augment_names_are_checked_and_kept_in_a_fixed_order():
    assert CnnOptions(augment="mixup, noise").augment == ("noise", "mixup")
    saved = TrainConfig(options={"augment": ["gain"]}).to_dict()
    assert train_config_from_dict(saved).options.augment == ("gain",)
    with pytest.raises(ConfigError, match="unknown augmentation.*reverb.*choose from shift,stretch"):
        CnnOptions(augment="noise,reverb")
    with pytest.raises(ConfigError, match="stretch=1.5 must be below 1"):
        CnnOptions(stretch=1.5)


def test_gain_adds_the_same_decibels_to_every_bin_of_a_chunk(rng):
    x = music(rng)
    y = augmenter("gain", gain_db=6.0)(x, np.random.default_rng(0))
    offset = (y - x).mean(axis=(1, 2))
    np.testing.assert_allclose(y - x, np.broadcast_to(offset[:, None, None], x.shape), atol=1e-3)
    assert np.abs(offset).max() <= 6.0
    assert 10 < changed(x, y).sum() < 54  # each chunk with probability 1/2


def test_noise_is_added_at_the_chosen_signal_to_noise_ratio(rng):
    x = music(rng)
    y = augmenter("noise", noise_snr_db=10.0)(x, np.random.default_rng(1))
    hit = changed(x, y)
    assert 10 < hit.sum() < 54
    signal = 10 ** (x[hit] / 10)
    added = 10 ** (y[hit] / 10) - signal
    assert (added > -1e-6 * signal).all()  # noise only ever adds power
    snr = 10 * np.log10(signal.sum(axis=(1, 2)) / added.sum(axis=(1, 2)))
    np.testing.assert_allclose(snr, 10.0, atol=1.0)


def test_shift_cuts_the_chunk_again_at_a_later_start_within_the_same_song():
    frames = CONFIG.n_frames
    this = np.tile(np.arange(frames, dtype=np.float32), (40, CONFIG.n_mels, 1))  # frame numbers of the song
    following = this + frames - 1  # the next chunk starts where this one's last frame is
    y = augmenter("shift")(this, np.random.default_rng(2), next_chunks=following,
                           has_next=np.ones(40, bool))
    start = y[:, 0, 0]
    assert (start >= 0).all() and (start <= frames - 1).all() and (start > 0).sum() > 10
    np.testing.assert_allclose(y, start[:, None, None] + this, atol=1e-3)  # a contiguous stretch of the song
    alone = augmenter("shift")(this, np.random.default_rng(2), next_chunks=following, has_next=np.zeros(40, bool))
    np.testing.assert_array_equal(alone, this)  # the last chunk of a song has nothing to shift into


def test_stretch_changes_the_speed_by_at_most_the_chosen_factor(rng):
    frames = CONFIG.n_frames
    ramp = np.tile(np.arange(frames, dtype=np.float32), (40, CONFIG.n_mels, 1))
    y = augmenter("stretch", stretch=0.2)(ramp, np.random.default_rng(3), next_chunks=ramp + frames - 1,
                                          has_next=np.ones(40, bool))
    rate = (y[:, 0, -1] - y[:, 0, 0]) / (frames - 1)
    assert (rate >= 1 / 1.2 - 1e-4).all() and (rate <= 1.2 + 1e-4).all()
    assert (np.abs(rate - 1) > 0.01).sum() > 5


def test_pitch_shift_by_an_octave_doubles_the_frequencies(rng):
    t = np.arange(CONFIG.chunk_samples) / CONFIG.sr
    x = log_mel(np.sin(2 * np.pi * 500 * t)[None, :], CONFIG)
    shift = augmenter("pitch")
    up = shift.shift_pitch(x, np.array([12.0]))
    peak_hz = shift.band_hz[np.argmax(up[0].mean(axis=1))]
    assert 900 < peak_hz < 1100
    octave = log_mel(np.sin(2 * np.pi * 1000 * t)[None, :], CONFIG)
    assert np.argmax(up[0].mean(axis=1)) == np.argmax(octave[0].mean(axis=1))


def test_mixup_targets_are_convex_mixtures_that_sum_to_one(rng):
    x = rng.standard_normal((16, 4, 5)).astype(np.float32)
    targets = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 16)]
    mixed, soft = mixup(x, targets, np.random.default_rng(4), alpha=0.4)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    assert ((soft >= 0) & (soft <= 1)).all() and (soft.max(axis=1) < 1).any()
    assert mixed.shape == x.shape and not np.allclose(mixed, x)


def test_specaugment_masks_only_in_training():
    pytest.importorskip("tensorflow")
    from genre_cnn.models.layers import SpecAugment

    x = np.random.default_rng(5).standard_normal((8, 16, 63)).astype(np.float32)
    layer = SpecAugment(np.full(16, -99.0), seed=1)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)
    masked = np.asarray(layer(x, training=True))
    filled = masked == -99.0
    assert filled.any() and (masked[~filled] == x[~filled]).all()
    assert filled.mean() < 0.5


def test_only_training_batches_are_augmented(trained):
    pytest.importorskip("tensorflow")
    from genre_cnn.data.dataset import load_dataset
    from genre_cnn.training.scratch import evaluation_batches, training_batches

    dataset = load_dataset(trained["dataset"])
    config = TrainConfig(batch_size=64, options=CnnOptions(augment="shift,stretch,pitch,gain,noise,specaugment,mixup"))
    rows = dataset.indices("train")
    x, y = training_batches(dataset, rows, config)[0]
    stored = np.asarray(dataset.features)
    assert x.shape == (len(rows), *dataset.feature_config.input_shape)
    assert not any(np.array_equal(chunk, stored[row]) for chunk in x for row in rows)  # none served as stored
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
    again, _ = training_batches(dataset, rows, config)[0]
    np.testing.assert_array_equal(x, again)  # seeded: the same augmentation every run
    for split in ("val", "test"):
        split_rows = dataset.indices(split)
        served, labels = evaluation_batches(dataset, split_rows, batch_size=64, one_hot=True)[0]
        np.testing.assert_array_equal(served, stored[split_rows])
        np.testing.assert_array_equal(labels.argmax(axis=1), dataset.labels[split_rows])


def test_fit_with_augmentation_records_it_and_saves_a_plain_model(trained, tmp_path):
    pytest.importorskip("tensorflow")
    from genre_cnn.inference.classifier import classify
    from genre_cnn.training.fit import fit

    config = TrainConfig(epochs=2, batch_size=8, options={"augment": "shift,gain,noise,specaugment,mixup"})
    result = fit(trained["dataset"], config=config, model_dir=tmp_path / "m", models_root=tmp_path / "models",
                 verbose=0, log=lambda m: None)
    saved = json.loads((result.model_dir / "config.json").read_text())["train_config"]
    assert saved["kind"] == "cnn" and saved["options"]["augment"] == ["shift", "gain", "noise", "specaugment", "mixup"]
    import keras

    model = keras.saving.load_model(result.model_dir / "model.keras")
    assert not any("specaugment" in layer.name for layer in model.layers)
    song = trained["tracks"] / "tones" / "tones_0.mp3"
    first, second = (classify([song], model=result.model_dir, backend="keras")[0] for _ in range(2))
    np.testing.assert_array_equal(first.probabilities, second.probabilities)  # inference is not augmented
