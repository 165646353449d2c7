"""The genre-cnn command: exit codes and the exact lines a user sees."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TINY_CLI_OPTIONS, write_tracks

from genre_cnn import __version__
from genre_cnn.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def run(monkeypatch, tmp_path):
    """Run the CLI in-process from an empty working folder; return the click Result."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_help_is_instant_and_does_not_import_tensorflow():
    code = "import sys; from genre_cnn.cli import main; print('tensorflow' in sys.modules or 'librosa' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    result = subprocess.run([sys.executable, "-m", "genre_cnn", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in main.commands:
        assert command in result.stdout


def test_version(run):
    result = run("--version")
    assert result.exit_code == 0 and result.output == f"genre-cnn, version {__version__}\n"


@pytest.mark.parametrize("command", ["build-dataset", "fit", "classify", "demo", "export", "merge-datasets", "show",
                                     "features", "explore", "baseline", "compare", "evaluate", "cv", "embed"])
def test_every_command_has_help_with_an_example_and_is_in_the_readme(run, command):
    result = run(command, "--help")
    assert result.exit_code == 0 and ("Example:" in result.output or "Examples:" in result.output)
    assert f"genre-cnn {command}" in README.read_text()


def test_build_dataset_prints_the_split_table(run, tmp_path):
    write_tracks(tmp_path / "tracks", songs=5, seconds=3)
    (tmp_path / "tracks" / "licenses").mkdir()
    result = run("build-dataset", "tracks", *TINY_CLI_OPTIONS, "--quiet")
    assert result.exit_code == 0
    assert result.output == "Dataset written to data/dataset\n"
    result = run("build-dataset", "tracks", *TINY_CLI_OPTIONS)
    lines = result.stdout.splitlines()  # the progress bar goes to stderr
    assert lines[0].split() == ["genre", "songs", "train", "songs", "val", "songs", "test", "chunks", "train",
                                "chunks", "val", "chunks", "test"]
    assert lines[2].split() == ["chirps", "3", "1", "1", "9", "3", "3"]
    assert lines[5].split() == ["total", "9", "3", "3", "27", "9", "9"]
    assert "  tracks/licenses: no audio files, not a genre (skipped)" in lines
    assert lines[-1] == "Dataset written to data/dataset"


def test_build_dataset_lists_skipped_files(run, tmp_path):
    write_tracks(tmp_path / "tracks", songs=4, seconds=2)
    (tmp_path / "tracks" / "noise" / "corrupt.mp3").write_bytes(b"\xff\xfb garbage")
    result = run("build-dataset", "tracks", *TINY_CLI_OPTIONS, "--out", "ds")
    assert result.exit_code == 0
    assert "Skipped 1 file(s):" in result.stdout
    assert re.search(r"^  tracks/noise/corrupt\.mp3: cannot decode audio", result.stdout, re.M)


@pytest.mark.parametrize(
    "setup, args, message",
    [
        ("empty", ["build-dataset", "tracks"],
         "Error: tracks: found no genre folder with audio; a classifier needs at least two genres"),
        ("one-genre", ["build-dataset", "tracks"], "Error: tracks: found only the genre 'tones'"),
        ("none", ["build-dataset", "nowhere"], "Error: nowhere: does not exist; pass a folder"),
        ("none", ["fit"], "Error: No dataset at data/dataset. Run 'genre-cnn build-dataset TRACKS_DIR"),
        ("none", ["classify", "x.mp3"], "Error: No model at models. Run 'genre-cnn fit' first, or pass --model DIR"),
        ("none", ["classify", "x.mp3", "--model", "m"], "Error: No model at m. Run 'genre-cnn fit' first"),
    ],
    ids=["empty-folder", "one-genre", "missing-folder", "fit-without-dataset", "classify-without-model",
         "classify-missing-model-dir"],
)
def test_errors_are_one_clear_line(run, tmp_path, setup, args, message):
    if setup == "empty":
        (tmp_path / "tracks").mkdir()
    elif setup == "one-genre":
        write_tracks(tmp_path / "tracks", genres=("tones",), songs=2, seconds=1)
    result = run(*args)
    assert result.exit_code == 1
    assert result.output.startswith(message)
    assert result.output.count("\n") == 1


@pytest.mark.parametrize(
    "args, option",
    [(["build-dataset", ".", "--val-fraction", "1.5"], "--val-fraction"),
     (["build-dataset", ".", "--tail", "wrap"], "--tail"),
     (["fit", "--epochs", "0"], "--epochs"),
     (["classify", "x.mp3", "--top-k", "0"], "--top-k")],
    ids=["fraction", "tail", "epochs", "top-k"],
)
def test_bad_options_exit_2_and_name_the_option(run, args, option):
    result = run(*args)
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output


def test_end_to_end_build_fit_classify(run, tmp_path):
    write_tracks(tmp_path / "tracks", songs=5, seconds=3)
    assert run("build-dataset", "tracks", *TINY_CLI_OPTIONS, "-q").exit_code == 0

    result = run("fit", "--epochs", "2", "--batch-size", "8", "--name", "small")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Training on CPU") or result.output.startswith("Training on GPU")
    assert "Model saved to models/small" in result.output
    assert re.search(r"^  song accuracy: +\d+\.\d%", result.output, re.M)
    assert (tmp_path / "models" / "small" / "history.png").stat().st_size > 1000
    assert (tmp_path / "models" / "small" / "confusion.png").stat().st_size > 1000
    assert (tmp_path / "models" / "small" / "reliability.png").stat().st_size > 1000
    # 3 validation songs: too few to calibrate (tests/test_calibration.py covers calibrated models)
    assert re.search(r"^  calibration: none \(too few songs to fit a temperature on\); expected calibration error",
                     result.output, re.M)
    assert re.search(r"^  musicnn on the same songs: \d+ of \d+ test songs right", result.output, re.M)
    assert re.search(r"^  baseline on the same songs: \d+ of \d+ test songs right", result.output, re.M)

    result = run("classify", "tracks/chirps/chirps_1.mp3", "tracks/noise", "--json")
    assert result.exit_code == 0
    entries = json.loads(result.output)
    assert [e["path"] for e in entries] == ["tracks/chirps/chirps_1.mp3"] + [f"tracks/noise/noise_{i}.mp3"
                                                                           for i in range(5)]
    for entry in entries:
        assert set(entry) == {"path", "genre", "probabilities", "n_chunks", "error", "unsure", "novelty", "unfamiliar"}
        assert set(entry["probabilities"]) == {"chirps", "noise", "tones"}
        assert sum(entry["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert entry["n_chunks"] == 3 and entry["error"] is None

    result = run("classify", "tracks/tones/tones_0.mp3", "--top-k", "2")
    verdict = r"(\w+|unsure: \w+ or \w+)"  # a genre, or the two likeliest when the model is unsure
    assert re.fullmatch(rf"tracks/tones/tones_0\.mp3  {verdict}  \(\w+ \d\.\d\d, \w+ \d\.\d\d; 3 chunks\)\n",
                        result.output)

    (tmp_path / "bad.mp3").write_text("definitely not audio")
    result = run("classify", "bad.mp3", "tracks/tones/tones_1.mp3", "--json")
    assert result.exit_code == 1
    payload = result.stdout
    entries = json.loads(payload)
    assert entries[0]["error"].startswith("bad.mp3: cannot decode audio") and entries[1]["error"] is None
    assert result.stderr.splitlines()[-1] == "Error: 1 of 2 file(s) could not be classified"


def test_quiet_build_still_counts_skipped_files(run, tmp_path):
    tracks = write_tracks(tmp_path / "tracks", songs=3, seconds=2.0)
    (tracks / "tones" / "broken.mp3").write_text("nope")
    result = run("build-dataset", tracks, "--out", tmp_path / "ds", *TINY_CLI_OPTIONS, "-q", "--val-fraction", "0",
                 "--test-fraction", "0")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"1 file(s) skipped, see {tmp_path / 'ds' / 'skipped.csv'}",
                                          f"Dataset written to {tmp_path / 'ds'}"]


def test_an_explicit_model_dir_elsewhere_leaves_latest_alone(run, trained, tmp_path):
    result = run("fit", "--data", trained["dataset"], "--epochs", "1", "--model-dir", tmp_path / "mine", "-q",
                 "--no-compare")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "models").exists(), "no ./models/latest created as a side effect"
    result = run("fit", "--data", trained["dataset"], "--epochs", "1", "--model-dir", tmp_path / "models" / "kept",
                 "-q", "--no-compare")
    assert result.exit_code == 0 and (tmp_path / "models" / "latest").read_text().strip() == "kept"
