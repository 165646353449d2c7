"""`genre-cnn monitor`: shifted audio is flagged by the check that should flag it; undrifted audio is not."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from click.testing import CliRunner
from scipy import signal

from genre_cnn.cli import main
from genre_cnn.config import FeatureConfig, TrainConfig
from genre_cnn.data.build import build_dataset
from genre_cnn.errors import ModelError
from genre_cnn.inference.classifier import open_classifier
from genre_cnn.monitoring import (
    DRIFT_EXIT_CODE,
    PROFILE_FILE,
    MonitorError,
    Profile,
    SongProfiler,
    compare,
    load_profile,
    monitor,
    profile_songs,
)
from genre_cnn.training.fit import fit

pytestmark = pytest.mark.slow  # fits a model on real songs

ROOT = Path(__file__).resolve().parents[1]
KNOWN = ("chiptune", "electronic")  # the model learns these; orchestral stays unseen
CONFIG = FeatureConfig(sr=16000, chunk_samples=32000, hop_samples=32000, n_fft=1024, hop_length=512, n_mels=48)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor")
    for genre in KNOWN:
        shutil.copytree(ROOT / "tracks" / genre, root / "tracks" / genre)
    # 60 % of the songs held out: the reference of the model's view (songs it never trained on) needs them
    build_dataset(root / "tracks", out=root / "dataset", config=CONFIG, workers=1, val_fraction=0.25,
                  test_fraction=0.35)
    result = fit(root / "dataset", config=TrainConfig(epochs=10, batch_size=16), name="known",
                 models_root=root / "models", verbose=0, log=lambda message: None)
    return {"root": root, "model": result.model_dir, "dataset": root / "dataset"}


def shifted_songs(folder: Path, shift: str, *, seed: int = 0, n: int = 10) -> Path:
    """``n`` in-distribution demo songs (or unseen-genre ones), changed by ``shift``, as wav files."""
    rng = np.random.default_rng(seed)
    genres = ("orchestral",) if shift == "unseen genre" else KNOWN
    songs = [song for genre in genres for song in sorted((ROOT / "tracks" / genre).glob("*.mp3"))]
    folder.mkdir(parents=True)
    for path in [songs[i] for i in rng.choice(len(songs), size=min(n, len(songs)), replace=False)]:
        y, sr = soundfile.read(path, dtype="float32")
        if shift == "gain -12 dB":
            y = y * 10 ** (-12 / 20)
        elif shift == "low-pass 4 kHz":
            y = signal.sosfiltfilt(signal.butter(8, 4000, fs=sr, output="sos"), y)
        elif shift == "resampled to 8 kHz and back":
            y = soxr.resample(soxr.resample(y, sr, 8000), 8000, sr)
        elif shift == "white noise 10 dB SNR":
            y = y + rng.standard_normal(len(y)) * np.sqrt(np.mean(y**2) / 10)
        soundfile.write(folder / f"{path.stem}.wav", np.clip(y, -1, 1), sr)
    return folder


def test_fit_saves_a_small_reference_profile(fitted):
    profile = load_profile(fitted["model"])
    assert profile.n_songs == 22 and profile.classes == KNOWN
    assert profile.band_means.shape == (22, CONFIG.n_mels)
    assert 0 < len(profile.genres) < 22  # the model's view: only songs it did not train on
    # the default head's standardised spectral summary: 6 statistics a band, rhythm, co-movement
    assert profile.embeddings.shape == (len(profile.genres), 6 * CONFIG.n_mels + 8 * 12 + 16 * 15 // 2)
    assert (fitted["model"] / PROFILE_FILE).stat().st_size < 200_000


def test_fit_profiles_the_dataset_without_decoding_any_song_and_as_if_it_had(tmp_path, monkeypatch):
    """The reference profile comes from what the dataset holds: levels measured while it was built, the
    stored log-mel chunks, the network run on them; and it equals the profile made from the files."""
    from genre_cnn.data.cache import song_files
    from genre_cnn.signal import audio

    tracks = tmp_path / "tracks"
    for genre in KNOWN:
        (tracks / genre).mkdir(parents=True)
        for song in sorted((ROOT / "tracks" / genre).glob("*.mp3"))[:5]:
            shutil.copy(song, tracks / genre / song.name)
    build_dataset(tracks, out=tmp_path / "dataset", config=CONFIG, workers=1, val_fraction=0.3, test_fraction=0.3)
    opened, open_source = [], audio._open_source
    monkeypatch.setattr(audio, "_open_source", lambda path: opened.append(path) or open_source(path))
    result = fit(tmp_path / "dataset", config=TrainConfig(epochs=1, batch_size=16), model_dir=tmp_path / "model",
                 verbose=0, log=lambda message: None)
    assert opened == []  # fit read no audio file: not to train, not to profile

    saved = load_profile(result.model_dir)
    files = song_files(tmp_path / "dataset")
    with open(tmp_path / "dataset" / "manifest.csv", newline="") as manifest:
        splits = {row["song"]: row["split"] for row in csv.DictReader(manifest)}
    decoded, skipped = Profile.from_files(list(files.values()), open_classifier(result.model_dir),
                                          unseen=[splits[name] != "train" for name in files])
    assert not skipped and len(opened) > 0
    for field in ("seconds", "sample_rate", "channels", "loudness_db", "clipping", "silence", "genres"):
        np.testing.assert_array_equal(getattr(saved, field), getattr(decoded, field), err_msg=field)
    np.testing.assert_allclose(saved.band_means, decoded.band_means, atol=1e-3)
    np.testing.assert_allclose(saved.top_probability, decoded.top_probability, atol=1e-5)
    np.testing.assert_allclose(saved.embeddings, decoded.embeddings, atol=1e-4)


def test_a_dataset_built_before_levels_were_recorded_is_profiled_from_its_files(fitted, tmp_path):
    from genre_cnn.data.cache import song_levels
    from genre_cnn.data.dataset import load_dataset

    older = tmp_path / "dataset"
    shutil.copytree(fitted["dataset"], older)
    index = older / "songs.csv"
    with open(index, newline="") as handle:
        rows = [row[:9] for row in csv.reader(handle)]  # the columns of an older songs.csv
    with open(index, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    classifier = open_classifier(fitted["model"])
    again, skipped = Profile.from_dataset(load_dataset(older), classifier)
    stored, _ = Profile.from_dataset(load_dataset(fitted["dataset"]), classifier)
    assert not skipped and again.n_songs == stored.n_songs == 22
    np.testing.assert_allclose(again.loudness_db, stored.loudness_db, atol=1e-6)
    np.testing.assert_allclose(again.top_probability, stored.top_probability, atol=1e-5)

    # rebuilding it decodes its songs once more (the old rows have no levels to reuse), and then they are recorded
    report = build_dataset(fitted["root"] / "tracks", out=older, config=CONFIG, workers=1, val_fraction=0.25,
                           test_fraction=0.35)
    assert report.summary.decoded_songs == 22 and song_levels(older) is not None


def test_a_dataset_of_other_features_is_profiled_from_its_files(fitted, tmp_path):
    """The stored chunks are the network's inputs only when they were made with the model's own features."""
    import dataclasses

    from genre_cnn.data.dataset import load_dataset

    build_dataset(fitted["root"] / "tracks", out=tmp_path / "other", config=dataclasses.replace(CONFIG, n_mels=32),
                  workers=1, val_fraction=0.25, test_fraction=0.35)
    classifier = open_classifier(fitted["model"])
    other, skipped = Profile.from_dataset(load_dataset(tmp_path / "other"), classifier)
    stored, _ = Profile.from_dataset(load_dataset(fitted["dataset"]), classifier)
    assert not skipped and other.band_means.shape == stored.band_means.shape == (22, CONFIG.n_mels)
    np.testing.assert_allclose(other.top_probability, stored.top_probability, atol=1e-5)


def test_a_profiled_song_has_the_genre_and_probability_classify_gives_it(fitted):
    classifier = open_classifier(fitted["model"])
    song = ROOT / "tracks" / "chiptune" / "goattracker_dojo.mp3"
    profiled = SongProfiler(classifier).profile(song)
    prediction = classifier.classify_file(song)
    assert profiled["genre"] == prediction.genre
    assert profiled["probability"] == pytest.approx(max(prediction.probabilities.values()), abs=1e-4)


def test_unchanged_songs_are_not_flagged(fitted, tmp_path):
    report = monitor(fitted["model"], [shifted_songs(tmp_path / "same", "none")], min_songs=5)
    assert not report.drifted, [c for c in report.checks if c.drifted]
    assert report.exit_code == 0


@pytest.mark.parametrize("shift, check", [
    ("gain -12 dB", "loudness"),
    ("low-pass 4 kHz", "spectral balance"),
    ("resampled to 8 kHz and back", "spectral balance"),
    ("white noise 10 dB SNR", "spectral balance"),
])
def test_a_shift_is_flagged_by_the_check_that_should_flag_it(fitted, tmp_path, shift, check):
    report = monitor(fitted["model"], [shifted_songs(tmp_path / "in", shift)], min_songs=5)
    verdicts = {c.name: c for c in report.checks}
    assert verdicts[check].drifted, verdicts[check]
    assert not verdicts["duration"].drifted and not verdicts["sample rate / channels"].drifted
    assert report.exit_code == DRIFT_EXIT_CODE


def test_songs_of_a_genre_the_model_never_saw_are_flagged(fitted, tmp_path):
    report = monitor(fitted["model"], [shifted_songs(tmp_path / "in", "unseen genre", n=12)], min_songs=5)
    verdicts = {c.name: c for c in report.checks}
    assert report.drifted and verdicts["spectral balance"].drifted
    # the model's view moves too, though with 13 reference songs it is not significant after Holm
    assert min(verdicts[name].p_value for name in ("embeddings", "predicted genres", "confidence")) < 0.05


def test_false_alarms_stay_below_alpha_over_20_seeded_splits(fitted):
    """Two random halves of the same songs: any drift verdict is a false alarm."""
    songs = [p for genre in KNOWN for p in sorted((ROOT / "tracks" / genre).glob("*.mp3"))]
    profiler = SongProfiler(open_classifier(fitted["model"]))
    profiled, skipped = profile_songs(songs, profiler)
    assert not skipped
    alarms = 0
    for seed in range(20):
        order = np.random.default_rng(seed).permutation(len(profiled))
        half = len(order) // 2
        reference, incoming = (Profile.from_songs(KNOWN, [profiled[i] for i in part]) for part in
                               (order[:half], order[half:]))
        alarms += compare(reference, incoming, alpha=0.05, seed=seed, permutations=200).drifted
    assert alarms <= 2  # expected at most 1 in 20 at alpha 0.05 (Holm is conservative)


def test_a_serve_log_is_monitored_like_the_songs(fitted, tmp_path):
    from genre_cnn.serving import inference, log_record

    inference.start(str(fitted["model"]), "auto")
    lines = [json.dumps(log_record(inference.analyse(str(p), max_seconds=600, profile=True), model="known"))
             for p in sorted(shifted_songs(tmp_path / "quiet", "gain -12 dB").iterdir())]
    (tmp_path / "requests.jsonl").write_text("\n".join(lines) + "\n")
    report = monitor(fitted["model"], [tmp_path / "requests.jsonl"], min_songs=5)
    verdicts = {c.name: c for c in report.checks}
    assert verdicts["loudness"].drifted
    assert verdicts["embeddings"].p_value is None and "serve log" in verdicts["embeddings"].detail


@pytest.mark.parametrize("change, message", [
    ({"band_means": "ragged"}, "field 'band_means' is not a list of numbers"),
    ({"band_means": [1.0, 2.0]}, "field 'band_means' has 2 bands but this model has 48"),
    ({"loudness_db": "loud"}, "field 'loudness_db' is \"loud\", not a number"),
    ({"sample_rate": [44100]}, "field 'sample_rate' is [44100], not a positive whole number"),
    ({"probability": 7}, "field 'probability' is 7, not a number from 0 to 1"),
    ({"genre": None}, "field 'genre' is null, not a string"),
    ({"silence": None}, "field 'silence' is null, not a number from 0 to 1"),
])
def test_a_serve_log_line_of_the_wrong_shape_is_refused_with_its_file_line_and_field(fitted, tmp_path, change,
                                                                                     message):
    from genre_cnn.serving import inference, log_record

    inference.start(str(fitted["model"]), "auto")
    song = sorted((ROOT / "tracks" / KNOWN[0]).glob("*.mp3"))[0]
    good = log_record(inference.analyse(str(song), max_seconds=600, profile=True), model="known")
    if change.get("band_means") == "ragged":
        change = {"band_means": [good["band_means"][:3], good["band_means"]]}
    log = tmp_path / "requests.jsonl"
    log.write_text(json.dumps(good) + "\n" + json.dumps({**good, **change}) + "\n")
    with pytest.raises(MonitorError) as error:
        monitor(fitted["model"], [log], min_songs=2)
    assert str(error.value).startswith(f"{log}:2: {message}")
    result = CliRunner().invoke(main, ["monitor", "--model", str(fitted["model"]), str(log), "--min-songs", "2"])
    assert result.exit_code == 1 and "Traceback" not in result.output and f"{log}:2:" in result.output


def test_serve_log_lines_of_another_model_are_left_out_and_said_so(fitted, tmp_path):
    from genre_cnn.serving import inference, log_record

    inference.start(str(fitted["model"]), "auto")
    songs = sorted(shifted_songs(tmp_path / "songs", "none").iterdir())
    lines = [log_record(inference.analyse(str(p), max_seconds=600, profile=True), model="known") for p in songs]
    lines[3]["model"] = "older-model"
    log = tmp_path / "requests.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = monitor(fitted["model"], [log], min_songs=5)
    assert report.n_incoming == len(songs) - 1
    assert report.skipped == [(f"{log}:4", "written by model 'older-model', not 'known': left out")]
    log.write_text("".join(json.dumps({**line, "model": "older-model"}) + "\n" for line in lines))
    with pytest.raises(MonitorError, match=f"all {len(lines)} line\\(s\\) were left out \\(e.g. {log}:1: written by"):
        monitor(fitted["model"], [log], min_songs=5)


# --- the command ---------------------------------------------------------------------------------

def test_the_command_prints_a_table_writes_a_report_and_exits_3_on_drift(fitted, tmp_path):
    incoming = shifted_songs(tmp_path / "in", "gain -12 dB")
    result = CliRunner().invoke(main, ["monitor", "--model", str(fitted["model"]), str(incoming), "--min-songs", "5",
                                       "--out", str(tmp_path / "report"), "-q"])
    assert result.exit_code == DRIFT_EXIT_CODE, result.output
    assert "loudness" in result.output and "DRIFT" in result.output
    page = (tmp_path / "report" / "report.html").read_text()
    assert "data:image/png;base64," in page and "<script" not in page and "http" not in page.replace("http-equiv", "")
    assert json.loads((tmp_path / "report" / "report.json").read_text())["drifted"] is True
    assert "/in/" not in page  # no per-song data, no file names of the songs


def test_json_output(fitted, tmp_path):
    result = CliRunner().invoke(main, ["monitor", "--model", str(fitted["model"]),
                                       str(shifted_songs(tmp_path / "in", "none")), "--min-songs", "5", "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["drifted"] is False


def test_unreadable_files_are_listed_and_skipped(fitted, tmp_path):
    incoming = shifted_songs(tmp_path / "in", "none")
    (incoming / "broken.mp3").write_bytes(b"not audio at all")
    report = monitor(fitted["model"], [incoming], min_songs=5)
    assert [Path(path).name for path, _ in report.skipped] == ["broken.mp3"]
    assert report.n_incoming == 10


def test_an_empty_folder_is_an_error_not_a_verdict(fitted, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MonitorError, match="no audio files"):
        monitor(fitted["model"], [tmp_path / "empty"])
    result = CliRunner().invoke(main, ["monitor", "--model", str(fitted["model"]), str(tmp_path / "empty")])
    assert result.exit_code == 1 and result.output.startswith("Error:")


def test_too_few_songs_name_min_songs(fitted, tmp_path):
    with pytest.raises(MonitorError, match="only 3 readable song.* fewer than min_songs=8"):
        monitor(fitted["model"], [shifted_songs(tmp_path / "in", "none", n=3)])


def test_a_model_without_a_profile_says_how_to_add_one(fitted, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(fitted["model"], old)
    (old / PROFILE_FILE).unlink()
    with pytest.raises(ModelError, match="--rebuild-profile DATASET"):
        monitor(old, [shifted_songs(tmp_path / "in", "none")], min_songs=5)
    result = CliRunner().invoke(main, ["monitor", "--model", str(old), "--rebuild-profile", str(fitted["dataset"])])
    assert result.exit_code == 0, result.output
    assert load_profile(old).n_songs == 22


def test_a_profile_from_before_songs_were_combined_by_their_geometric_mean_must_be_rebuilt(fitted, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(fitted["model"], old)
    with np.load(old / PROFILE_FILE) as saved:
        arrays = {name: saved[name] for name in saved.files}
    np.savez_compressed(old / PROFILE_FILE, **{**arrays, "version": np.array(1)})
    with pytest.raises(ModelError, match=r"profile.npz: was made by an older genre-cnn \(profile version 1: .*"
                                         r"--rebuild-profile DATASET"):
        load_profile(old)
    result = CliRunner().invoke(main, ["monitor", "--model", str(old), "--rebuild-profile", str(fitted["dataset"])])
    assert result.exit_code == 0, result.output
    assert load_profile(old).n_songs == 22


def test_a_damaged_profile_is_named(fitted, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(fitted["model"], old)
    (old / PROFILE_FILE).write_bytes(b"garbage")
    with pytest.raises(ModelError, match="profile.npz: is damaged"):
        load_profile(old)
