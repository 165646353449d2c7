"""The log-mel feature function: shape, agreement with librosa, independence from the batch."""

import librosa
import numpy as np
import pytest

from genre_cnn.config import FeatureConfig
from genre_cnn.signal.logmel import log_mel, mel_filterbank, song_features


def test_shape_and_dtype(tiny_config, rng):
    chunks = rng.standard_normal((3, tiny_config.chunk_samples)).astype(np.float32)
    features = log_mel(chunks, tiny_config)
    assert features.shape == (3, *tiny_config.input_shape) == (3, 16, 63)
    assert features.dtype == np.float32


def test_matches_librosa_reference(tiny_config, rng):
    chunk = rng.standard_normal(tiny_config.chunk_samples).astype(np.float32) * 0.1
    reference = librosa.power_to_db(
        librosa.feature.melspectrogram(
            y=chunk, sr=tiny_config.sr, n_fft=tiny_config.n_fft, hop_length=tiny_config.hop_length,
            n_mels=tiny_config.n_mels,
        ),
        ref=1.0, amin=tiny_config.amin, top_db=None,
    )
    np.testing.assert_allclose(log_mel(chunk[None], tiny_config)[0], reference, rtol=1e-5, atol=1e-3)


def test_a_chunk_does_not_depend_on_its_batch(tiny_config, rng):
    loud = rng.standard_normal((1, tiny_config.chunk_samples)).astype(np.float32)
    quiet = 0.001 * rng.standard_normal((1, tiny_config.chunk_samples)).astype(np.float32)
    alone = log_mel(quiet, tiny_config)
    together = log_mel(np.concatenate([loud, quiet]), tiny_config)[1:]
    np.testing.assert_allclose(alone, together, rtol=1e-6)


def test_silence_sits_at_the_floor(tiny_config):
    features = log_mel(np.zeros((1, tiny_config.chunk_samples), np.float32), tiny_config)
    np.testing.assert_allclose(features, 10 * np.log10(tiny_config.amin))


def test_a_tone_lights_up_the_right_band(tiny_config):
    t = np.arange(tiny_config.chunk_samples) / tiny_config.sr
    tone = np.sin(2 * np.pi * 2000 * t).astype(np.float32)
    features = log_mel(tone[None], tiny_config)[0]
    centres = librosa.mel_frequencies(n_mels=tiny_config.n_mels + 2, fmax=tiny_config.sr / 2)[1:-1]
    assert abs(centres[features.mean(axis=1).argmax()] - 2000) < 400


def test_wrong_chunk_length_is_rejected(tiny_config):
    with pytest.raises(ValueError, match=r"chunks must have shape \(n, 8000\)"):
        log_mel(np.zeros((2, 100), np.float32), tiny_config)


def test_song_features_decode_segment_and_featurise(tracks_dir, tiny_config):
    features, offsets, stats = song_features(tracks_dir / "tones" / "tones_0.mp3", tiny_config)
    assert features.shape == (3, 16, 63)
    assert offsets.tolist() == [0, 8000, 16000]
    assert stats == {"silent_chunks": 0, "trimmed_seconds": 0.0, "denoise_db": 0.0}


def test_batches_are_bounded_by_bytes_not_by_a_chunk_count(tmp_path, tiny_config):
    import soundfile

    from genre_cnn.config import FeatureConfig
    from genre_cnn.signal.logmel import BATCH_BYTES, SongFeatureStream, chunks_per_batch

    default = chunks_per_batch(FeatureConfig())
    assert default == 7  # 4.5 s chunks of 128 x 196 log-mel: about 6.7 MB each on the way through
    longer = FeatureConfig.from_seconds(chunk_seconds=30.0)
    assert chunks_per_batch(longer) < default, "longer chunks, fewer per batch"
    assert chunks_per_batch(FeatureConfig(), budget_bytes=1) == 1
    assert chunks_per_batch(tiny_config) * 4 * (tiny_config.chunk_samples + 16 * 63 * 65) <= BATCH_BYTES
    song = tmp_path / "long.wav"
    soundfile.write(song, np.random.default_rng(0).uniform(-0.5, 0.5, 22050 * 120).astype(np.float32), 22050)
    sizes = [len(features) for features, _ in SongFeatureStream(song, FeatureConfig())]
    assert max(sizes) == default and sum(sizes) == 26


@pytest.mark.parametrize("sr, n_fft, n_mels, fmin, fmax", [
    (22050, 2048, 128, 0.0, None), (8000, 256, 16, 0.0, None), (16000, 1024, 48, 30.0, 7000.0),
    (44100, 4096, 96, 20.0, 16000.0),
])
def test_the_mel_filterbank_equals_librosas_without_importing_it(sr, n_fft, n_mels, fmin, fmax):
    import librosa

    config = FeatureConfig(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, chunk_samples=sr,
                           hop_samples=sr, hop_length=n_fft // 4)
    expected = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, dtype=np.float32)
    np.testing.assert_array_equal(mel_filterbank(config), expected)


def test_building_a_dataset_imports_neither_librosa_nor_scipy_signal(tracks_dir, tmp_path):
    import subprocess
    import sys

    code = ("import sys; from genre_cnn.data.build import build_dataset; "
            f"build_dataset({str(tracks_dir)!r}, out={str(tmp_path / 'd')!r}, workers=1, "
            "val_fraction=0, test_fraction=0); "
            "print(sorted(m for m in ('librosa', 'scipy.signal', 'numba') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
