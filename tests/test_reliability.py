"""Nothing written is ever lost: kill -9 at any moment, concurrent builds, and property tests."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import TINY_CLI_OPTIONS, write_tracks
from hypothesis import given, settings
from hypothesis import strategies as st

from genre_cnn.config import FeatureConfig
from genre_cnn.data.build import build_dataset
from genre_cnn.data.dataset import load_dataset
from genre_cnn.data.split import split_songs
from genre_cnn.errors import LockedError
from genre_cnn.inference.classifier import load_classifier
from genre_cnn.runtime.files import exclusive_lock
from genre_cnn.signal.segment import chunk_offsets, iter_chunks, segment


def _start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "genre_cnn", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(predicate, process, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert process.poll() is None, "finished before it could be killed"
        time.sleep(0.02)
    raise AssertionError("the condition never came true")


@pytest.mark.slow
def test_kill_9_during_build_dataset_keeps_the_previous_dataset(tmp_path):
    write_tracks(tmp_path / "tracks", songs=12, seconds=6)
    build = ["build-dataset", "tracks", *TINY_CLI_OPTIONS, "--out", "ds", "-q"]
    assert subprocess.run([sys.executable, "-m", "genre_cnn", *build], cwd=tmp_path).returncode == 0
    before = (tmp_path / "ds" / "manifest.csv").read_bytes()
    write_tracks(tmp_path / "tracks", genres=("tones",), songs=15, seconds=6)  # three more songs

    process = _start(build, tmp_path)
    temporary = tmp_path / f".ds.tmp-{process.pid}" / "features.npy"
    _wait_for(lambda: temporary.exists() and temporary.stat().st_size > 300_000, process)
    process.send_signal(signal.SIGKILL)
    process.wait()

    assert (tmp_path / "ds" / "manifest.csv").read_bytes() == before
    assert load_dataset(tmp_path / "ds").features.shape[0] == 216
    result = subprocess.run([sys.executable, "-m", "genre_cnn", *build], cwd=tmp_path)
    assert result.returncode == 0
    assert load_dataset(tmp_path / "ds").features.shape[0] == 234
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.slow
def test_kill_9_during_fit_keeps_the_previous_model(trained, tmp_path):
    models = tmp_path / "models"
    first = ["fit", "--data", str(trained["dataset"]), "--epochs", "1", "--name", "m", "-q", "--no-compare"]
    assert subprocess.run([sys.executable, "-m", "genre_cnn", *first], cwd=tmp_path).returncode == 0
    classifier = load_classifier(models / "m")
    x = np.asarray(load_dataset(trained["dataset"]).features[:4])
    expected = classifier.predict_chunks(x)

    process = _start(["fit", "--data", str(trained["dataset"]), "--epochs", "200", "--name", "m"], tmp_path)
    lines = []

    def second_epoch_started():
        lines.append(process.stdout.readline())
        return "Epoch 2/200" in lines[-1]

    _wait_for(second_epoch_started, process)
    process.send_signal(signal.SIGKILL)
    process.wait()

    np.testing.assert_array_equal(load_classifier(models / "m").predict_chunks(x), expected)
    assert subprocess.run([sys.executable, "-m", "genre_cnn", *first], cwd=tmp_path).returncode == 0
    assert (models / "latest").read_text().strip() == "m"


def test_a_killed_rename_is_recovered(tracks_dir, tiny_config, tmp_path):
    """Killed between moving the old dataset aside and renaming the new one in: the old one returns."""
    build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1)
    os.replace(tmp_path / "ds", tmp_path / ".ds.old-999999999")
    (tmp_path / ".ds.tmp-999999999").mkdir()
    build_dataset(tracks_dir, out=tmp_path / "other", config=tiny_config, workers=1)  # unrelated: leaves them
    assert (tmp_path / ".ds.old-999999999").exists()
    report = build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1)
    assert report.summary.songs == 15
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".ds")) == []


def test_a_second_concurrent_build_is_refused(tracks_dir, tiny_config, tmp_path):
    holder = ("import sys, time; from genre_cnn.runtime.files import exclusive_lock\n"
              f"with exclusive_lock({str(tmp_path / 'ds')!r}, command='genre-cnn build-dataset'):\n"
              "    print('locked', flush=True); time.sleep(60)")
    sleeper = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=rf"ds: another 'genre-cnn build-dataset' \(process {sleeper.pid}\) "
                                              r"is writing it; wait for it to finish, or delete .*\.ds\.lock"):
            build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1)
        assert not (tmp_path / "ds").exists()
    finally:
        sleeper.kill()  # killed: its lock file stays, its lock dies with it
        sleeper.wait()
    assert (tmp_path / ".ds.lock").exists()
    build_dataset(tracks_dir, out=tmp_path / "ds", config=tiny_config, workers=1)  # the stale lock is taken over
    assert not (tmp_path / ".ds.lock").exists()


RACER = """
import os, sys, time
from genre_cnn.errors import LockedError
from genre_cnn.runtime.files import exclusive_lock
target, log, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
won = 0
for _ in range(rounds):
    try:
        with exclusive_lock(target, command="race"):
            with open(log, "a") as f: f.write(f"in {os.getpid()}\\n")
            time.sleep(0.002)
            with open(log, "a") as f: f.write(f"out {os.getpid()}\\n")
            won += 1
    except LockedError:
        pass
print(won)
"""


def test_racing_writers_never_hold_the_lock_together(tmp_path):
    log = tmp_path / "log.txt"
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path / "out"), str(log), "200"],
                               stdout=subprocess.PIPE, text=True) for _ in range(4)]
    wins = [int(racer.communicate(timeout=120)[0]) for racer in racers]
    lines = log.read_text().splitlines()
    assert sum(wins) == len(lines) // 2
    # the race really happened: several processes got the lock, many times (how many depends on the load)
    assert len({line for line in lines if line.startswith("in ")}) >= 2 and sum(wins) >= 10
    for enter, leave in zip(lines[::2], lines[1::2]):  # strictly alternating: in A, out A, in B, out B...
        assert enter.startswith("in ") and leave == "out " + enter[3:]
    assert not (tmp_path / ".out.lock").exists()


def test_lock_is_released_after_an_error(tmp_path):
    with pytest.raises(RuntimeError):
        with exclusive_lock(tmp_path / "x", command="test"):
            raise RuntimeError("boom")
    assert not (tmp_path / ".x.lock").exists()


# --- properties -----------------------------------------------------------------------------------

def _config(chunk, hop, tail, short="pad"):
    return FeatureConfig(sr=100, chunk_samples=chunk, hop_samples=hop, tail=tail, short=short, min_seconds=0.0,
                         n_fft=16, hop_length=4, n_mels=8)


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=3000),
    chunk=st.integers(min_value=16, max_value=500),
    hop=st.integers(min_value=1, max_value=600),
    tail=st.sampled_from(["drop", "pad"]),
    block=st.integers(min_value=1, max_value=900),
    batch=st.integers(min_value=1, max_value=7),
)
def test_streaming_chunks_equal_whole_song_chunks(n, chunk, hop, tail, block, batch):
    config = _config(chunk, hop, tail)
    y = np.arange(n, dtype=np.float32) + 1
    expected_chunks, expected_offsets = segment(y, config)
    blocks = (y[i : i + block] for i in range(0, n, block))
    pieces = list(iter_chunks(blocks, config, batch_size=batch))
    assert all(len(offsets) <= batch for _, offsets in pieces)
    np.testing.assert_array_equal(np.concatenate([c for c, _ in pieces]), expected_chunks)
    np.testing.assert_array_equal(np.concatenate([o for _, o in pieces]), expected_offsets)
    np.testing.assert_array_equal(expected_offsets, chunk_offsets(n, config))


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=3, max_value=40), min_size=2, max_size=6),
    val=st.sampled_from([0.0, 0.1, 0.15, 0.3]),
    test=st.sampled_from([0.0, 0.1, 0.2, 0.4]),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_every_song_lands_in_exactly_one_split_stratified(counts, val, test, seed):
    labels = [f"g{i}" for i, count in enumerate(counts) for _ in range(count)]
    splits = split_songs(labels, val_fraction=val, test_fraction=test, seed=seed)
    assert len(splits) == len(labels) and set(splits) <= {"train", "val", "test"}
    for i, count in enumerate(counts):
        mine = splits[np.array(labels) == f"g{i}"]
        n_test, n_val = (mine == "test").sum(), (mine == "val").sum()
        assert (mine == "train").sum() >= 1
        assert (n_test >= 1) == (test > 0) and (n_val >= 1) == (val > 0)
        if count * (val + test) + 2 < count:  # enough songs: each share is its rounded fraction
            assert n_test == max(1, round(count * test)) if test else n_test == 0
            assert n_val == max(1, round(count * val)) if val else n_val == 0


def test_a_lock_that_cannot_be_taken_never_stops_the_work(tmp_path, monkeypatch):
    """machine_lock guards a shared cache; where its file cannot be opened (another user's), work goes on."""
    import tempfile

    from genre_cnn.runtime.files import machine_lock

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / f"genre-cnn-test-{os.getuid()}.lock").mkdir()  # not a file: cannot be opened
    done = []
    with machine_lock("test"):
        done.append(True)
    assert done == [True]
    with machine_lock("other"):  # and a usable one is taken and given back
        pass
    assert (tmp_path / f"genre-cnn-other-{os.getuid()}.lock").is_file()

