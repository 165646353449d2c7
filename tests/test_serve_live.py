"""`genre-cnn serve` as users run it: a real uvicorn server on a free port, real clients, a real browser."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from genre_cnn.inference.classifier import classify

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc)."""
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (FileNotFoundError, StopIteration, ProcessLookupError):
            continue
    return total


@pytest.fixture(scope="module")
def server(trained, tmp_path_factory):
    """`genre-cnn serve` in its own process, with its own TMPDIR so leftovers show."""
    temporary = tmp_path_factory.mktemp("server-tmp")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "genre_cnn", "serve", "--model", str(trained["result"].model_dir),
         "--port", str(port), "--workers", "2"],
        env={**os.environ, "TMPDIR": str(temporary)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the server did not start: {process.stdout.read().decode(errors='replace')[-2000:]}")
        time.sleep(0.2)
    yield {"url": base, "pid": process.pid, "tmp": temporary}
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail("the server did not stop on Ctrl+C")


def test_50_uploads_from_8_concurrent_clients_are_all_answered_correctly(server, trained):
    songs = sorted(trained["tracks"].rglob("*.mp3"))
    expected = {p.name: prediction for p, prediction in zip(songs, classify(songs, model=trained["result"].model_dir))}
    work = [songs[i % len(songs)] for i in range(50)]
    baseline_rss = rss_mb(server["pid"])

    def send(path):
        with httpx.Client(timeout=60) as client:
            return path, client.post(f"{server['url']}/v1/classify", files={"file": (path.name, path.read_bytes())})

    with ThreadPoolExecutor(8) as clients:
        answers = list(clients.map(send, work))
    for path, answer in answers:
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["genre"] == expected[path.name].genre
        assert body["probabilities"] == pytest.approx(expected[path.name].probabilities, abs=1e-6)
    assert list(server["tmp"].iterdir()) == []
    assert rss_mb(server["pid"]) < max(1.5 * baseline_rss, baseline_rss + 300)  # no growth per request


def test_a_big_upload_over_the_network_is_refused_with_413(server):
    with httpx.Client(timeout=60) as client:
        answer = client.post(f"{server['url']}/v1/classify", files={"file": ("big.wav", b"0" * (51 * 2**20))})
    assert answer.status_code == 413
    assert "50 MB" in answer.json()["detail"]


def test_fuzzing_the_api_from_its_schema_finds_no_server_error(server):
    schema = schemathesis.openapi.from_url(f"{server['url']}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/classify", "/v1/model", "/healthz", "/readyz", "/metrics"}
    before = classify_requests(server)
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case):
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        no_server_error()
    assert classify_requests(server) >= before + 10  # the uploads really were fuzzed


def classify_requests(server) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    metrics = text_string_to_metric_families(httpx.get(f"{server['url']}/metrics").text)
    return sum(sample.value for family in metrics if family.name == "genre_cnn_requests"
               for sample in family.samples if sample.labels.get("path") == "/v1/classify"
               and sample.name.endswith("_total"))


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium: install it (apt-get install -y chromium) to run the "
                                             "browser test; Playwright drives the system browser")
def test_a_browser_uploads_a_song_and_reads_its_genre(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    song = ROOT / "tracks" / "chiptune" / "goattracker_dojo.mp3"
    with httpx.Client(timeout=60) as client:
        expected = client.post(f"{server['url']}/v1/classify", files={"file": (song.name, song.read_bytes())}).json()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
        page.goto(server["url"])
        expect(page.locator("#model-line")).to_contain_text("knows 3 genres")
        page.keyboard.press("Tab")  # keyboard users reach the file chooser first
        assert page.evaluate("document.activeElement.id") == "file"
        page.locator("#explain").check()  # the picture of genre-cnn explain, asked for (it costs time)
        page.locator("#file").set_input_files(str(song))
        expect(page.locator("#result")).to_be_visible(timeout=30_000)
        assert page.locator("#top-genre").inner_text() == expected["genre"]
        assert page.locator("#song-name").inner_text() == song.name
        unsure = (f" Unsure: {expected['top'][0]['genre']} or {expected['top'][1]['genre']}, the model is not "
                  "confident enough to choose.") if expected["unsure"] else ""
        unfamiliar = (f" Unfamiliar: this is not like any song the model learned from (novelty "
                      f"{expected['novelty']:.1f}), so its genre means little.") if expected["unfamiliar"] else ""
        assert page.locator("#result-detail").inner_text() == (f"Combined from {expected['n_chunks']} chunk(s)."
                                                               f"{unsure}{unfamiliar}")
        assert page.locator(".bar").count() == 3
        expect(page.locator("#timeline-box")).to_be_visible()  # 30 s of 1 s windows
        expect(page.locator("#why-box")).to_be_visible()  # the picture of genre-cnn explain
        assert page.evaluate("document.getElementById('why').naturalWidth") > 400

        page.locator("#file").set_input_files({"name": "notes.mp3", "mimeType": "audio/mpeg", "buffer": b"not audio"})
        expect(page.locator("#error")).to_contain_text("notes.mp3: cannot decode audio")
        browser.close()


def test_sigterm_with_an_upload_in_progress_answers_503_and_stops_at_once(trained, tmp_path):
    from genre_cnn.serving import GRACEFUL_SHUTDOWN_SECONDS

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "genre_cnn", "serve", "--model", str(trained["result"].model_dir), "--port", str(port),
         "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not _ready(port):
        assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)
    part = (b'--XX\r\nContent-Disposition: form-data; name="file"; filename="song.wav"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\nRIFF")
    with socket.create_connection(("127.0.0.1", port)) as upload:  # a slow client: the rest never comes
        upload.sendall(b"POST /v1/classify HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=XX\r\n"
                       b"Content-Length: 100000\r\n\r\n" + part)
        time.sleep(0.5)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        upload.settimeout(GRACEFUL_SHUTDOWN_SECONDS)
        answer = upload.recv(4096)
        output, _ = process.communicate(timeout=GRACEFUL_SHUTDOWN_SECONDS)
    assert time.monotonic() - started < GRACEFUL_SHUTDOWN_SECONDS
    assert answer.startswith(b"HTTP/1.1 503") and b"retry-after: 5" in answer.lower()
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn ends by re-raising the signal it handled
    assert "Traceback" not in output and "leaked" not in output, output


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    except httpx.TransportError:
        return False
