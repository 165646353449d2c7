"""No command deletes a user's files, and no bad byte crashes a run.

A corpus generated on the fly: outputs aimed at inputs and at foreign folders and files, random
bytes of several seeds and sizes, every header truncated at many offsets, odd file names, and
damaged copies of every file of a dataset and a model folder. Each case must end with a one-line
``Error:`` (or a skipped file with its reason), never a traceback, and must leave the user's files
as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import SR, TINY_CLI_OPTIONS, synth_song, write_tracks
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genre_cnn.cli import main
from genre_cnn.data.build import build_dataset
from genre_cnn.data.dataset import load_dataset
from genre_cnn.data.store import DATASET_FOLDER
from genre_cnn.errors import AudioDecodeError, DatasetError, ModelError
from genre_cnn.inference.classifier import classify, load_classifier
from genre_cnn.runtime.files import check_output_folder
from genre_cnn.signal.audio import load_audio


def run(*args, cwd=None):
    """Invoke the CLI in-process; return (exit code, output). A traceback fails the test."""
    runner = CliRunner()
    if cwd is not None:
        previous = os.getcwd()
        os.chdir(cwd)
    try:
        result = runner.invoke(main, [str(a) for a in args], catch_exceptions=True)
    finally:
        if cwd is not None:
            os.chdir(previous)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback for {args}: {result.exception!r}\n{result.output}")
    return result.exit_code, result.output


def snapshot(folder: Path) -> dict:
    """Every file below ``folder`` with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- Outputs aimed at the user's files -------------------------------------------------------------


@pytest.fixture
def user_folder(tmp_path) -> Path:
    folder = tmp_path / "my_folder"
    folder.mkdir()
    (folder / "thesis.docx").write_bytes(b"my only copy")
    (folder / "notes").mkdir()
    (folder / "notes" / "ideas.txt").write_text("keep me")
    return folder


def test_build_dataset_refuses_to_replace_a_folder_of_the_users_files(tracks_dir, user_folder):
    before = snapshot(user_folder)
    code, output = run("build-dataset", tracks_dir, "--out", user_folder, *TINY_CLI_OPTIONS)
    assert code == 1
    assert output.startswith(f"Error: {user_folder}: holds files that are not a genre-cnn dataset (notes, thesis.docx)")
    assert "choose a new folder" in output
    assert snapshot(user_folder) == before


def test_build_dataset_refuses_to_write_into_the_tracks_folder(tracks_dir):
    before = snapshot(tracks_dir)
    code, output = run("build-dataset", tracks_dir, "--out", tracks_dir, *TINY_CLI_OPTIONS)
    assert code == 1 and f"Error: {tracks_dir}: is the input {tracks_dir}" in output
    code, output = run("build-dataset", tracks_dir, "--out", tracks_dir / "tones" / "data", *TINY_CLI_OPTIONS)
    assert code == 1 and "lies inside the input" in output
    code, output = run("build-dataset", tracks_dir, "--out", tracks_dir.parent, *TINY_CLI_OPTIONS)
    assert code == 1 and "holds the input" in output
    assert snapshot(tracks_dir) == before


def test_build_dataset_refuses_an_existing_file_as_out(tracks_dir, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("dear diary")
    code, output = run("build-dataset", tracks_dir, "--out", notes, *TINY_CLI_OPTIONS)
    assert code == 1 and f"Error: {notes}: is an existing file, not a dataset folder" in output
    assert notes.read_text() == "dear diary"
    assert not list(tmp_path.glob(".notes.txt.*")), "no leftovers beside the file"


def test_out_dot_is_refused_with_a_message_not_a_traceback(tracks_dir, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    code, output = run("build-dataset", tracks_dir, "--out", ".", *TINY_CLI_OPTIONS, cwd=work)
    assert code == 1 and "Error: .: is the current folder" in output


def test_fit_refuses_to_replace_a_dataset_with_a_model(trained):
    dataset = trained["dataset"]
    before = snapshot(dataset)
    code, output = run("fit", "--data", dataset, "--model-dir", dataset, "--epochs", "1")
    assert code == 1 and f"Error: {dataset}: is the input {dataset}" in output
    other = trained["root"] / "other_dataset"
    shutil.copytree(dataset, other)
    code, output = run("fit", "--data", trained["dataset"], "--model-dir", other, "--epochs", "1")
    assert code == 1 and f"{other}: holds files that are not a genre-cnn model" in output
    assert snapshot(dataset) == before


def test_an_empty_folder_or_a_previous_dataset_may_be_replaced(tracks_dir, tiny_config, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output_folder(empty, kind=DATASET_FOLDER, inputs=[tracks_dir]) == empty
    build_dataset(tracks_dir, out=empty, config=tiny_config, workers=1)
    build_dataset(tracks_dir, out=empty, config=tiny_config, workers=1, seed=1)  # a dataset: replaced
    assert load_dataset(empty).features.shape[0] > 0
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")], "no .old/.tmp leftovers"


@pytest.mark.parametrize("command", [
    ["cv", "--folds", "2", "--epochs", "1", "--out"],
    ["evaluate", "--out"],
], ids=["cv", "evaluate"])
def test_other_outputs_refuse_files_and_foreign_folders(trained, user_folder, tmp_path, command):
    model = trained["result"].model_dir
    target = tmp_path / "a_file.txt"
    target.write_text("mine")
    args = {"cv": ["--data", trained["dataset"]], "evaluate": ["--model", model, trained["tracks"]]}[command[0]]
    code, output = run(*command, target, *args)
    assert code == 1 and f"Error: {target}: is an existing file" in output
    assert target.read_text() == "mine"
    if command[0] == "cv":
        before = snapshot(user_folder)
        code, output = run(*command, user_folder, *args)
        assert code == 1 and "holds files that are not a genre-cnn cross-validation result" in output
        assert snapshot(user_folder) == before


def test_timeline_out_that_is_a_file_is_an_error_not_a_traceback(trained, tmp_path):
    song = tmp_path / "long.wav"
    soundfile.write(song, synth_song("tones", 1, seconds=4.0), SR)
    target = tmp_path / "timelines"
    target.write_text("not a folder")
    code, output = run("classify", "--model", trained["result"].model_dir, "--timeline", "--window", "2",
                       "--out", target, song)
    assert code == 1 and f"Error: {target}: is an existing file, not a folder for the timeline files" in output


# --- Bad bytes -------------------------------------------------------------------------------------


def _sample_rate_zero_mp3(path: Path) -> Path:
    """An ID3 tag followed by an MPEG frame header whose sample-rate index is the reserved 3.

    libsndfile opens it as mp3 and reports a sample rate of 0 (seen in the wild with random bytes).
    """
    header = bytes([0xFF, 0xFB, 0x9C, 0x00])  # MPEG-1 layer III, 128 kbps, sample-rate index 3 (reserved)
    rng = np.random.default_rng(0)
    path.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + (header + rng.bytes(413)) * 20)
    return path


def _decodes_or_explains(path: Path) -> None:
    try:
        load_audio(path, sr=SR)
    except AudioDecodeError as exc:
        message = str(exc)
        assert message.startswith(str(path)) and "\n" not in message


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("size", [1, 17, 418, 4096, 65536])
@pytest.mark.parametrize("suffix", [".mp3", ".wav", ".ogg", ".flac"])
def test_random_bytes_are_an_explained_decode_error(tmp_path, seed, size, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    _decodes_or_explains(path)


def _valid_files(folder: Path) -> list[Path]:
    y = synth_song("chirps", 2, seconds=1.5)
    paths = []
    for fmt, ext in (("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")):
        path = folder / f"valid.{ext}"
        soundfile.write(path, y, SR, format=fmt)
        paths.append(path)
    return paths


def test_every_header_truncated_at_many_offsets_is_explained(tmp_path):
    cases = 0
    for valid in _valid_files(tmp_path):
        data = valid.read_bytes()
        for cut in sorted(set(list(range(0, 80, 3)) + list(np.linspace(80, len(data) - 1, 12).astype(int)))):
            damaged = tmp_path / f"cut_{cut}{valid.suffix}"
            damaged.write_bytes(data[:cut])
            _decodes_or_explains(damaged)
            damaged.unlink()
            cases += 1
    assert cases > 100


def test_a_sample_rate_of_zero_is_a_skip_reason_not_a_crash(tmp_path):
    bad = _sample_rate_zero_mp3(tmp_path / "zero_rate.mp3")
    with pytest.raises(AudioDecodeError, match=f"^{bad}: cannot decode audio"):
        load_audio(bad, sr=SR)


def test_one_bad_file_never_takes_the_others_down(tmp_path, tiny_config, trained):
    tracks = write_tracks(tmp_path / "tracks", songs=4, seconds=2.0)
    _sample_rate_zero_mp3(tracks / "tones" / "zero_rate.mp3")
    (tracks / "chirps" / "random.mp3").write_bytes(np.random.default_rng(3).bytes(5000))
    report = build_dataset(tracks, out=tmp_path / "dataset", config=tiny_config, workers=2,
                           val_fraction=0.25, test_fraction=0.25)
    skipped = {Path(entry["song"]).name: entry["reason"] for entry in report.summary.skipped}
    assert set(skipped) == {"zero_rate.mp3", "random.mp3"}
    assert all("cannot decode audio" in reason for reason in skipped.values())
    for workers in (1, 2):
        results = classify([tracks / "tones"], model=trained["result"].model_dir, workers=workers)
        bad = [r for r in results if not r.ok]
        assert [Path(r.path).name for r in bad] == ["zero_rate.mp3"]
        assert sum(r.ok for r in results) == 4


def test_classify_json_and_timeline_survive_a_sample_rate_of_zero(tmp_path, trained):
    bad = _sample_rate_zero_mp3(tmp_path / "zero_rate.mp3")
    model = trained["result"].model_dir
    result = CliRunner().invoke(main, ["classify", "--model", str(model), "--json", str(bad)])
    assert result.exit_code == 1 and "cannot decode audio" in json.loads(result.stdout)[0]["error"]
    code, output = run("classify", "--model", model, "--timeline", "--window", "1", "--out", tmp_path / "t", bad)
    assert code == 1 and f"Error: {bad}: cannot decode audio" in output


def test_files_that_need_ffmpeg_are_listed_as_skipped_with_the_reason(tmp_path, tiny_config, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    tracks = write_tracks(tmp_path / "tracks", songs=4, seconds=2.0)
    for suffix in (".m4a", ".aac", ".wma"):
        (tracks / "tones" / f"phone{suffix}").write_bytes(np.random.default_rng(1).bytes(3000))
    report = build_dataset(tracks, out=tmp_path / "dataset", config=tiny_config, workers=1,
                           val_fraction=0.25, test_fraction=0.25)
    reasons = {Path(entry["song"]).name: entry["reason"] for entry in report.summary.skipped}
    assert set(reasons) == {"phone.m4a", "phone.aac", "phone.wma"}
    assert reasons["phone.m4a"].endswith(".m4a files need ffmpeg to be decoded; install it (apt-get install "
                                         "ffmpeg, brew install ffmpeg) or convert the file to mp3/flac")


def test_a_file_that_decodes_to_almost_nothing_is_not_audio(tmp_path):
    """A few frames out of a large file (a half-decoded random file) is undecodable, not 'too short'."""
    path = tmp_path / "tiny.wav"
    soundfile.write(path, np.zeros(50, np.float32), SR)
    with open(path, "ab") as handle:  # trailing junk that no decoder reads as samples
        handle.write(np.random.default_rng(0).bytes(1_000_000))
    with pytest.raises(AudioDecodeError, match="bytes: the bytes are not audio"):
        load_audio(path, sr=SR)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\x00"),
                    min_size=1, max_size=24).filter(lambda s: s not in {".", ".."} and not s.startswith(".")))
def test_any_file_name_round_trips_through_a_dataset(tmp_path_factory, tiny_config, name):
    root = tmp_path_factory.mktemp("names")
    tracks = write_tracks(root / "tracks", genres=("tones", "noise"), songs=3, seconds=1.2, fmt="WAV")
    odd = tracks / "tones" / f"{name}.wav"
    soundfile.write(odd, synth_song("tones", 9, seconds=1.2), SR)
    dataset = load_dataset(build_dataset(tracks, out=root / "dataset", config=tiny_config, workers=1,
                                         val_fraction=0, test_fraction=0).path)
    assert f"tones/{name}.wav" in set(dataset.songs.tolist())


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses file names that are not UTF-8")
def test_latin1_file_names_are_used_and_round_trip(tmp_path, tiny_config):
    tracks = write_tracks(tmp_path / "tracks", songs=3, seconds=1.2, fmt="WAV")
    raw = os.fsencode(tracks / "tones") + b"/caf\xe9.wav"
    soundfile.write(raw, synth_song("tones", 7, seconds=1.2), SR, format="WAV")
    out = tmp_path / "dataset"
    code, output = run("build-dataset", tracks, "--out", out, *TINY_CLI_OPTIONS, "--val-fraction", "0",
                       "--test-fraction", "0")
    assert code == 0, output
    songs = set(load_dataset(out).songs.tolist())
    assert "tones/" + os.fsdecode(b"caf\xe9.wav") in songs
    rebuilt = build_dataset(tracks, out=out, config=load_dataset(out).feature_config, workers=1,
                            val_fraction=0, test_fraction=0)
    assert rebuilt.summary.decoded_songs == 0, "cache keys round-trip too"


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses file names that are not UTF-8")
def test_every_file_of_a_dataset_is_valid_utf8_whatever_the_file_names(tmp_path, tiny_config):
    import csv

    def read_strictly(path):  # as other tools read them (pandas.read_csv, a spreadsheet): UTF-8 or an error
        with open(path, newline="", encoding="utf-8", errors="strict") as handle:
            return list(csv.DictReader(handle))

    tracks = write_tracks(tmp_path / "tracks", songs=3, seconds=1.2, fmt="WAV")
    soundfile.write(os.fsencode(tracks / "tones") + b"/caf\xe9 latin1.wav", synth_song("tones", 7, seconds=1.2), SR,
                    format="WAV")
    (Path(os.fsdecode(os.fsencode(tracks / "noise") + b"/bro\xefken \\xe9.wav"))).write_bytes(b"not audio")
    out = tmp_path / "dataset"
    code, output = run("build-dataset", tracks, "--out", out, *TINY_CLI_OPTIONS, "--val-fraction", "0",
                       "--test-fraction", "0")
    assert code == 0, output

    for name in ("manifest.csv", "songs.csv", "skipped.csv", "summary.json"):
        (out / name).read_bytes().decode("utf-8")  # strict: raises on any invalid byte
    manifest = read_strictly(out / "manifest.csv")
    assert "tones/caf\\xe9 latin1.wav" in {row["song"] for row in manifest}, "the undecodable byte, as \\xNN"
    assert [row["song"] for row in read_strictly(out / "skipped.csv")] == ["noise/bro\\xefken \\\\xe9.wav"], \
        "a real backslash is doubled, so the escape is reversible"
    assert "tones/" + os.fsdecode(b"caf\xe9 latin1.wav") in set(load_dataset(out).songs.tolist())
    rebuilt = build_dataset(tracks, out=out, config=load_dataset(out).feature_config, workers=1,
                            val_fraction=0, test_fraction=0)
    assert (rebuilt.summary.reused_songs, rebuilt.summary.decoded_songs) == (10, 1), \
        "the rebuild finds every song again (and retries only the unreadable one)"


def test_a_symlink_loop_in_a_metadata_csv_is_skipped_with_its_reason(tmp_path, tiny_config):
    from genre_cnn.data.metadata import scan_metadata

    tracks = write_tracks(tmp_path / "audio", songs=3, seconds=1.2, fmt="WAV")
    os.symlink("loop_b.wav", tracks / "tones" / "loop_a.wav")
    os.symlink("loop_a.wav", tracks / "tones" / "loop_b.wav")
    lines = ["path,genre"] + [f"{p.relative_to(tracks).as_posix()},{p.parent.name}"
                              for p in sorted(tracks.rglob("*.wav")) if not p.is_symlink()]
    lines.append("tones/loop_a.wav,tones")
    (tmp_path / "meta.csv").write_text("\n".join(lines) + "\n")
    songs = scan_metadata(tmp_path / "meta.csv", audio_root=tracks, path_column="path", label_column="genre")
    report = build_dataset(songs, out=tmp_path / "dataset", config=tiny_config, workers=1, val_fraction=0,
                           test_fraction=0)
    assert [entry["reason"] for entry in report.summary.skipped] == [
        f"{tracks / 'tones' / 'loop_a.wav'}: is a symbolic link loop; point it at an audio file"]


def test_an_unreadable_sub_folder_is_reported(tmp_path, tiny_config, monkeypatch):
    tracks = write_tracks(tmp_path / "tracks", songs=3, seconds=1.2, fmt="WAV")
    locked = tracks / "tones" / "locked"
    locked.mkdir()
    real_walk = os.walk

    def walk(top, **kwargs):  # tests run as root, who can read anything: refuse like a kernel would
        onerror = kwargs.get("onerror")
        for entry in real_walk(top, **kwargs):
            if Path(entry[0]) == locked:
                if onerror:
                    onerror(PermissionError(13, "Permission denied", str(locked)))
                continue
            yield entry

    monkeypatch.setattr(os, "walk", walk)
    report = build_dataset(tracks, out=tmp_path / "dataset", config=tiny_config, workers=1, val_fraction=0,
                           test_fraction=0)
    assert f"{locked}: cannot be read (permission denied), skipped" in report.summary.notes


# --- Damaged datasets and models -------------------------------------------------------------------

DATASET_DAMAGE = {
    "classes.json": [b"42", b'{"a": 1}', b'["only"]', b"\xff\xfe", b""],
    "feature_config.json": [b"[]", b'{"sr": "x"}', b"{", b""],
    "manifest.csv": [b"\xff\xfe\x00garbage", b"", b"song,label\nx", np.random.default_rng(0).bytes(500)],
    "features.npy": [b"", b"\x93NUMPY", np.random.default_rng(1).bytes(300)],
}


@pytest.mark.parametrize("name,damage", [(n, d) for n, ds in DATASET_DAMAGE.items() for d in ds],
                         ids=[f"{n}-{i}" for n, ds in DATASET_DAMAGE.items() for i in range(len(ds))])
def test_every_damaged_dataset_file_says_rebuild(trained, tmp_path, name, damage):
    dataset = tmp_path / "dataset"
    shutil.copytree(trained["dataset"], dataset)
    (dataset / name).write_bytes(damage)
    with pytest.raises(DatasetError) as caught:
        load_dataset(dataset)
    message = str(caught.value)
    assert "rebuild" in message and "\n" not in message and "allow_pickle" not in message
    code, output = run("fit", "--data", dataset, "--epochs", "1", "--model-dir", tmp_path / "model")
    assert code == 1 and output.startswith("Error: ") and "rebuild" in output


def test_a_pickled_features_file_gets_no_advice_to_load_it_unsafely(trained, tmp_path):
    dataset = tmp_path / "dataset"
    shutil.copytree(trained["dataset"], dataset)
    np.save(dataset / "features.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="features.npy: is damaged .*; rebuild the dataset$") as caught:
        load_dataset(dataset)
    assert "allow_pickle" not in str(caught.value)


MODEL_DAMAGE = {
    "config.json": [b"3", b'{"classes": 3}', b'{"classes": ["a"]}', b"{", b"\xff"],
    "model.tflite": [b"", b"TFL3", np.random.default_rng(2).bytes(1000)],
    "model.keras": [b"", b"PK\x03\x04broken", np.random.default_rng(3).bytes(1000)],
    "mel_filterbank.npy": [b"", np.random.default_rng(4).bytes(200)],
}


@pytest.mark.parametrize("name,damage", [(n, d) for n, ds in MODEL_DAMAGE.items() for d in ds],
                         ids=[f"{n}-{i}" for n, ds in MODEL_DAMAGE.items() for i in range(len(ds))])
def test_every_damaged_model_file_says_refit(trained, tmp_path, name, damage):
    model = tmp_path / "model"
    shutil.copytree(trained["result"].model_dir, model)
    (model / name).write_bytes(damage)
    backend = "keras" if name == "model.keras" else "auto"
    with pytest.raises(ModelError) as caught:
        load_classifier(model, backend=backend)
    message = str(caught.value)
    assert message.startswith(str(model)) and ("refit" in message or "re-export" in message)
    assert "\n" not in message


def test_a_dataset_folder_given_as_model_says_so(trained):
    code, output = run("classify", "--model", trained["dataset"], trained["tracks"] / "tones")
    assert code == 1
    assert f"Error: {trained['dataset']}: is a dataset folder, not a model; train one on it with 'genre-cnn fit" \
           in output


# --- Leftovers -------------------------------------------------------------------------------------


def test_tensorflow_leaves_no_autograph_files_in_the_temp_folder(trained, tmp_path):
    temp = tmp_path / "temp"
    temp.mkdir()
    script = ("from genre_cnn.inference.classifier import load_classifier; import numpy as np; "
              f"c = load_classifier({str(trained['result'].model_dir)!r}, backend='keras'); "
              "c.predict_chunks(np.zeros((2, *c.feature_config.input_shape), 'float32'))")
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "TMPDIR": str(temp)},
                   capture_output=True)
    assert not list(temp.rglob("__autograph_generated_file*"))
