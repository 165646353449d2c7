"""Your music library: learn from the genre tags it has, and tag the rest from the sound, safely."""

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
from conftest import SR, TINY_CLI_OPTIONS, synth_song, write_audio
from test_tags import make_tagged

from genre_cnn.cli import main
from genre_cnn.library.dataset import dataset_from_tags, scan_tagged
from genre_cnn.library.genres import GenreMap
from genre_cnn.library.tagging import tag_library
from genre_cnn.library.tags import TagJournal, audio_digest, read_tags, remove_stale_copies, undo_journal, write_genre

GENRES = ("tones", "chirps", "noise")


def write_library(root: Path, *, songs: int = 4, tagged: dict | None = None) -> Path:
    """``root/<artist>/<song>.<ext>``: synthetic songs of the three genres in several formats, untagged.

    ``tagged`` maps a genre to the tag value written into its songs (the others stay untagged).
    """
    formats = [".mp3", ".flac", ".ogg", ".wav"]
    for genre in GENRES:
        for index in range(songs):
            folder = root / f"{genre}-artist-{index % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            path = write_audio(folder / f"{genre}_{index}{formats[index % len(formats)]}",
                               synth_song(genre, index, seconds=3.0), SR)
            if tagged and genre in tagged:
                with TagJournal(root.parent / "setup-journal.jsonl") as journal:
                    write_genre(path, tagged[genre], source="test setup", journal=journal)
    return root


def snapshot(root: Path) -> dict:
    return {path: path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture
def library(tmp_path):
    return write_library(tmp_path / "Music")


@pytest.fixture
def model(trained):
    return trained["models"] / "tiny"


# --- tag ------------------------------------------------------------------------------------------

def test_tag_without_write_changes_nothing_and_says_what_it_would_do(library, model):
    before = snapshot(library)
    decisions = list(tag_library(library, model=model, min_confidence=0, workers=1))
    assert len(decisions) == 12
    assert {d.action for d in decisions} == {"write"}
    assert all(d.reason.startswith("would write: (no genre) -> ") and d.genre in GENRES for d in decisions)
    assert not any(d.written for d in decisions)
    assert snapshot(library) == before


def test_tag_write_fills_untagged_files_signs_them_and_a_second_run_skips_them(library, model, tmp_path):
    run = tag_library(library, model=model, write=True, min_confidence=0, journal=tmp_path / "j.jsonl", workers=1)
    decisions = list(run)
    assert run.counts["written"] == 12
    for decision in decisions:
        tags = read_tags(decision.path)
        assert tags.genres == (decision.genre,)
        assert tags.source == f"{run.signature} p={decision.probability:.2f}"
        assert tags.source.startswith("genre-cnn tiny@")
    again = list(tag_library(library, model=model, write=True, overwrite=True, min_confidence=0,
                             journal=tmp_path / "j.jsonl", workers=1))
    assert {(d.action, d.reason) for d in again} == {("skip", "already tagged by this model")}


def test_files_with_a_genre_are_kept_unless_overwrite(tmp_path, model):
    library = write_library(tmp_path / "Music", tagged={"tones": "Ambient"})
    kept = [d for d in tag_library(library, model=model, min_confidence=0, workers=1) if d.action == "keep"]
    assert len(kept) == 4 and all(d.current == ("Ambient",) and d.genre is None for d in kept)
    run = tag_library(library, model=model, write=True, overwrite=True, min_confidence=0,
                      journal=tmp_path / "j.jsonl", workers=1)
    replaced = [d for d in run if d.current == ("Ambient",)]
    assert all(d.written or d.reason == f"already {d.genre}" for d in replaced)
    assert all(read_tags(d.path).genres == (d.genre,) for d in replaced if d.written)


def test_unsure_songs_are_never_written(library, model, tmp_path):
    before = snapshot(library)
    decisions = list(tag_library(library, model=model, write=True, min_confidence=1.0,
                                 journal=tmp_path / "j.jsonl", workers=1))
    assert {d.action for d in decisions} == {"skip"}
    assert all(d.reason.startswith(f"unsure: {d.genre} ") and "then" in d.reason for d in decisions)
    assert snapshot(library) == before
    assert (tmp_path / "j.jsonl").read_text() == ""  # the journal exists, and records nothing


def test_unfamiliar_songs_are_never_written(library, familiar_model, tmp_path):
    """A song unlike every song the model learned from (here: all, with a threshold nothing passes) keeps its tags."""
    strict = tmp_path / "model"
    shutil.copytree(familiar_model, strict)
    config = json.loads((strict / "config.json").read_text())
    config["novelty"]["threshold"] = 1e-6
    (strict / "config.json").write_text(json.dumps(config))
    before = snapshot(library)
    decisions = list(tag_library(library, model=strict, write=True, min_confidence=0.0,
                                 journal=tmp_path / "j.jsonl", workers=1))
    assert {d.action for d in decisions} == {"skip"}
    assert all(d.reason.startswith("unfamiliar: not like the songs the model learned from (novelty ")
               and d.reason.endswith("is not written") for d in decisions)
    assert snapshot(library) == before


def test_by_default_a_song_is_unsure_below_the_models_own_threshold(library, model, tmp_path):
    sure_of_nothing = tmp_path / "model"
    shutil.copytree(model, sure_of_nothing)
    config = json.loads((sure_of_nothing / "config.json").read_text())
    config["calibration"]["min_confidence"] = 1.0  # as if its validation songs were never right often enough
    (sure_of_nothing / "config.json").write_text(json.dumps(config))
    decisions = list(tag_library(library, model=sure_of_nothing, workers=1))
    assert {d.action for d in decisions} == {"skip"}
    assert all(d.reason.endswith("(below the minimum confidence 1.00)") for d in decisions)
    # a model without a threshold of its own (too few validation songs): 0.6
    config["calibration"] = {"temperature": 1.0, "fitted_on": "not calibrated: 3 validation songs", "songs": 0}
    (sure_of_nothing / "config.json").write_text(json.dumps(config))
    unsure = [d for d in tag_library(library, model=sure_of_nothing, workers=1) if d.action == "skip"]
    assert all(d.probability < 0.6 and d.reason.endswith("(below the minimum confidence 0.60)") for d in unsure)


def test_read_only_unsupported_and_broken_files_are_listed_and_the_rest_is_tagged(library, model, tmp_path):
    read_only = sorted(library.rglob("*.flac"))[0]
    os.chmod(read_only, 0o444)
    (library / "extra").mkdir()
    shutil.copy(sorted(library.rglob("*.wav"))[0], library / "extra" / "song.aiff")
    (library / "extra" / "broken.mp3").write_bytes(b"ID3" + bytes(200))
    before = read_only.read_bytes()
    decisions = {d.path: d for d in tag_library(library, model=model, write=True, min_confidence=0,
                                                journal=tmp_path / "j.jsonl", workers=1)}
    assert decisions[read_only].action == "skip" and "read-only" in decisions[read_only].reason
    assert decisions[library / "extra" / "song.aiff"].action == "skip"
    assert "not supported" in decisions[library / "extra" / "song.aiff"].reason
    assert decisions[library / "extra" / "broken.mp3"].action == "error"
    assert sum(d.written for d in decisions.values()) == 11
    assert read_only.read_bytes() == before


def test_a_file_changed_between_classifying_and_writing_is_not_written(library, model, tmp_path):
    run = tag_library(library, model=model, write=True, min_confidence=0, journal=tmp_path / "j.jsonl", workers=1)
    victim = run.files[-1]
    decisions = []
    for decision in run:
        decisions.append(decision)
        if len(decisions) == 1:
            os.utime(victim, ns=(0, 0))  # another program touched it meanwhile
    last = decisions[-1]
    assert last.path == victim and last.action == "skip" and "changed since it was classified" in last.reason


# --- build-dataset --from-tags ---------------------------------------------------------------------

def test_a_dataset_from_messy_tags_merges_spellings_and_keeps_artists_in_one_split(tmp_path, tiny_config):
    library = write_library(tmp_path / "Music", songs=6,
                            tagged={"tones": "Alt. Rock", "chirps": "Electronic", "noise": "Hip-Hop"})
    for index, value in enumerate(["Alternative Rock", "Hard Rock"]):  # more rock, spelt otherwise
        make_tagged(tmp_path / "Music" / "rock-artist", "id3v24", genre=value, artist="Rocker", index=index)
    make_tagged(tmp_path / "Music" / "misc", "flac", genre="Sea Shanty", index=0)
    make_tagged(tmp_path / "Music" / "misc", "ogg", genre=None, index=1)
    labelled = scan_tagged(library, min_songs=3)
    assert labelled.tracks.classes == ("electronic", "hip-hop", "rock")
    assert labelled.tally.kept == {"rock": 8, "electronic": 6, "hip-hop": 6}
    assert labelled.tally.left_out == {"sea-shanty": 1}
    assert labelled.tally.untagged == 1
    assert labelled.tally.merged["rock"] == {"Alt. Rock": 6, "Alternative Rock": 1, "Hard Rock": 1}
    built = dataset_from_tags(library, out=tmp_path / "dataset", min_songs=3, config=tiny_config, workers=1,
                              val_fraction=0.2, test_fraction=0.2)
    with open(tmp_path / "dataset" / "manifest.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    splits_of_artist = {}
    for row in rows:
        splits_of_artist.setdefault(row["group"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in splits_of_artist.values()), splits_of_artist
    assert built.report.summary.classes == ["electronic", "hip-hop", "rock"]


def test_a_user_genre_map_wins_over_the_built_in_one(tmp_path):
    library = write_library(tmp_path / "Music", songs=3,
                            tagged={"tones": "Alt. Rock", "chirps": "Electronic", "noise": "Hip-Hop"})
    user_map = tmp_path / "genres.csv"
    user_map.write_text("tag,genre\nAlt. Rock,indie\n", encoding="utf-8")
    labelled = scan_tagged(library, genre_map=GenreMap.from_file(user_map, base=GenreMap.builtin()), min_songs=1)
    assert labelled.tracks.classes == ("electronic", "hip-hop", "indie")


# --- the command line ------------------------------------------------------------------------------

def test_the_library_workflow_from_the_command_line(tmp_path, model):
    library = write_library(tmp_path / "Music", tagged={"tones": "Ambient"})
    before = snapshot(library)
    runner = CliRunner()
    dry = runner.invoke(main, ["tag", str(library), "--model", str(model), "--min-confidence", "0",
                               "--workers", "1"])
    assert dry.exit_code == 0, dry.output
    assert "12 file(s): 8 would be written, 4 kept, 0 skipped, 0 error(s)" in dry.output
    assert "add --write to write these genres" in dry.output
    assert snapshot(library) == before
    journal, report = tmp_path / "tags.jsonl", tmp_path / "tags.csv"
    wet = runner.invoke(main, ["tag", str(library), "--model", str(model), "--min-confidence", "0", "--write",
                               "--journal", str(journal), "--report", str(report), "--workers", "1", "-q"])
    assert wet.exit_code == 0, wet.output
    assert f"undo with: genre-cnn tag --undo {journal}" in wet.output
    with open(report, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12 and sum(row["written"] == "1" for row in rows) == 8
    undo = runner.invoke(main, ["tag", "--undo", str(journal)])
    assert undo.exit_code == 0, undo.output
    assert "8 file(s) restored exactly" in undo.output
    assert snapshot(library) == before


@pytest.mark.parametrize("args, message", [
    (["--journal", "j.jsonl"], "--journal only applies with --write"),
    (["--undo", "j.jsonl", "--write"], "--undo JOURNAL takes no other input: drop LIBRARY, --write"),
    (["--report", "r.txt"], "--report r.txt: name a .csv or .jsonl file"),
    (["--min-confidence", "1.5"], "1.5 is not in the range 0<=x<=1"),
])
def test_bad_tag_options_say_which_and_change_nothing(library, model, args, message):
    before = snapshot(library)
    result = CliRunner().invoke(main, ["tag", str(library), "--model", str(model), *args])
    assert result.exit_code != 0
    assert message in result.output
    assert snapshot(library) == before


def test_build_dataset_from_tags_prints_what_became_of_the_tags(tmp_path):
    library = write_library(tmp_path / "Music", songs=4,
                            tagged={"tones": "Alt. Rock", "chirps": "Electronic", "noise": "Hip-Hop"})
    result = CliRunner().invoke(main, ["build-dataset", "--from-tags", str(library), "--out", str(tmp_path / "ds"),
                                       "--min-songs", "2", "--val-fraction", "0.25", "--test-fraction", "0.25",
                                       *TINY_CLI_OPTIONS])
    assert result.exit_code == 0, result.output
    assert "Alt. Rock (4)" in result.output and "(no genre tag)" in result.output
    assert (tmp_path / "ds" / "features.npy").is_file()
    mixed = CliRunner().invoke(main, ["build-dataset", str(library), "--from-tags", str(library)])
    assert mixed.exit_code == 2 and "not TRACKS_DIR and --from-tags" in mixed.output
    stray = CliRunner().invoke(main, ["build-dataset", str(library), "--min-songs", "3"])
    assert stray.exit_code == 2 and "--min-songs only apply with --from-tags" in stray.output


# --- a crash in the middle of a run -----------------------------------------------------------------

@pytest.mark.slow
def test_kill_9_during_tag_write_leaves_every_file_untouched_or_fully_tagged(tmp_path, model):
    library = write_library(tmp_path / "Music", songs=10)
    before = snapshot(library)
    audio = {path: audio_digest(path) for path in before}
    journal = tmp_path / "tags.jsonl"
    command = [sys.executable, "-u", "-m", "genre_cnn", "tag", str(library), "--model", str(model), "--write",
               "--min-confidence", "0", "--journal", str(journal), "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               start_new_session=True)
    written = 0
    for line in process.stdout:
        written += line.startswith("written")
        if written == 5:
            break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    time.sleep(0.2)
    tagged = 0
    for path, original in before.items():
        if path.read_bytes() != original:
            assert read_tags(path).genres[0] in GENRES and audio_digest(path) == audio[path]
            tagged += 1
    assert 5 <= tagged < len(before)
    # the kill may land while a song's copy is being written: that copy, and nothing else, may be left; the
    # next run removes it (the song itself was never touched)
    leftovers = [p for p in library.rglob(".*")]
    assert len(leftovers) <= 1 and all(p.name.startswith(".") and ".genre-cnn-" in p.name for p in leftovers)
    assert sorted(remove_stale_copies([library])) == sorted(leftovers)
    assert not list(library.rglob(".*"))
    result = CliRunner().invoke(main, ["tag", "--undo", str(journal)])
    assert result.exit_code == 0, result.output
    assert snapshot(library) == before
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.endswith("}")]
    assert len(lines) >= tagged


_CRASH_INSIDE_THE_WRITE = """
import os, signal, sys
from genre_cnn.library import tags
tags.os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # dies after the journal, before the rename
with tags.TagJournal(sys.argv[2]) as journal:
    tags.write_genre(sys.argv[1], "rock", source="genre-cnn crash@0 p=1.00", journal=journal)
"""


def test_kill_9_inside_a_write_leaves_the_file_untouched_and_the_next_run_cleans_up(tmp_path, model):
    library = write_library(tmp_path / "Music", songs=1)
    victim = sorted(library.rglob("*.mp3"))[0]
    before = snapshot(library)
    journal = tmp_path / "crash.jsonl"
    done = subprocess.run([sys.executable, "-c", _CRASH_INSIDE_THE_WRITE, str(victim), str(journal)])
    assert done.returncode == -signal.SIGKILL
    songs = {path: data for path, data in snapshot(library).items() if not path.name.startswith(".")}
    assert songs == before  # the song is whole; only the hidden copy is new
    assert len(list(victim.parent.glob(".*genre-cnn-*"))) == 1
    assert undo_journal(journal).unchanged == (victim.resolve(),)
    list(tag_library(library, model=model, write=True, min_confidence=0, journal=tmp_path / "j.jsonl", workers=1))
    assert not list(library.rglob(".*genre-cnn-*"))
