"""kill -9 a command at any moment: none of its processes is left running, and the next run just works.

The out-of-memory killer ends a command exactly like this: its pool workers must die with it, and must
not keep its output lock (they share the lock's open file when forked).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import write_tracks

from genre_cnn.runtime.files import exclusive_lock

pytestmark = pytest.mark.slow

def _start(args, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "genre_cnn", *args], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _kill_when(process: subprocess.Popen, *, children: int, delay: float, timeout: float = 120) -> list[int]:
    """Wait until ``process`` has ``children`` descendants, wait ``delay`` more, kill -9 it; its descendants."""
    parent = psutil.Process(process.pid)
    deadline = time.monotonic() + timeout
    while len(parent.children(recursive=True)) < children:
        assert process.poll() is None, "finished before its workers started"
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.02)
    time.sleep(delay)
    descendants = [child.pid for child in parent.children(recursive=True)]
    assert len(descendants) >= children, "the workers had already finished: kill earlier"
    process.send_signal(signal.SIGKILL)
    process.wait()
    return descendants


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _assert_all_gone(pids: list[int], *, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _running(pid)]
        time.sleep(0.05)
    assert not alive, f"processes {alive} outlived their killed command"


@pytest.mark.parametrize("delay", [0.0, 0.1, 0.2])
def test_kill_9_of_build_dataset_leaves_no_worker_and_no_lock(tmp_path, delay):
    write_tracks(tmp_path / "tracks", songs=30, seconds=30)
    build = ["build-dataset", "tracks", "--workers", "2", "--out", "ds", "-q"]  # default features: seconds of work

    _assert_all_gone(_kill_when(_start(build, tmp_path), children=2, delay=delay))

    again = subprocess.run([sys.executable, "-m", "genre_cnn", *build], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert not list(tmp_path.glob(".ds.*"))


def test_kill_9_of_classify_folder_leaves_no_worker(trained, tmp_path):
    folder = write_tracks(tmp_path / "songs", genres=("tones", "noise"), songs=60, seconds=10)
    classify = ["classify", str(folder), "--model", str(trained["result"].model_dir), "--workers", "2"]

    _assert_all_gone(_kill_when(_start(classify, tmp_path), children=2, delay=0.1))


def test_kill_9_of_cv_with_the_baseline_leaves_no_worker_and_no_lock(trained, tmp_path):
    cv = ["cv", "--data", str(trained["dataset"]), "--recipes", "baseline", "--folds", "2", "--out", "cv"]

    _assert_all_gone(_kill_when(_start(cv, tmp_path), children=1, delay=0.2))

    assert not (tmp_path / ".cv.lock").exists() or _lock_is_free(tmp_path / "cv")


def test_kill_9_of_fit_leaves_no_process_and_no_lock(trained, tmp_path):
    fit = ["fit", "--data", str(trained["dataset"]), "--epochs", "1", "--name", "m", "--no-compare", "-q"]
    process = subprocess.Popen([sys.executable, "-m", "genre_cnn", *fit[:-1], "--epochs", "200"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while "Epoch 2/200" not in process.stdout.readline():
        assert process.poll() is None and time.monotonic() < deadline, "fit ended (or hung) before its second epoch"
    descendants = [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
    process.send_signal(signal.SIGKILL)
    process.wait()
    _assert_all_gone(descendants)

    again = subprocess.run([sys.executable, "-m", "genre_cnn", *fit], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]


def test_kill_9_of_serve_leaves_no_inference_process(trained, tmp_path):
    serve = ["serve", "--model", str(trained["result"].model_dir), "--port", "0", "--workers", "2"]

    # two inference processes (each started with 'spawn_main') plus multiprocessing's resource tracker
    _assert_all_gone(_kill_when(_start(serve, tmp_path), children=3, delay=1.0), within=10)


def _lock_is_free(target: Path) -> bool:
    with exclusive_lock(target, command="test"):
        return True


WORKER_SEES_LOCK = """
import os, sys
from pathlib import Path
from genre_cnn.runtime.files import exclusive_lock
from genre_cnn.runtime.parallel import process_pool

def open_files():
    return [os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")]

target = Path(sys.argv[1])
with exclusive_lock(target, command="test"):
    lock = str(target.parent / f".{target.name}.lock")
    assert lock in open_files()
    with process_pool(1) as pool:
        print("held by the worker" if lock in pool.submit(open_files).result() else "released")
"""


def test_a_forked_worker_closes_its_copy_of_the_parents_lock(tmp_path):
    result = subprocess.run([sys.executable, "-c", WORKER_SEES_LOCK, str(tmp_path / "out")], capture_output=True,
                            text=True)
    assert result.stdout.strip() == "released", result.stderr
