"""`genre-cnn serve`: the HTTP API answers like `classify`, and refuses bad requests with a 4xx that says why."""

from __future__ import annotations

import io
import json
import tempfile

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import SR
from fastapi.testclient import TestClient

from genre_cnn.cli import main
from genre_cnn.errors import ConfigError, ModelError
from genre_cnn.inference.classifier import classify
from genre_cnn.inference.timeline import classify_timeline
from genre_cnn.serving import ServerConfig, create_app

pytestmark = pytest.mark.slow  # starts inference processes and uses the trained model


@pytest.fixture(scope="module")
def model_dir(trained):
    return trained["result"].model_dir


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    """Every temporary file the server makes goes here, so tests can see that none is left."""
    folder = tmp_path_factory.mktemp("uploads")
    before, tempfile.tempdir = tempfile.tempdir, str(folder)
    yield folder
    tempfile.tempdir = before


@pytest.fixture(scope="module")
def client(model_dir, uploads, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "requests.jsonl"
    app = create_app(ServerConfig(model=model_dir, workers=1, max_upload_mb=1, max_seconds=20, log=log))
    with TestClient(app) as client:
        client.log = log
        yield client


def upload(client, path_or_bytes, *, name="song.mp3", **params):
    content = path_or_bytes.read_bytes() if hasattr(path_or_bytes, "read_bytes") else path_or_bytes
    return client.post("/v1/classify", params=params, files={"file": (name, content, "application/octet-stream")})


def wav_bytes(samples: np.ndarray, sr: int = SR) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sr, format="WAV")
    return buffer.getvalue()


def damaged_mp3() -> bytes:
    """A third of a real mp3, then bytes that are not mp3 frames."""
    from conftest import synth_song

    buffer = io.BytesIO()
    soundfile.write(buffer, synth_song("tones", 0, seconds=3.0), SR, format="MP3")
    data = buffer.getvalue()
    return data[: len(data) // 3] + bytes(range(256)) * 200


def songs(trained):
    return sorted(trained["tracks"].rglob("*.mp3"))


# --- answers ---------------------------------------------------------------------------------------

def test_an_upload_gets_the_same_probabilities_as_the_cli(client, trained, model_dir):
    for path in songs(trained)[::4]:
        answer = upload(client, path, name=path.name)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        expected = classify([path], model=model_dir)[0]
        assert body["path"] == path.name and body["genre"] == expected.genre
        assert body["n_chunks"] == expected.n_chunks and body["error"] is None
        assert body["unsure"] == expected.unsure  # with the model's threshold (None: it has none)
        assert (body["novelty"], body["unfamiliar"]) == (expected.novelty, expected.unfamiliar)
        for genre, probability in expected.probabilities.items():
            assert body["probabilities"][genre] == pytest.approx(probability, abs=1e-6)


def test_top_lists_the_most_likely_genres_first(client, trained):
    body = upload(client, songs(trained)[0], top_k=2).json()
    assert len(body["top"]) == 2
    assert body["top"][0]["genre"] == body["genre"]
    assert body["top"][0]["probability"] >= body["top"][1]["probability"]


def test_timeline_gives_the_probabilities_of_every_window(client, trained, model_dir):
    from genre_cnn.inference.classifier import load_classifier

    path = songs(trained)[0]
    body = upload(client, path, timeline="true", window=1, hop=0.5).json()
    expected = classify_timeline(path, load_classifier(model_dir), window=1, hop=0.5).to_dict()
    assert body["timeline"]["classes"] == expected["classes"]
    assert [w["start"] for w in body["timeline"]["windows"]] == [w["start"] for w in expected["windows"]]
    assert len(body["timeline"]["windows"]) > 1


def test_explain_gives_the_picture_of_genre_cnn_explain(client, trained):
    import base64

    body = upload(client, songs(trained)[0], name="my song.mp3", explain="true").json()
    picture = base64.b64decode(body["explanation"])
    assert picture[:4] == b"\x89PNG" and len(picture) > 10_000
    assert upload(client, songs(trained)[0]).json()["explanation"] is None  # only when asked
    assert client.get("/v1/model").json()["explains"] is True


def test_one_upload_is_decoded_once_for_its_verdict_timeline_picture_and_profile(trained, model_dir, monkeypatch):
    """Each reader of the upload reads one decoded copy; the answers are those of the upload itself."""
    from genre_cnn.inference.classifier import load_classifier
    from genre_cnn.monitoring.profile import sound_profile
    from genre_cnn.serving import inference
    from genre_cnn.signal import audio

    path = str(songs(trained)[0])
    decoded, open_source = [], audio._open_source

    def counting_decoder(source_path):
        source = open_source(source_path)
        blocks = source.blocks
        source.blocks = lambda *args, **options: decoded.append(str(source_path)) or blocks(*args, **options)
        return source

    monkeypatch.setattr(audio, "_open_source", counting_decoder)
    monkeypatch.setattr(inference, "_classifier", load_classifier(model_dir))
    result = inference.analyse(path, max_seconds=60, timeline=True, window=1, hop=0.5, explain=True, profile=True)
    assert decoded.count(path) == 1, decoded

    classifier = load_classifier(model_dir)
    assert result["prediction"] == {**classifier.classify_file(path).to_dict(), "path": path}
    assert result["timeline"] == classify_timeline(path, classifier, window=1, hop=0.5).to_dict()
    expected = sound_profile(path, classifier)
    assert result["profile"]["band_means"] == expected["band_means"].round(3).tolist()
    assert {k: result["profile"][k] for k in ("sample_rate", "channels", "loudness_db", "clipping", "silence")} == \
        {k: expected[k] for k in ("sample_rate", "channels", "loudness_db", "clipping", "silence")}
    assert result["explanation"][:8] == "iVBORw0K"  # a PNG, base64


@pytest.mark.parametrize("why", ["too long to copy", "the copy cannot be written"])
def test_without_a_decoded_copy_each_reader_decodes_the_upload_and_answers_the_same(trained, model_dir, monkeypatch,
                                                                                    why):
    from genre_cnn.inference.classifier import load_classifier
    from genre_cnn.serving import inference

    def full_disk(*args, **options):
        raise RuntimeError("Error : No space left on device")

    monkeypatch.setattr(inference, "_classifier", load_classifier(model_dir))
    path = str(songs(trained)[0])
    copied = inference.analyse(path, max_seconds=60, timeline=True, window=1, hop=0.5)
    if why == "too long to copy":
        monkeypatch.setattr(inference, "COPY_MAX_SECONDS", 0)
    else:
        monkeypatch.setattr(inference, "decode_once", full_disk)
    assert inference.analyse(path, max_seconds=60, timeline=True, window=1, hop=0.5) == copied


def test_a_silent_upload_with_a_timeline_is_named_as_the_upload_not_its_decoded_copy(trained, model_dir, tmp_path,
                                                                                       monkeypatch):
    from genre_cnn.errors import AudioDecodeError
    from genre_cnn.inference.classifier import load_classifier
    from genre_cnn.serving import inference

    monkeypatch.setattr(inference, "_classifier", load_classifier(model_dir))
    silent = tmp_path / "upload.wav"
    soundfile.write(silent, np.zeros(SR * 3, np.float32), SR)
    with pytest.raises(AudioDecodeError, match=rf"^{silent}: the audio is silent"):
        inference.analyse(str(silent), max_seconds=60, timeline=True, profile=True)


def test_model_describes_what_the_server_runs(client, model_dir):
    from genre_cnn import __version__

    info = client.get("/v1/model").json()
    assert info["name"] == model_dir.name and info["kind"] == "cnn"
    assert info["classes"] == ["chirps", "noise", "tones"]
    assert info["feature_config"]["sr"] == SR and info["version"] == __version__
    assert "song_accuracy" in json.dumps(info["test_metrics"])
    assert info["limits"] == {"max_upload_mb": 1, "max_seconds": 20}


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").status_code == 200


def test_the_web_page_and_its_assets_come_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert asset in page.text
        assert client.get(asset).status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN: works offline


def test_openapi_documents_the_api(client):
    schema = client.get("/openapi.json").json()
    assert {"/v1/classify", "/v1/model", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


# --- errors a client can act on ----------------------------------------------------------------------

@pytest.mark.parametrize("content, name, message", [
    (b"definitely not audio", "notes.mp3", "notes.mp3: cannot decode audio"),
    (b"", "empty.wav", "empty.wav: the file is empty"),
    (wav_bytes(np.zeros(3 * SR, np.float32)), "quiet.wav", "quiet.wav: the audio is silent"),
    (wav_bytes(np.full(10, 0.1, np.float32)), "click.wav", "click.wav: only 0.00 s of audio"),
    (damaged_mp3(), "broken.mp3", "broken.mp3: decoding failed after"),
    (wav_bytes(np.full(25 * SR, 0.1, np.float32)), "long.wav", "more than this server's limit of 20 s (--max-seconds)"),
])
def test_bad_audio_is_a_422_with_the_cli_message(client, content, name, message):
    answer = upload(client, content, name=name)
    assert answer.status_code == 422
    assert message in answer.json()["detail"]
    assert "genre-cnn-upload" not in answer.json()["detail"]  # names the upload, never the server's path


def test_an_upload_over_the_limit_is_a_413_naming_the_limit(client):
    answer = upload(client, b"0" * (2 * 2**20))
    assert answer.status_code == 413
    assert "limit of 1 MB (--max-upload-mb)" in answer.json()["detail"]


def test_an_upload_without_a_declared_length_is_cut_off_at_the_limit(client):
    def body():  # chunked transfer encoding: the server only learns the size by counting
        yield b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp3\"\r\n\r\n"
        for _ in range(40):
            yield b"0" * 65536
        yield b"\r\n--b--\r\n"

    answer = client.post("/v1/classify", content=body(), headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert answer.status_code == 413


@pytest.mark.parametrize("request_kwargs, message", [
    ({"files": {}}, "no file: upload the song as the multipart/form-data field 'file'"),
    ({"data": {"song": "x"}}, "no file"),
    ({"params": {"top_k": 0}, "files": {"file": ("a.mp3", b"x")}}, "top_k"),
    ({"params": {"window": 5}, "files": {"file": ("a.mp3", b"x")}}, "window and hop only apply with timeline=true"),
])
def test_a_malformed_request_is_a_422_that_says_what_to_send(client, request_kwargs, message):
    answer = client.post("/v1/classify", **request_kwargs)
    assert answer.status_code == 422
    assert message in answer.json()["detail"]


def test_a_timeline_window_shorter_than_a_chunk_is_refused(client, trained):
    answer = upload(client, songs(trained)[0], timeline="true", window=0.2)
    assert answer.status_code == 422
    assert "window=0.2 is shorter than the model's chunks" in answer.json()["detail"]


def test_a_timeline_hop_below_the_finest_step_is_refused_before_any_work(client, trained):
    answer = upload(client, songs(trained)[0], timeline="true", hop=0.001)
    assert answer.status_code == 422
    assert answer.json()["detail"] == ("hop=0.001 is below the finest timeline step of 0.5 s (the work grows as "
                                       "seconds / hop); use hop=0.5 or more")


def sleep_for(seconds: float) -> str:  # a song that takes long to classify, run in an inference process
    import time

    time.sleep(seconds)
    return "done"


def test_shutting_down_answers_a_song_in_progress_at_once_and_ends_its_process(model_dir):
    import asyncio
    import time

    import psutil

    from genre_cnn.serving.app import _Pool, _ShuttingDown

    async def shut_down_while_classifying():
        before = set(psutil.Process().children())
        pool = _Pool(ServerConfig(model=model_dir, workers=1), model_dir)
        pool.start()
        await pool.warm_up()
        workers = [child.pid for child in set(psutil.Process().children()) - before
                   if "spawn_main" in " ".join(child.cmdline())]
        song = asyncio.ensure_future(pool.run(sleep_for, 60))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        pool.begin_shutdown()
        with pytest.raises(_ShuttingDown):
            await song
        pool.stop()
        return time.monotonic() - started, workers

    seconds, workers = asyncio.run(shut_down_while_classifying())
    assert seconds < 3, "the shutdown waited for the song"
    assert workers

    def running(pid):
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + 3
    while any(map(running, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(running, workers)), "the inference process still runs the song"


def test_a_full_server_answers_503_with_retry_after(client, trained):
    pool = client.app.state.pool
    pool.in_flight += pool.config.capacity
    try:
        answer = upload(client, songs(trained)[0])
    finally:
        pool.in_flight -= pool.config.capacity
    assert answer.status_code == 503
    assert int(answer.headers["Retry-After"]) >= 1
    assert "busy" in answer.json()["detail"]


def test_no_upload_outlives_its_request(client, trained, uploads):
    upload(client, songs(trained)[0])
    upload(client, b"not audio")
    upload(client, b"0" * (2 * 2**20))
    assert list(uploads.iterdir()) == []


# --- what operators see ----------------------------------------------------------------------------

def test_metrics_count_requests_genres_and_rejections(client, trained):
    body = upload(client, songs(trained)[0]).json()
    upload(client, b"not audio")
    text = client.get("/metrics").text
    assert f'genre_cnn_songs_classified_total{{genre="{body["genre"]}"}}' in text
    assert 'genre_cnn_rejected_uploads_total{reason="not_audio"}' in text
    assert 'genre_cnn_requests_total{path="/v1/classify",status="200"}' in text
    assert 'genre_cnn_request_seconds_bucket{le="1.0",path="/v1/classify"}' in text


def test_the_log_gets_one_line_per_classified_song(client, trained):
    before = client.log.read_text().count("\n") if client.log.exists() else 0
    body = upload(client, songs(trained)[0]).json()
    upload(client, b"not audio")
    lines = client.log.read_text().splitlines()
    assert len(lines) == before + 1
    record = json.loads(lines[-1])
    assert record["genre"] == body["genre"]
    assert record["probability"] == pytest.approx(body["probabilities"][body["genre"]])
    assert record["sample_rate"] == SR and record["channels"] == 1 and record["seconds"] == pytest.approx(3.0, abs=0.1)
    assert len(record["band_means"]) == 16 and all(np.isfinite(record["band_means"]))
    assert "path" not in record  # no file names in the log


# --- starting the server -------------------------------------------------------------------------

def test_a_missing_model_fails_before_listening(tmp_path):
    with pytest.raises(ModelError):
        create_app(ServerConfig(model=tmp_path / "nothing"))
    result = CliRunner().invoke(main, ["serve", "--model", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "Error:" in result.output


@pytest.mark.parametrize("options, message", [
    ({"workers": 0}, "workers=0 must be a positive integer"),
    ({"max_upload_mb": -1}, "max_upload_mb=-1 must be a positive number"),
    ({"log": "/no/such/folder/log.jsonl"}, "the folder /no/such/folder does not exist"),
])
def test_bad_server_options_are_named(options, message):
    with pytest.raises(ConfigError, match=message):
        ServerConfig(**options)


def test_a_port_in_use_is_named_with_the_fix(model_dir):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--model", str(model_dir), "--port", str(port)])
    assert result.exit_code == 1
    assert f"--port {port}: cannot listen on 127.0.0.1:{port}" in result.output
