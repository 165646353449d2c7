"""genre-cnn evaluate: accuracy, macro-F1, per-genre report and confusion on labelled songs."""

import json

import numpy as np
from click.testing import CliRunner
from conftest import write_tracks

from genre_cnn.analysis.evaluate import evaluate_model
from genre_cnn.cli import main
from genre_cnn.inference.classifier import classify


def test_numbers_match_the_verdicts(trained, tmp_path):
    result = evaluate_model(trained["result"].model_dir, trained["tracks"], out=tmp_path / "report")
    verdicts = classify([trained["tracks"]], model=trained["result"].model_dir)
    right = sum(p.genre == p.path.split("/")[-2] for p in verdicts)
    assert result["songs"] == 15 and result["failed"] == []
    assert result["accuracy"] == right / 15
    assert np.array(result["confusion"]).sum() == 15 and np.trace(result["confusion"]) == right
    assert set(result["per_class"]) == {"chirps", "noise", "tones"}
    assert json.loads((tmp_path / "report" / "evaluation.json").read_text())["accuracy"] == result["accuracy"]
    assert (tmp_path / "report" / "confusion.png").stat().st_size > 5000


def test_unknown_genres_count_as_wrong_and_bad_files_apart(trained, tmp_path):
    tracks = write_tracks(tmp_path / "t", genres=("tones",), songs=2, seconds=2)
    write_tracks(tracks, genres=("noise",), songs=1, seconds=2)
    (tracks / "jazz").mkdir()
    (tracks / "jazz" / "x.mp3").write_bytes((trained["tracks"] / "tones" / "tones_0.mp3").read_bytes())
    (tracks / "jazz" / "broken.mp3").write_text("nope")
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", "--model", str(trained["result"].model_dir), str(tracks), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["unknown_genres"] == ["jazz"] and report["songs"] == 4 and len(report["failed"]) == 1
    assert report["per_class"]["jazz"]["recall"] == 0.0
    text = runner.invoke(main, ["evaluate", "--model", str(trained["result"].model_dir), str(tracks)]).stdout
    assert text.splitlines()[0].startswith("4 songs (1 could not be classified): accuracy ")
    assert "genres the model does not know (always wrong): jazz" in text


def test_text_mode_names_each_failed_file_and_a_genre_that_failed_entirely_is_not_unknown(trained, tmp_path):
    tracks = write_tracks(tmp_path / "t", genres=("tones", "noise"), songs=2, seconds=2)
    (tracks / "chirps").mkdir()  # a genre the model knows, whose songs are all broken
    (tracks / "chirps" / "a.mp3").write_text("nope")
    (tracks / "chirps" / "b.mp3").write_bytes(b"")
    result = CliRunner().invoke(main, ["evaluate", "--model", str(trained["result"].model_dir), str(tracks)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("4 songs (2 could not be classified): accuracy ")
    assert "genres the model does not know" not in result.stdout
    assert "genres none of whose songs could be classified (not scored): chirps" in lines
    failed = lines[lines.index("could not be classified:") + 1 :]
    assert failed == [f"  {tracks / 'chirps' / 'a.mp3'}: cannot decode audio (format not recognised); is it a "
                      "complete mp3/wav/ogg/flac/aiff file?",
                      f"  {tracks / 'chirps' / 'b.mp3'}: the file is empty (0 bytes)"]


def test_a_metadata_csv_is_evaluated_like_a_folder(trained, tmp_path):
    songs = sorted(trained["tracks"].rglob("*.mp3"))
    lines = ["file,genre"] + [f"{song.relative_to(trained['tracks']).as_posix()},{song.parent.name}" for song in songs]
    (tmp_path / "meta.csv").write_text("\n".join(lines) + "\n")
    model = str(trained["result"].model_dir)
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", "--model", model, str(tmp_path / "meta.csv"), "--audio-root",
                                  str(trained["tracks"]), "--path-column", "file", "--label-column", "genre",
                                  "--json"])
    assert result.exit_code == 0, result.output
    from_csv = json.loads(result.stdout)
    from_folder = evaluate_model(model, trained["tracks"])
    assert (from_csv["songs"], from_csv["accuracy"], from_csv["confusion"]) == (
        15, from_folder["accuracy"], from_folder["confusion"])
    wrong = runner.invoke(main, ["evaluate", "--model", model, str(tmp_path / "meta.csv")])
    assert wrong.exit_code == 1 and "no column 'path'" in wrong.output and "--path-column" in wrong.output
