"""classify --timeline: genre probabilities window by window for long recordings."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import SR, synth_song

from genre_cnn.cli import main
from genre_cnn.errors import ConfigError
from genre_cnn.inference.classifier import load_classifier
from genre_cnn.inference.prediction import song_probabilities
from genre_cnn.inference.timeline import classify_timeline, classify_timelines, write_timeline


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """12 s: 4 s of tones, 4 s of silence, 4 s of chirps."""
    y = np.concatenate([synth_song("tones", 1, seconds=4), np.zeros(4 * SR, np.float32),
                        synth_song("chirps", 1, seconds=4)])
    path = tmp_path_factory.mktemp("rec") / "set.wav"
    soundfile.write(path, y, SR)
    return path


@pytest.fixture(scope="module")
def classifier(trained):
    return load_classifier(trained["result"].model_dir, backend="keras")


def test_windows_of_one_chunk_are_the_chunks_classify_combines(recording, classifier):
    timeline = classify_timeline(recording, classifier)
    np.testing.assert_allclose(timeline.starts, np.arange(12))
    np.testing.assert_allclose(timeline.ends, np.arange(1, 13))
    assert timeline.n_chunks.tolist() == [1] * 4 + [0] * 4 + [1] * 4  # silent chunks are dropped
    assert timeline.genres()[4:8] == [None] * 4 and np.isnan(timeline.probabilities[4:8]).all()
    song = classifier.classify_file(recording)
    heard = timeline.probabilities[timeline.n_chunks > 0]
    np.testing.assert_allclose(song_probabilities(heard), list(song.probabilities.values()), rtol=1e-5)


def test_long_windows_combine_the_chunks_inside_them_as_a_song_does(recording, classifier):
    chunks = classify_timeline(recording, classifier, window=1, hop=0.5)
    assert len(chunks.starts) == 23 and chunks.starts[1] == 0.5
    timeline = classify_timeline(recording, classifier, window=3, hop=2)
    np.testing.assert_allclose(timeline.starts, [0, 2, 4, 6, 8])
    np.testing.assert_allclose(timeline.ends, [3, 5, 7, 9, 11])
    # chunks are cut every second (the largest step <= 1 chunk that divides the hop): 0-3 s holds three
    ones = classify_timeline(recording, classifier)
    assert timeline.n_chunks.tolist() == [3, 2, 0, 1, 3]  # minus the silent chunks at 4-7 s
    np.testing.assert_allclose(timeline.probabilities[0], song_probabilities(ones.probabilities[:3]), rtol=1e-5)
    np.testing.assert_allclose(timeline.probabilities.sum(axis=1)[timeline.n_chunks > 0], 1.0, rtol=1e-5)


def test_window_shorter_than_a_chunk_is_refused(recording, classifier):
    with pytest.raises(ConfigError, match=r"window=0.5 is shorter than the model's chunks \(1.00 s\)"):
        classify_timeline(recording, classifier, window=0.5)


def test_files_written_json_csv_and_png(recording, classifier, tmp_path):
    paths = write_timeline(classify_timeline(recording, classifier, window=2), tmp_path / "out")
    saved = json.loads(paths["json"].read_text())
    assert [w["start"] for w in saved["windows"]] == [0, 2, 4, 6, 8, 10]
    assert saved["windows"][2]["probabilities"] is None and saved["windows"][2]["chunks"] == 0
    lines = paths["csv"].read_text().splitlines()
    assert lines[0] == "start,end,genre,chunks,chirps,noise,tones" and len(lines) == 7
    assert paths["png"].stat().st_size > 5000
    assert not list((tmp_path / "out").glob("*.partial"))


def test_timeline_command(recording, trained, tmp_path):
    model = str(trained["result"].model_dir)
    broken = tmp_path / "broken.mp3"
    broken.write_text("not audio")
    runner = CliRunner()
    result = runner.invoke(main, ["classify", str(recording), str(broken), "--model", model, "--timeline",
                                  "--window", "4", "--out", str(tmp_path / "tl")])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{recording}  (3 windows; written to {tmp_path / 'tl' / 'set.timeline.png'}")
    assert lines[2].startswith("  0:04.0-0:08.0  -  (silent)")
    assert "broken.mp3" in result.stderr and "1 of 2 file(s) could not be classified" in result.stderr
    as_json = runner.invoke(main, ["classify", str(recording), "--model", model, "--timeline", "--json",
                                   "--out", str(tmp_path / "tl")])
    assert len(json.loads(as_json.stdout)[0]["windows"]) == 12
    fine = runner.invoke(main, ["classify", str(recording), "--model", model, "--timeline", "--hop", "0.001"])
    assert fine.exit_code == 1 and "Traceback" not in fine.output
    assert fine.output.startswith("Error: --hop 0.001 is below the finest timeline step of 0.5 s")
    stray = runner.invoke(main, ["classify", str(recording), "--model", model, "--window", "3"])
    assert stray.exit_code == 2 and "--window only apply with --timeline" in stray.output


def test_timelines_of_a_folder_one_outcome_per_file_errors_included(recording, trained, tmp_path):
    folder = tmp_path / "sets"
    folder.mkdir()
    (folder / "set.wav").write_bytes(recording.read_bytes())
    (folder / "broken.mp3").write_text("not audio")
    outcomes = {Path(o.path).name: o for o in classify_timelines(
        [folder], model=trained["result"].model_dir, window=4, out=tmp_path / "tl")}
    assert set(outcomes) == {"set.wav", "broken.mp3"}
    assert outcomes["set.wav"].ok and len(outcomes["set.wav"].timeline.starts) == 3
    assert outcomes["set.wav"].written["csv"] == tmp_path / "tl" / "set.timeline.csv"
    assert not outcomes["broken.mp3"].ok and "broken.mp3" in outcomes["broken.mp3"].error


def test_timelines_of_a_folder_without_audio_say_so(trained, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no audio files found in .*empty"):
        list(classify_timelines([tmp_path / "empty"], model=trained["result"].model_dir, out=tmp_path / "tl"))
    result = CliRunner().invoke(main, ["classify", str(tmp_path / "empty"), "--model",
                                       str(trained["result"].model_dir), "--timeline"])
    assert result.exit_code == 1 and "no audio files found in" in result.output
