"""Classify a whole library into a table that survives a crash: classify LIBRARY --out results.csv."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import write_tracks

from genre_cnn.cli import main
from genre_cnn.library.bulk import classify_library

GENRES = ("tones", "chirps", "noise")


@pytest.fixture
def model(trained):
    return trained["models"] / "tiny"


@pytest.fixture
def library(tmp_path):
    return write_tracks(tmp_path / "library", songs=4)


def table_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def classify(*args: str):
    return CliRunner().invoke(main, ["classify", *args])


def test_a_library_goes_into_a_csv_table_one_row_per_file(library, model, tmp_path):
    (library / "noise" / "broken.mp3").write_bytes(b"\xff\xfb" + bytes(300))
    out = tmp_path / "results.csv"
    result = classify(str(library), "--model", str(model), "--out", str(out), "--workers", "1")
    assert result.exit_code == 1, result.output  # the broken file
    rows = table_rows(out)
    assert len(rows) == 13 and len({row["path"] for row in rows}) == 13
    assert list(rows[0]) == ["path", "size", "mtime_ns", "model", "genre", "probability", "p_chirps", "p_noise",
                             "p_tones", "chunks", "unsure", "novelty", "unfamiliar", "error"]
    good = [row for row in rows if not row["error"]]
    assert len(good) == 12
    for row in good:
        assert Path(row["path"]).is_absolute() and int(row["size"]) == Path(row["path"]).stat().st_size
        assert row["genre"] in GENRES and row["model"].startswith("tiny@")
        assert row["unsure"] in ("True", "False")  # the tiny model has no novelty reference: empty cells
        assert row["novelty"] == row["unfamiliar"] == ""
        assert abs(sum(float(row[f"p_{g}"]) for g in GENRES) - 1) < 1e-4
        assert float(row["probability"]) == float(row[f"p_{row['genre']}"])
    broken = next(row for row in rows if row["error"])
    assert broken["path"].endswith("broken.mp3") and broken["genre"] == "" and "broken.mp3" in broken["error"]
    assert "13 file(s): 13 classified now (1 error(s)), 0 already in" in result.output
    assert "genre" in result.output and "share" in result.output


def test_the_flags_in_the_table_are_those_classify_gives(library, model, tmp_path):
    from genre_cnn.inference.classifier import classify as classify_songs

    out = tmp_path / "results.jsonl"
    list(classify_library([library], out=out, model=model, workers=1))
    rows = {json.loads(line)["path"]: json.loads(line) for line in out.read_text().splitlines()}
    for verdict in classify_songs([library], model=model):
        row = rows[str(verdict.path)]
        assert (row["unsure"], row["novelty"], row["unfamiliar"]) == (verdict.unsure, verdict.novelty,
                                                                       verdict.unfamiliar)


def test_a_table_written_before_the_flags_is_resumed_in_its_own_columns(library, model, tmp_path):
    out = tmp_path / "results.csv"
    list(classify_library([library / "tones"], out=out, model=model, workers=1))
    old_columns = ["path", "size", "mtime_ns", "model", "genre", "probability", "p_chirps", "p_noise", "p_tones",
                   "chunks", "error"]
    rows = table_rows(out)
    with open(out, "w", newline="", encoding="utf-8") as handle:  # as the previous release wrote it
        writer = csv.DictWriter(handle, old_columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    resumed = classify_library([library], out=out, model=model, workers=1)
    assert (len(resumed), resumed.already_done) == (8, 4)
    list(resumed)
    again = table_rows(out)
    assert list(again[0]) == old_columns and len(again) == 12


def test_a_second_run_skips_what_the_table_holds_and_classifies_what_is_new_or_changed(library, model, tmp_path):
    out = tmp_path / "results.csv"
    assert len(list(classify_library([library], out=out, model=model, workers=1))) == 12
    again = classify_library([library], out=out, model=model, workers=1)
    assert (len(again), again.already_done) == (0, 12)
    list(again)
    shutil.copy(library / "tones" / "tones_0.mp3", library / "tones" / "new.mp3")
    os.utime(library / "noise" / "noise_1.mp3", ns=(0, 0))  # changed since
    third = classify_library([library], out=out, model=model, workers=1)
    assert sorted(Path(path).name for path, _, _ in third.to_do) == ["new.mp3", "noise_1.mp3"]
    list(third)
    rows = table_rows(out)
    assert len(rows) == 14  # the changed file has its old and its new row; the newest is last
    assert [row["mtime_ns"] for row in rows if row["path"].endswith("noise_1.mp3")][-1] == "0"


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_jsonl_and_parquet_tables_hold_the_same_rows_and_resume(library, model, tmp_path, suffix):
    out = tmp_path / f"results{suffix}"
    first = list(classify_library([library / "tones", library / "chirps"], out=out, model=model, workers=1))
    second = list(classify_library([library], out=out, model=model, workers=1))
    assert (len(first), len(second)) == (8, 4)
    if suffix == ".jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert all(abs(sum(row["probabilities"].values()) - 1) < 1e-4 for row in rows)
    else:
        import pyarrow.parquet as parquet

        rows = parquet.read_table(out).to_pylist()
        assert not list(tmp_path.glob(".*rows.jsonl")), "the hidden rows file is gone once the table is written"
    assert len(rows) == 12 and {row["genre"] for row in rows} <= set(GENRES)
    assert len(classify_library([library], out=out, model=model, workers=1)) == 0


def test_a_torn_last_line_is_cut_and_that_file_classified_again(library, model, tmp_path):
    out = tmp_path / "results.csv"
    list(classify_library([library], out=out, model=model, workers=1))
    text = out.read_text(encoding="utf-8")
    last = text.splitlines()[-1]
    out.write_text(text[: -len(last) - 1] + last[:15], encoding="utf-8")  # kill -9 in the middle of a write
    run = classify_library([library], out=out, model=model, workers=1)
    assert len(run) == 1 and os.fsdecode(run.to_do[0][0]) == last.split(",")[0]
    list(run)
    rows = table_rows(out)
    assert len(rows) == 12 and len({row["path"] for row in rows}) == 12


@pytest.mark.parametrize("args, message", [
    (["--out", "results.txt"], "--out results.txt: a results table ends in .csv, .jsonl, .parquet"),
    (["--out", "r.csv", "--json"], "--json and --out exclude each other"),
])
def test_bad_table_options_say_what_to_do(library, model, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = classify(str(library), "--model", str(model), *args)
    assert result.exit_code != 0 and message in result.output


def test_a_table_of_another_model_is_never_appended_to(library, model, tmp_path):
    out = tmp_path / "results.csv"
    list(classify_library([library / "tones"], out=out, model=model, workers=1))
    text = out.read_text(encoding="utf-8").replace(",tiny@", ",other@")
    out.write_text(text, encoding="utf-8")
    result = classify(str(library), "--model", str(model), "--out", str(out))
    assert result.exit_code == 1
    assert "holds results of model other@" in result.output and "name another table" in result.output
    assert out.read_text(encoding="utf-8") == text


@pytest.mark.slow
def test_kill_9_then_the_same_command_again_gives_every_file_exactly_once(tmp_path, model):
    library = write_tracks(tmp_path / "library", songs=60)
    out = tmp_path / "results.csv"
    command = [sys.executable, "-u", "-m", "genre_cnn", "classify", str(library), "--model", str(model),
               "--out", str(out), "--workers", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out.is_file() and out.read_text(encoding="utf-8").count("\n") > 15):
        assert process.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = len(table_rows(out))
    assert 15 <= before < 180
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"already in {out}" in done.stdout
    rows = table_rows(out)
    assert sorted(row["path"] for row in rows) == sorted(os.path.abspath(p) for p in library.rglob("*.mp3"))


def test_the_same_library_through_a_link_resumes_the_same_rows(library, model, tmp_path):
    out = tmp_path / "results.csv"
    list(classify_library([library], out=out, model=model, workers=1))
    (tmp_path / "link").symlink_to(library)
    assert len(classify_library([tmp_path / "link"], out=out, model=model, workers=1)) == 0


def test_a_broken_link_gets_one_error_row_however_often_the_command_runs(library, model, tmp_path):
    (library / "tones" / "gone.mp3").symlink_to(tmp_path / "nowhere.mp3")
    out = tmp_path / "results.csv"
    for _ in range(2):
        list(classify_library([library], out=out, model=model, workers=1))
    rows = [row for row in table_rows(out) if row["path"].endswith("gone.mp3")]
    assert len(rows) == 1 and "broken symbolic link" in rows[0]["error"]


def test_damaged_tables_and_missing_places_are_one_line_errors(library, model, tmp_path):
    from genre_cnn.errors import ConfigError, DatasetError

    bad_csv = tmp_path / "bad.csv"
    list(classify_library([library / "tones"], out=bad_csv, model=model, workers=1))
    lines = bad_csv.read_text(encoding="utf-8").splitlines()
    bad_csv.write_text("\n".join([lines[0], lines[1].replace(",", ",x", 1).replace(",x", ",", 0)]
                                 + ["/a.mp3,x,1,tiny@0,,,,,,0,"]) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="damaged row"):
        classify_library([library], out=bad_csv, model=model, workers=1)
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_bytes(b"\xff\xfe not json\n")
    with pytest.raises(ConfigError, match="line 1 of bad.jsonl is not a results row"):
        classify_library([library], out=bad_jsonl, model=model, workers=1)
    with pytest.raises(ConfigError, match="create its folder first"):
        classify_library([library], out=tmp_path / "no" / "such" / "r.csv", model=model, workers=1)
    with pytest.raises(DatasetError, match="does not exist"):
        classify_library([tmp_path / "nothing-here"], out=tmp_path / "r.csv", model=model, workers=1)
    assert not (tmp_path / "r.csv").exists()
    result = classify(str(library), "--model", str(model), "--timeline", "--out", str(tmp_path / "t.csv"))
    assert result.exit_code == 2 and "not a table" in result.output


def test_an_unreachable_scheduler_is_one_line_and_a_finished_table_needs_none(library, model, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "results.csv"
    list(classify_library([library], out=out, model=model, workers=1))
    done = classify(str(library), "--model", str(model), "--out", str(out), "--engine", "dask", "--scheduler",
                    "tcp://127.0.0.1:9")
    assert done.exit_code == 0, done.output  # nothing left to do: no cluster needed
    (library / "tones" / "tones_0.mp3").touch()
    result = classify(str(library), "--model", str(model), "--out", str(out), "--engine", "dask", "--scheduler",
                      "tcp://127.0.0.1:9")
    assert result.exit_code == 1
    assert "Error: --scheduler tcp://127.0.0.1:9: cannot connect" in result.output
    assert "start the Dask scheduler" in result.output and "Traceback" not in result.output
