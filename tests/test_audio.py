"""Decoding: formats, downmix, resampling, and the messages for files that are not usable audio."""

import numpy as np
import pytest
import soundfile

from genre_cnn.errors import AudioDecodeError
from genre_cnn.signal.audio import audio_blocks, is_audio_file, load_audio, mono_mix


def test_mp3_decodes_to_mono_float32_at_the_requested_rate(tmp_path):
    t = np.arange(16000) / 16000
    soundfile.write(tmp_path / "a.mp3", 0.5 * np.sin(2 * np.pi * 440 * t), 16000, format="MP3")
    y = load_audio(tmp_path / "a.mp3", sr=8000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 8000) < 8000 * 0.1  # mp3 adds encoder padding at the edges
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 8000 / len(y) - 440) < 5


def test_stereo_is_averaged_and_resampled(tmp_path):
    left = np.full(44100, 0.2, dtype=np.float32)
    right = np.full(44100, 0.6, dtype=np.float32)
    soundfile.write(tmp_path / "s.wav", np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    y = load_audio(tmp_path / "s.wav", sr=22050)
    assert len(y) == 22050
    np.testing.assert_allclose(y[1000:-1000], 0.4, atol=1e-3)


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_the_mono_mix_is_numpys_mean_of_the_channels_to_the_last_bit(channels):
    """Datasets built before the faster mix must meet the same features when their songs are classified."""
    rng = np.random.default_rng(channels)
    samples = (rng.standard_normal((50_000, channels)) * 10.0 ** rng.uniform(-6, 0, (50_000, channels)))
    samples = samples.astype(np.float32)
    mono = mono_mix(samples)
    assert mono.dtype == np.float32 and mono.shape == (50_000,)
    np.testing.assert_array_equal(mono, samples.mean(axis=1, dtype=np.float32))


def test_native_rate_is_returned_unchanged(tmp_path):
    x = np.linspace(-0.5, 0.5, 8000, dtype=np.float32)
    soundfile.write(tmp_path / "x.wav", x, 8000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "x.wav", sr=8000), x)


def test_missing_file(tmp_path):
    with pytest.raises(AudioDecodeError, match=r"nope\.mp3: does not exist"):
        load_audio(tmp_path / "nope.mp3", sr=8000)


def test_text_file_named_wav(tmp_path):
    (tmp_path / "fake.wav").write_text("this is not audio")
    with pytest.raises(AudioDecodeError, match=r"fake\.wav: cannot decode audio \(.*\); is it a complete"):
        load_audio(tmp_path / "fake.wav", sr=8000)


def test_empty_wav(tmp_path):
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 8000)
    with pytest.raises(AudioDecodeError, match=r"empty\.wav: the file holds no audio samples"):
        load_audio(tmp_path / "empty.wav", sr=8000)


def test_nan_samples(tmp_path):
    x = np.zeros(8000, dtype=np.float32)
    x[100] = np.nan
    soundfile.write(tmp_path / "nan.wav", x, 8000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match=r"nan\.wav: the audio contains NaN or infinite samples"):
        load_audio(tmp_path / "nan.wav", sr=8000)


@pytest.mark.parametrize(
    "name, expected",
    [("song.mp3", True), ("SONG.MP3", True), ("a.flac", True), ("b.aiff", True), ("c.au", True),
     ("d.ogg", True), (".hidden.mp3", False), ("._song.mp3", False), ("notes.txt", False),
     ("Thumbs.db", False)],
)
def test_is_audio_file(name, expected):
    assert is_audio_file(name) is expected


@pytest.mark.parametrize("fmt", ["MP3", "FLAC", "WAV"])
def test_decoding_in_blocks_equals_one_read(tmp_path, rng, fmt):
    """Regression: soundfile seeks after each read, which corrupts mp3 frames at block edges."""
    path = tmp_path / f"noise.{fmt.lower()}"
    soundfile.write(path, 0.3 * rng.standard_normal(22050 * 6).astype(np.float32), 22050, format=fmt)
    whole = soundfile.read(path, dtype="float32")[0]
    blocks = list(audio_blocks(path, sr=22050, block_seconds=0.37))
    assert len(blocks) > 10
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)  # was 0.2 off at block edges


@pytest.mark.parametrize("sr", [16000, 22050, 44100])
def test_a_decoded_copy_reads_back_as_the_song_itself_at_any_rate(tmp_path, rng, sr):
    """serve decodes an upload once (mono, at its own rate) and every reader reads the copy."""
    from genre_cnn.signal.audio import audio_info, decode_once

    song = tmp_path / "stereo.mp3"
    soundfile.write(song, (0.2 * rng.standard_normal((44100 * 3, 2))).astype(np.float32), 44100, format="MP3")
    copy = decode_once(song, tmp_path / "copy.wav", sr=audio_info(song).sample_rate)
    np.testing.assert_array_equal(load_audio(copy, sr=sr), load_audio(song, sr=sr))
