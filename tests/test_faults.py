"""The fault corpus: whatever a music folder holds, every command explains it and carries on.

Every case is generated here (no binary fixtures). Each file is checked three ways: decoding it,
building a dataset that contains it, and classifying it; the message is asserted exactly.
"""

import json
import os
import re
import shutil
import tracemalloc

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import SR, synth_song, write_tracks

from genre_cnn.cli import main
from genre_cnn.config import FeatureConfig
from genre_cnn.data.build import build_dataset
from genre_cnn.data.dataset import load_dataset
from genre_cnn.errors import AudioDecodeError, DatasetError, ModelError
from genre_cnn.inference.classifier import load_classifier
from genre_cnn.signal.logmel import SongFeatureStream

CANNOT_DECODE = "cannot decode audio (format not recognised); is it a complete mp3/wav/ogg/flac/aiff file?"


def _wav(path, samples, sr=SR, **options):
    soundfile.write(path, samples, sr, **options)
    return path


def _bytes(path, data):
    path.write_bytes(data)
    return path


def _song(seconds=3.0):
    return synth_song("tones", 1, seconds=seconds)


def _mp3_bytes(tmp):
    _wav(tmp / "source.mp3", _song(), format="MP3")
    return (tmp / "source.mp3").read_bytes()


def _id3_with_cover_art(tmp, name):
    def synchsafe(n):
        return bytes([(n >> 21) & 127, (n >> 14) & 127, (n >> 7) & 127, n & 127])

    picture = b"\x00image/jpeg\x00\x03\x00" + np.random.default_rng(0).bytes(1_500_000)
    frame = b"APIC" + len(picture).to_bytes(4, "big") + b"\x00\x00" + picture
    path = tmp / name
    path.write_bytes(b"ID3\x03\x00\x00" + synchsafe(len(frame)) + frame + _mp3_bytes(tmp))
    return path


def _unreadable(tmp, name):
    path = _wav(tmp / name, _song())
    path.chmod(0)
    return path


def _symlink(tmp, name, target):
    path = tmp / name
    path.symlink_to(target)
    return path


# id -> (make(tmp) -> path, expected message after "PATH: ", or None when the file is usable)
FAULTS = {
    "zero-byte": (lambda tmp: _bytes(tmp / "zero.mp3", b""), "the file is empty (0 bytes)"),
    "truncated-mp3": (lambda tmp: _bytes(tmp / "cut.mp3", _mp3_bytes(tmp)[:9001]), None),
    "random-bytes-mp3": (lambda tmp: _bytes(tmp / "random.mp3", np.random.default_rng(1).bytes(40_000)),
                         CANNOT_DECODE),
    "text-as-wav": (lambda tmp: _bytes(tmp / "notes.wav", b"not audio, just words\n" * 50), CANNOT_DECODE),
    "quote-in-name-not-audio": (lambda tmp: _bytes(tmp / "Don't stop.mp3", b"ID3 but nothing else" * 9),
                                CANNOT_DECODE),
    "tenth-of-a-second": (lambda tmp: _wav(tmp / "blip.wav", _song(0.1)),
                          "only 0.10 s of audio; at least 0.5 s is needed"),
    "digital-silence": (lambda tmp: _wav(tmp / "silence.wav", np.zeros(3 * SR, np.float32)),
                        "the audio is silent (all 3 chunk(s) peak at or below -80 dBFS); nothing to learn from"),
    "nan-float-wav": (lambda tmp: _wav(tmp / "nan.wav", np.where(np.arange(3 * SR) == 5, np.nan, _song()),
                                       subtype="FLOAT"), "the audio contains NaN or infinite samples"),
    "inf-float-wav": (lambda tmp: _wav(tmp / "inf.wav", np.where(np.arange(3 * SR) == 5, np.inf, _song()),
                                       subtype="FLOAT"), "the audio contains NaN or infinite samples"),
    "eight-channels": (lambda tmp: _wav(tmp / "eight.wav", np.tile(_song()[:, None], (1, 8))), None),
    "8-khz": (lambda tmp: _wav(tmp / "low.wav", _song()), None),
    "96-khz": (lambda tmp: _wav(tmp / "high.wav", np.repeat(_song(), 12), sr=96_000), None),
    "24-bit-wav": (lambda tmp: _wav(tmp / "pcm24.wav", _song(), subtype="PCM_24"), None),
    "32-bit-float-wav": (lambda tmp: _wav(tmp / "float.wav", _song(), subtype="FLOAT"), None),
    "id3-cover-art": (lambda tmp: _id3_with_cover_art(tmp, "cover.mp3"), None),
    "spaces-unicode-emoji": (lambda tmp: _wav(tmp / "Sigur Rós – Hoppípolla 🎵.wav", _song()), None),
    "no-read-permission": (lambda tmp: _unreadable(tmp, "locked.wav"),
                           "permission denied; make the file readable (chmod +r)"),
    "dangling-symlink": (lambda tmp: _symlink(tmp, "gone.mp3", tmp / "deleted.mp3"),
                         "is a broken symbolic link (to {tmp}/deleted.mp3); fix or remove it"),
    "symlink-loop": (lambda tmp: _symlink(tmp, "loop.mp3", tmp / "loop.mp3"),
                     "is a symbolic link loop; point it at an audio file"),
}


@pytest.fixture
def fault(request, tmp_path, monkeypatch):
    """Make the fault named by the test id in its own folder; return (path, expected message)."""
    make, expected = FAULTS[request.param]
    folder = tmp_path / "faults"
    folder.mkdir()
    path = make(folder)
    for leftover in ("source.mp3",):
        (folder / leftover).unlink(missing_ok=True)
    if request.param == "no-read-permission" and os.access(path, os.R_OK):
        # root reads everything: emulate the permission check failing for this file only
        real_access = os.access
        monkeypatch.setattr("genre_cnn.signal.audio.os.access",
                            lambda p, mode: False if os.path.basename(p) == path.name else real_access(p, mode))
    if expected is not None:
        expected = f"{path}: " + expected.format(tmp=folder)
    return path, expected


@pytest.mark.parametrize("fault", list(FAULTS), indirect=True)
def test_decoding(fault, tiny_config):
    path, expected = fault
    stream = SongFeatureStream(path, tiny_config)
    if expected is None:
        batches = list(stream)
        assert sum(len(features) for features, _ in batches) >= 1
        assert all(np.isfinite(features).all() for features, _ in batches)
    else:
        with pytest.raises(AudioDecodeError) as caught:
            list(stream)
        assert str(caught.value) == expected


@pytest.mark.parametrize("fault", list(FAULTS), indirect=True)
def test_build_dataset_skips_or_uses_the_file_and_goes_on(fault, tiny_config, tmp_path):
    path, expected = fault
    tracks = write_tracks(tmp_path / "tracks", songs=3, seconds=2)
    shutil.move(path, tracks / "noise" / path.name) if not path.is_symlink() else \
        (tracks / "noise" / path.name).symlink_to(os.readlink(path))
    moved = tracks / "noise" / path.name
    report = build_dataset(tracks, out=tmp_path / "ds", config=tiny_config, workers=1, val_fraction=0,
                           test_fraction=0.3)
    skipped = {item["song"]: item["reason"] for item in report.summary.skipped}
    if expected is None:
        assert skipped == {} and report.summary.songs == 10
    else:
        assert skipped == {f"noise/{path.name}": expected.replace(str(path), str(moved), 1)}
        assert report.summary.songs == 9
    assert load_dataset(tmp_path / "ds").features.shape[0] == report.summary.chunks


@pytest.mark.parametrize("fault", list(FAULTS), indirect=True)
def test_classify_reports_the_file_and_classifies_the_others(fault, trained):
    path, expected = fault
    good = trained["tracks"] / "tones" / "tones_0.mp3"
    result = CliRunner().invoke(main, ["classify", str(path), str(good), "--json", "--workers", "1", "--model",
                                       str(trained["result"].model_dir)])
    assert result.stdout.startswith("["), (result.exit_code, result.output, result.exception)
    bad_entry, good_entry = json.loads(result.stdout)
    assert good_entry["error"] is None and good_entry["n_chunks"] == 3
    if expected is None:
        assert result.exit_code == 0 and bad_entry["error"] is None
        assert sum(bad_entry["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    else:
        assert result.exit_code == 1
        assert bad_entry == {"path": str(path), "genre": None, "probabilities": None, "n_chunks": 0,
                             "error": expected, "unsure": None, "novelty": None, "unfamiliar": None}
        assert f"Error: {expected}" in result.stderr


# --- folders and files around the songs ---------------------------------------------------------

def test_genre_folder_with_one_song_stops_the_build(tmp_path, tiny_config):
    tracks = write_tracks(tmp_path / "t", songs=4, seconds=2)
    for extra in sorted((tracks / "chirps").iterdir())[1:]:
        extra.unlink()
    with pytest.raises(DatasetError, match=r"^genre 'chirps' has 1 usable song\(s\); with val_fraction=0.15 "
                                           r"and test_fraction=0.2 every genre needs at least 3\. Add songs"):
        build_dataset(tracks, out=tmp_path / "ds", config=tiny_config, workers=1)
    assert not (tmp_path / "ds").exists()


def test_genre_folder_without_audio_and_os_files_are_ignored(tmp_path, tiny_config):
    tracks = write_tracks(tmp_path / "t", songs=3, seconds=2)
    (tracks / "covers").mkdir()
    (tracks / "covers" / "front.jpg").write_bytes(b"\xff\xd8")
    for junk in (".DS_Store", "._tones_0.mp3", "Thumbs.db", "desktop.ini"):
        (tracks / "tones" / junk).write_bytes(b"\x00\x01junk")
    report = build_dataset(tracks, out=tmp_path / "ds", config=tiny_config, workers=1, val_fraction=0,
                           test_fraction=0.3)
    assert report.summary.classes == ["chirps", "noise", "tones"]
    assert report.summary.skipped == [] and report.summary.songs == 9
    assert report.summary.notes == [f"{tracks / 'covers'}: no audio files, not a genre (skipped)"]


def test_dataset_with_invalid_json_config(trained, tmp_path):
    copy = shutil.copytree(trained["dataset"], tmp_path / "ds")
    (copy / "feature_config.json").write_text("{ this is not json")
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(copy))}/feature_config.json: the feature config is "
                                           r"not valid JSON \(.*\); rebuild the dataset$"):
        load_dataset(copy)


def test_model_with_invalid_json_config(trained, tmp_path):
    copy = shutil.copytree(trained["result"].model_dir, tmp_path / "m")
    (copy / "config.json").write_text("[1, 2")
    with pytest.raises(ModelError, match=rf"^{re.escape(str(copy))}/config.json: the model config is not valid "
                                         r"JSON \(.*\); refit the model$"):
        load_classifier(copy)


def test_model_folder_missing_model_keras(trained, tmp_path):
    copy = shutil.copytree(trained["result"].model_dir, tmp_path / "m")
    (copy / "model.keras").unlink()
    with pytest.raises(ModelError, match=rf"^{re.escape(str(copy))}: model.keras is missing; refit"):
        load_classifier(copy)


# --- a two-hour recording -----------------------------------------------------------------------

def test_two_hour_file_is_decoded_and_chunked_in_bounded_memory(tmp_path):
    """7200 s at 8 kHz is 230 MB as float32; decoding and chunking hold a few MB at a time."""
    path = tmp_path / "two hours.wav"
    block = synth_song("chirps", 0, seconds=60.0)
    with soundfile.SoundFile(path, "w", samplerate=SR, channels=1, subtype="PCM_16") as out:
        for _ in range(120):
            out.write(block)
    config = FeatureConfig(sr=SR, chunk_samples=8 * SR, hop_samples=8 * SR, n_fft=256, hop_length=512,
                           n_mels=8)
    tracemalloc.start()
    try:
        chunks = sum(len(features) for features, _ in SongFeatureStream(path, config, batch_size=32))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert chunks == 900
    assert peak < 40e6, f"peak {peak / 1e6:.0f} MB"
