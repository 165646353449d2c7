"""Shared fixtures: tiny synthetic genres written as real audio files, and a tiny feature config."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile

from genre_cnn.config import FeatureConfig

SR = 8000


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture
def tiny_config() -> FeatureConfig:
    """1 s chunks at 8 kHz, 16 mel bands: fast, yet the same code path as the defaults."""
    return FeatureConfig(sr=SR, chunk_samples=SR, hop_samples=SR, n_fft=256, hop_length=128, n_mels=16)


TINY_CLI_OPTIONS = ["--sr", "8000", "--chunk-seconds", "1", "--n-fft", "256", "--hop-length", "128",
                    "--n-mels", "16", "--workers", "1"]


def synth_song(genre: str, index: int, *, seconds: float, sr: int = SR) -> np.ndarray:
    """A few seconds of audio whose character depends on the genre and varies per song.

    ``tones``: steady low sine chords; ``chirps``: rising sweeps; ``noise``: filtered noise bursts.
    """
    rng = np.random.default_rng(zlib.crc32(genre.encode()) + index)
    t = np.arange(int(seconds * sr)) / sr
    if genre == "tones":
        f0 = 200 + 40 * index
        y = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3))
    elif genre == "chirps":
        period = 0.5 + 0.1 * index
        phase = (t % period) / period
        y = np.sin(2 * np.pi * (500 + 2500 * phase) * t)
    elif genre == "noise":
        envelope = (np.sin(2 * np.pi * (2 + index) * t) > 0).astype(float)
        y = rng.standard_normal(len(t)) * envelope
    else:
        raise ValueError(genre)
    y = y / np.max(np.abs(y)) * 0.5 + 0.01 * rng.standard_normal(len(t))
    return y.astype(np.float32)


def write_tracks(root: Path, *, genres=("tones", "chirps", "noise"), songs=5, seconds=3.0, fmt="MP3") -> Path:
    """Write ``root/<genre>/<genre>_<i>.<ext>`` for every genre and return ``root``."""
    ext = {"MP3": "mp3", "WAV": "wav", "FLAC": "flac"}[fmt]
    for genre in genres:
        (root / genre).mkdir(parents=True, exist_ok=True)
        for i in range(songs):
            soundfile.write(root / genre / f"{genre}_{i}.{ext}", synth_song(genre, i, seconds=seconds), SR,
                            format=fmt)
    return root


@pytest.fixture
def tracks_dir(tmp_path) -> Path:
    """Three synthetic genres of five 3-second mp3 songs each."""
    return write_tracks(tmp_path / "tracks")


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A dataset and a model trained for 2 epochs on it, shared by the slower tests."""
    from genre_cnn.config import TrainConfig
    from genre_cnn.data.build import build_dataset
    from genre_cnn.training.fit import fit

    root = tmp_path_factory.mktemp("trained")
    tracks = write_tracks(root / "tracks")
    config = FeatureConfig(sr=SR, chunk_samples=SR, hop_samples=SR, n_fft=256, hop_length=128, n_mels=16)
    build_dataset(tracks, out=root / "dataset", config=config, workers=1, val_fraction=0.2, test_fraction=0.2)
    from genre_cnn.training import calibration

    shipped, calibration.MIN_CALIBRATION_SONGS = calibration.MIN_CALIBRATION_SONGS, 1
    try:  # the tiny model is calibrated on its 3 validation songs (a real fit needs 30), so tests see a temperature
        result = fit(root / "dataset", config=TrainConfig(epochs=2, batch_size=8), name="tiny",
                     models_root=root / "models", verbose=0, log=lambda message: None)
    finally:  # (too few songs for a novelty threshold: the unfamiliar flag is tested on its own model, test_novelty)
        calibration.MIN_CALIBRATION_SONGS = shipped
    return {"root": root, "tracks": tracks, "dataset": root / "dataset", "result": result,
            "models": root / "models"}


@pytest.fixture(scope="session")
def familiar_model(tmp_path_factory):
    """A tiny model with a novelty reference: 8 songs a genre, so that its threshold is chosen on its
    training songs, each against the others (the shared ``trained`` model has too few songs for one)."""
    from genre_cnn.config import TrainConfig
    from genre_cnn.data.build import build_dataset
    from genre_cnn.training.fit import fit

    root = tmp_path_factory.mktemp("familiar")
    tracks = write_tracks(root / "tracks", songs=8)
    config = FeatureConfig(sr=SR, chunk_samples=SR, hop_samples=SR, n_fft=256, hop_length=128, n_mels=16)
    build_dataset(tracks, out=root / "dataset", config=config, workers=1, val_fraction=0.2, test_fraction=0.0)
    return fit(root / "dataset", config=TrainConfig(epochs=2, batch_size=8), model_dir=root / "model",
               models_root=root / "models", verbose=0, log=lambda message: None).model_dir


#: soundfile's (format, subtype) for each ending a test may ask for; M4A is encoded with PyAV.
SOUNDFILE_FORMATS = {".mp3": ("MP3", None), ".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", None),
                     ".ogg": ("OGG", "VORBIS"), ".opus": ("OGG", "OPUS")}


def write_audio(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    """Write mono float samples ``y`` as the format of ``path``'s ending (mp3, wav, flac, ogg, opus, m4a)."""
    suffix = path.suffix.lower()
    if suffix in SOUNDFILE_FORMATS:
        fmt, subtype = SOUNDFILE_FORMATS[suffix]
        soundfile.write(path, y, sr, format=fmt, subtype=subtype)
        return path
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=sr, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.asarray(y, dtype=np.float32)[None, :], format="flt", layout="mono")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
