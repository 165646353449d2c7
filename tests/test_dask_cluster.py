"""build-dataset on a real Dask cluster: a scheduler and two worker processes talking TCP on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from click.testing import CliRunner
from conftest import TINY_CLI_OPTIONS, write_tracks
from test_shards import assert_same_dataset

from genre_cnn.cli import main
from genre_cnn.data.build import build_dataset

distributed = pytest.importorskip("distributed", reason="pip install 'genre-cnn[dask]' for the Dask cluster tests")
pytestmark = pytest.mark.slow


@pytest.fixture
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=50) as cluster:
        yield cluster


def kill_a_busy_worker(cluster, client) -> tuple[threading.Thread, list]:
    """Start a thread that kill -9s the first worker seen busy, 0.3 s into its task; the list gets its address."""
    killed = []

    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            busy = [address for address, tasks in client.processing().items() if tasks]
            if busy:
                time.sleep(0.3)  # inside the task
                nanny = next(n for n in cluster.workers.values() if n.worker_address == busy[0])
                os.kill(nanny.process.process.pid, signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.02)

    killer = threading.Thread(target=watch)
    killer.start()
    return killer, killed


def build_on(cluster, tracks, out, *, shards=3):
    return CliRunner().invoke(main, ["build-dataset", str(tracks), "--out", str(out), "--engine", "dask",
                                     "--scheduler", cluster.scheduler_address, "--shards", str(shards),
                                     "--val-fraction", "0.2", "--test-fraction", "0.2", *TINY_CLI_OPTIONS])


def test_a_cluster_build_equals_the_single_process_build(cluster, tracks_dir, tmp_path):
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    result = build_on(cluster, tracks_dir, tmp_path / "cluster")
    assert result.exit_code == 0, result.output
    single = CliRunner().invoke(main, ["build-dataset", str(tracks_dir), "--out", str(tmp_path / "single"),
                                       "--val-fraction", "0.2", "--test-fraction", "0.2", *TINY_CLI_OPTIONS])
    assert single.exit_code == 0, single.output
    assert_same_dataset(tmp_path / "single", tmp_path / "cluster")
    assert (tmp_path / "single" / "manifest.csv").read_text().count("\n") == \
        (tmp_path / "cluster" / "manifest.csv").read_text().count("\n")


def test_a_worker_killed_mid_shard_leaves_a_complete_dataset_or_none(cluster, tmp_path, tiny_config):
    tracks = write_tracks(tmp_path / "tracks", songs=12, seconds=6.0)
    client = distributed.Client(cluster)
    killer, killed = kill_a_busy_worker(cluster, client)
    result = build_on(cluster, tracks, tmp_path / "cluster", shards=4)
    killer.join()
    client.close()
    assert killed, "no worker was busy long enough to be killed"
    if result.exit_code == 0:  # Dask ran the lost shard again on a live worker
        build_dataset(tracks, out=tmp_path / "single", config=tiny_config, workers=1, val_fraction=0.2,
                      test_fraction=0.2)
        assert_same_dataset(tmp_path / "single", tmp_path / "cluster")
    else:  # or it gave up: one line, and nothing half-written
        assert result.output.startswith("Error:") and len(result.output.strip().splitlines()) == 1, result.output
        assert not (tmp_path / "cluster").exists()


def test_cv_folds_run_as_tasks_on_the_cluster_with_the_sequential_results(cluster, trained, tmp_path):
    import json

    from genre_cnn.config import TrainConfig
    from genre_cnn.training.cv import cross_validate

    config = TrainConfig(epochs=2, batch_size=8)
    local = cross_validate(trained["dataset"], config=config, folds=3, out=tmp_path / "local", log=lambda m: None)
    result = CliRunner().invoke(main, ["cv", "--data", str(trained["dataset"]), "--folds", "3", "--epochs", "2",
                                       "--batch-size", "8", "--engine", "dask", "--scheduler",
                                       cluster.scheduler_address, "--out", str(tmp_path / "dask"), "-q"])
    assert result.exit_code == 0, result.output
    on_cluster = json.loads((tmp_path / "dask" / "cv.json").read_text())["folds"]
    assert len(on_cluster) == 3
    for ours, theirs in zip(local.folds, on_cluster):
        assert ours["test_songs"] == theirs["test_songs"] and ours["val_songs"] == theirs["val_songs"]
        for key in ("song_accuracy", "chunk_accuracy", "confusion_chunks"):
            assert ours[key] == theirs[key], key


def test_training_across_machines_is_refused_with_the_alternative(monkeypatch):
    from genre_cnn.errors import ConfigError
    from genre_cnn.runtime.backend import training_strategy

    monkeypatch.setenv("GENRE_CNN_MULTIWORKER", "1")
    with pytest.raises(ConfigError, match="cv --engine dask"):
        training_strategy()


def test_classify_on_the_cluster_writes_the_local_runs_table(cluster, trained, tmp_path, monkeypatch):
    import csv

    from genre_cnn.library import bulk

    monkeypatch.setattr(bulk, "TASK_SONGS", 4)  # several tasks from a small library
    library = write_tracks(tmp_path / "library", songs=5)
    model = trained["models"] / "tiny"
    local = CliRunner().invoke(main, ["classify", str(library), "--model", str(model), "--out",
                                      str(tmp_path / "local.csv"), "--workers", "1"])
    assert local.exit_code == 0, local.output
    on_cluster = CliRunner().invoke(main, ["classify", str(library), "--model", str(model), "--out",
                                           str(tmp_path / "cluster.csv"), "--engine", "dask", "--scheduler",
                                           cluster.scheduler_address])
    assert on_cluster.exit_code == 0, on_cluster.output

    def rows(name):
        with open(tmp_path / name, newline="", encoding="utf-8") as handle:
            return sorted(tuple(row.values()) for row in csv.DictReader(handle))

    assert rows("local.csv") == rows("cluster.csv") and len(rows("local.csv")) == 15


def test_a_worker_killed_mid_task_costs_its_songs_again_and_none_twice(cluster, trained, tmp_path, monkeypatch):
    import csv

    from genre_cnn.library import bulk

    monkeypatch.setattr(bulk, "TASK_SONGS", 10)
    library = write_tracks(tmp_path / "library", songs=20, seconds=6.0)
    client = distributed.Client(cluster)
    killer, killed = kill_a_busy_worker(cluster, client)
    run = bulk.classify_library([library], out=tmp_path / "results.csv", model=trained["models"] / "tiny",
                                engine="dask", scheduler=cluster.scheduler_address)
    list(run)
    killer.join()
    client.close()
    assert killed, "no worker was busy long enough to be killed"
    with open(tmp_path / "results.csv", newline="", encoding="utf-8") as handle:
        paths = [row["path"] for row in csv.DictReader(handle)]
    assert sorted(paths) == sorted(os.path.abspath(p) for p in library.rglob("*.mp3"))


def test_classify_on_dask_needs_a_scheduler_and_a_table():
    result = CliRunner().invoke(main, ["classify", "song.mp3", "--engine", "dask"])
    assert result.exit_code == 2 and "--engine only apply with --out TABLE" in result.output
