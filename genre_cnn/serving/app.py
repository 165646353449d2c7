"""The HTTP side of ``genre-cnn serve``: a FastAPI app that takes uploads and answers genres.

The event loop only moves bytes: an upload is streamed to a temporary file (counting bytes, so
an oversized one is refused with 413 as soon as it crosses the limit), handed to a bounded pool
of inference processes (:mod:`genre_cnn.serving.inference`, the model opened once per process),
and always deleted. When the pool and its queue are full the answer is 503 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field

from genre_cnn.errors import AudioDecodeError, ConfigError, TooLongError
from genre_cnn.inference.classifier import open_classifier
from genre_cnn.models.store import ModelDir
from genre_cnn.runtime.parallel import process_pool, stop_pool
from genre_cnn.serving import inference
from genre_cnn.signal.audio import AUDIO_EXTENSIONS
from genre_cnn.version import __version__

__all__ = ["ServerConfig", "create_app"]

STATIC = Path(__file__).parent / "static"
MB = 2**20
#: Room for the multipart headers around the file, on top of ``max_upload_mb``.
FORM_OVERHEAD_BYTES = 64 * 1024
_PATHS = ("/", "/v1/classify", "/v1/model", "/healthz", "/readyz", "/metrics")
SHUTTING_DOWN = "the server is shutting down; send the song again in a moment"
SHUTTING_DOWN_HEADERS = {"Retry-After": "5", "Connection": "close"}


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """How the server runs (``genre-cnn serve``'s options).

    Attributes
    ----------
    model : path-like, optional
        Model folder (CNN, musicnn or baseline); default: ``models_root/latest``.
    models_root : path-like
    backend : {"auto", "litert", "keras"}
        What runs the network in the inference processes.
    workers : int, optional
        Inference processes (default: one per CPU core).
    queue : int, optional
        Requests that may wait for a free process before the server answers 503 (default: 8 per process).
    max_upload_mb : float
        Largest accepted upload in MiB (larger: 413).
    max_seconds : float
        Longest accepted recording in seconds (longer: 422).
    log : path-like, optional
        JSON-lines file that gets one line per classified song (see :func:`log_record`).
    """

    model: Optional[str | os.PathLike] = None
    models_root: str | os.PathLike = "models"
    backend: str = "auto"
    workers: Optional[int] = None
    queue: Optional[int] = None
    max_upload_mb: float = 50.0
    max_seconds: float = 1800.0
    log: Optional[str | os.PathLike] = None

    def __post_init__(self) -> None:
        for name in ("workers", "queue"):
            value = getattr(self, name)
            not_a_count = isinstance(value, bool) or not isinstance(value, int) or value < (name == "workers")
            if value is not None and not_a_count:
                raise ConfigError(f"{name}={value!r} must be a {'positive' if name == 'workers' else 'non-negative'} "
                                  "integer")
        for name in ("max_upload_mb", "max_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name}={value!r} must be a positive number")
        if self.log is not None:
            log = Path(self.log)
            if log.is_dir():
                raise ConfigError(f"log={log}: is a folder; give a file name, e.g. {log / 'requests.jsonl'}")
            if not log.parent.is_dir():
                raise ConfigError(f"log={log}: the folder {log.parent} does not exist; create it first")

    @property
    def n_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    @property
    def capacity(self) -> int:
        """Requests classified or waiting at once; one more gets 503."""
        return self.n_workers + (8 * self.n_workers if self.queue is None else self.queue)


# === Response schemas (what /docs shows) ===
class GenreScore(BaseModel):
    genre: str
    probability: float


class TimelineWindow(BaseModel):
    start: float = Field(description="seconds")
    end: float = Field(description="seconds")
    genre: Optional[str] = Field(description="most likely genre; null for a silent window")
    chunks: int
    probabilities: Optional[dict[str, float]]


class TimelineResult(BaseModel):
    classes: list[str]
    windows: list[TimelineWindow]


class Classification(BaseModel):
    """The same object as one entry of ``genre-cnn classify --json``, plus ``top`` and ``timeline``."""

    path: str = Field(description="the uploaded file's name")
    genre: str
    probabilities: dict[str, float]
    n_chunks: int
    error: Optional[str] = None
    unsure: Optional[bool] = Field(None, description="the top probability is below the model's threshold: the "
                                                     "first two genres of `top` are both plausible; null when the "
                                                     "model has no threshold")
    novelty: Optional[float] = Field(None, description="distance to the songs the model learned from, in units of "
                                                       "their own spacing (about 1: like them); null when the model "
                                                       "has no novelty reference")
    unfamiliar: Optional[bool] = Field(None, description="the novelty is above the model's threshold: the song is "
                                                         "not like anything the model learned from (speech, noise, "
                                                         "a genre it was not taught), so its genre means little")
    top: list[GenreScore]
    timeline: Optional[TimelineResult] = None
    explanation: Optional[str] = Field(None, description="with explain=true: the picture of `genre-cnn explain` "
                                                         "(what pushed the song to its genre), a base64 PNG")


class ModelInfo(BaseModel):
    name: str
    kind: str = Field(description="cnn, musicnn or baseline")
    makes_timelines: bool = Field(description="whether timeline=true works (CNN models)")
    explains: bool = Field(False, description="whether explain=true works (every kind this version fits)")
    classes: list[str]
    backend: str
    feature_config: Optional[dict]
    test_metrics: Optional[dict]
    trained_with: Optional[str] = Field(description="genre-cnn version that fitted the model")
    version: str = Field(description="genre-cnn version of this server")
    limits: dict[str, float] = Field(description="max_upload_mb and max_seconds this server accepts")


class Problem(BaseModel):
    detail: str


# === Metrics ===
class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("genre_cnn_requests", "HTTP requests by path and status", ["path", "status"],
                                registry=self.registry)
        self.latency = Histogram("genre_cnn_request_seconds", "Request latency in seconds", ["path"],
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60), registry=self.registry)
        self.songs = Counter("genre_cnn_songs_classified", "Songs classified, by top genre", ["genre"],
                             registry=self.registry)
        self.rejected = Counter("genre_cnn_rejected_uploads", "Uploads refused, by reason", ["reason"],
                                registry=self.registry)
        self.in_flight = Gauge("genre_cnn_inference_in_flight", "Songs being classified or waiting",
                               registry=self.registry)


class _UploadLimit(HTTPException):
    def __init__(self, limit_mb: float) -> None:
        super().__init__(413, f"the upload is larger than this server's limit of {limit_mb:g} MB "
                              "(--max-upload-mb); send a shorter or more compressed file")


class _ShutdownDuringUpload(HTTPException):
    def __init__(self) -> None:
        super().__init__(503, SHUTTING_DOWN, headers=SHUTTING_DOWN_HEADERS)


class _Gatekeeper:
    """Pure ASGI middleware: request metrics, and the upload size limit enforced while bytes arrive.

    An upload still arriving when the server begins to shut down (``closing`` is set) is answered
    503 at once instead of holding the shutdown up.
    """

    def __init__(self, app, *, metrics: _Metrics, max_upload_mb: float, closing: asyncio.Event) -> None:
        self.app, self.metrics, self.max_upload_mb, self.closing = app, metrics, max_upload_mb, closing
        self.limit = int(max_upload_mb * MB) + FORM_OVERHEAD_BYTES

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"] if scope["path"] in _PATHS else "other"
        started, status = time.perf_counter(), [500]

        async def send_counting(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if path == "/v1/classify":
                declared = dict(scope.get("headers") or []).get(b"content-length")
                if declared is not None and declared.isdigit() and int(declared) > self.limit:
                    self.metrics.rejected.labels("too_large").inc()
                    error = _UploadLimit(self.max_upload_mb)
                    response = JSONResponse({"detail": error.detail}, status_code=413, headers={"Connection": "close"})
                    return await response(scope, receive, send_counting)
                receive = self._counting(receive)
            await self.app(scope, receive, send_counting)
        finally:
            self.metrics.requests.labels(path, str(status[0])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)

    def _counting(self, receive):
        received = 0

        async def receive_counting():
            nonlocal received
            try:
                message = await _unless_closing(receive(), self.closing)
            except _ShuttingDown:
                self.metrics.rejected.labels("shutting_down").inc()
                raise _ShutdownDuringUpload() from None
            received += len(message.get("body", b""))
            if received > self.limit:
                self.metrics.rejected.labels("too_large").inc()
                raise _UploadLimit(self.max_upload_mb)
            return message

        return receive_counting


# === The inference pool ===
class _Pool:
    """Inference processes behind a bounded admission count (the queue)."""

    def __init__(self, config: ServerConfig, model_dir: Path) -> None:
        self.config, self.model_dir = config, model_dir
        self.in_flight = 0
        self.executor = None
        self.ready = False
        self.seconds_per_song = 1.0  # running estimate, for Retry-After
        self.closing = asyncio.Event()  # set when the server begins to shut down
        self.loop = None

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.executor = process_pool(self.config.n_workers, initializer=inference.start,
                                     initargs=(str(self.model_dir), self.config.backend), fork=False)

    def begin_shutdown(self) -> None:
        """Answer every song in progress with 503 now (safe to call from a signal handler)."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.closing.set)

    async def warm_up(self) -> None:
        """Start every process and open the model in it (before /readyz says ready)."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self.executor, inference.ready)
                               for _ in range(self.config.n_workers)))
        self.ready = True

    def close(self) -> None:
        """Answer songs in progress with 503 and end the inference processes for good."""
        self.closing.set()
        self.stop()

    def stop(self) -> None:
        """End the inference processes at once (a song in progress is answered 503 by :meth:`run`)."""
        if self.executor is not None:
            stop_pool(self.executor)
            self.executor = None

    @property
    def retry_after(self) -> int:
        backlog = max(1, self.in_flight - self.config.n_workers + 1)
        return max(1, math.ceil(self.seconds_per_song * backlog / self.config.n_workers))

    async def run(self, function, *args, **kwargs):
        if self.closing.is_set():
            raise _ShuttingDown()
        if self.in_flight >= self.config.capacity:
            raise _Busy(self.retry_after)
        self.in_flight += 1
        started = time.perf_counter()
        executor = self.executor
        try:
            work = asyncio.get_running_loop().run_in_executor(executor, functools.partial(function, *args, **kwargs))
            try:
                return await _unless_closing(work, self.closing)  # shutting down: answer now, do not hold it up
            except BrokenProcessPool:  # a process died (out of memory, killed): start a fresh pool
                if self.closing.is_set():
                    raise _ShuttingDown() from None
                if self.executor is executor:  # the first song to see it restarts the pool, the others retry
                    self.stop()
                    self.start()
                raise _Busy(1) from None
        finally:
            self.in_flight -= 1
            self.seconds_per_song = 0.8 * self.seconds_per_song + 0.2 * (time.perf_counter() - started)


class _ShuttingDown(Exception):
    """The server stops: the request is answered 503 instead of finishing."""


async def _unless_closing(awaitable, closing: asyncio.Event):
    """The result of ``awaitable``, unless ``closing`` is set first (:class:`_ShuttingDown`).

    Whatever is left unfinished is cancelled, also when the caller itself is cancelled.
    """
    task = asyncio.ensure_future(awaitable)
    waiter = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
            task.add_done_callback(lambda future: future.cancelled() or future.exception())  # nobody waits for it
    if not task.done() or task.cancelled():
        raise _ShuttingDown()
    return task.result()


class _Busy(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


# === The app ===
def create_app(config: ServerConfig = ServerConfig()) -> FastAPI:
    """The FastAPI app of ``genre-cnn serve`` (run it with uvicorn, or test it with TestClient).

    The model is opened here once, so a broken model folder fails now with its usual message;
    the inference processes start with the app (``lifespan``) and ``/readyz`` answers 200 once
    every one of them has the model open.

    Raises
    ------
    ModelError
        The model folder is missing or damaged.
    ConfigError
        A bad option.
    """
    classifier = open_classifier(config.model, models_root=config.models_root, backend=config.backend)
    model_dir = Path(classifier.model_dir).resolve()
    model_info = {**_model_info(classifier, model_dir),
                  "limits": {"max_upload_mb": config.max_upload_mb, "max_seconds": config.max_seconds}}
    metrics = _Metrics()
    pool = _Pool(config, model_dir)
    metrics.in_flight.set_function(lambda: pool.in_flight)
    log = _RequestLog(config.log, model=model_info["name"]) if config.log else None

    @contextlib.asynccontextmanager
    async def lifespan(app):
        pool.start()
        try:
            await pool.warm_up()
            yield
        finally:
            pool.close()

    app = FastAPI(title="genre-cnn", version=__version__, lifespan=lifespan,
                  description="Genre probabilities of a song: upload it to `POST /v1/classify`.")
    app.state.pool = pool
    app.state.metrics = metrics
    app.add_middleware(_Gatekeeper, metrics=metrics, max_upload_mb=config.max_upload_mb, closing=pool.closing)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        metrics.rejected.labels("invalid_request").inc()
        return JSONResponse({"detail": _describe_validation(exc)}, status_code=422)

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", summary="Liveness: the server process answers")
    async def healthz() -> dict:
        return {"status": "alive"}

    @app.get("/readyz", summary="Readiness: the model is open in every inference process",
             responses={503: {"model": Problem}})
    async def readyz():
        if not pool.ready:
            return JSONResponse({"detail": "the model is still loading"}, status_code=503, headers={"Retry-After": "1"})
        return {"status": "ready", "model": model_info["name"]}

    @app.get("/v1/model", response_model=ModelInfo, summary="The model this server runs")
    async def model() -> dict:
        return model_info

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/v1/classify", response_model=Classification, summary="Genre probabilities of one uploaded song",
        responses={413: {"model": Problem, "description": "upload too large"},
                   422: {"model": Problem, "description": "not audio, damaged, silent, too long, bad option"},
                   503: {"model": Problem, "description": "busy: retry after Retry-After seconds"}},
    )
    async def classify_upload(
        file: UploadFile = File(description="The song: any format `genre-cnn classify` reads (mp3, wav, flac, ogg...)"),
        top_k: int = Query(3, ge=1, le=1000, description="genres listed in `top`"),
        timeline: bool = Query(False, description="also give the probabilities of every window (CNN models)"),
        window: Optional[float] = Query(None, gt=0, le=1e6, description="timeline window in seconds"),
        hop: Optional[float] = Query(None, gt=0, le=1e6, description="timeline seconds between windows"),
        explain: bool = Query(False, description="also draw why the song got its genre (as `genre-cnn explain`)"),
    ):
        name = _display_name(file.filename)
        if not timeline and (window is not None or hop is not None):
            metrics.rejected.labels("invalid_request").inc()
            return _problem(422, "window and hop only apply with timeline=true")
        path = await _save_upload(file)
        try:
            result = await pool.run(inference.analyse, str(path), max_seconds=config.max_seconds,
                                    timeline=timeline, window=window, hop=hop, profile=log is not None,
                                    explain=explain, display_name=name)
        except _ShuttingDown:
            metrics.rejected.labels("shutting_down").inc()
            return _problem(503, SHUTTING_DOWN, headers=SHUTTING_DOWN_HEADERS)
        except _Busy as busy:
            metrics.rejected.labels("busy").inc()
            return _problem(503, f"the server is busy ({config.capacity} songs in progress); retry in "
                                 f"{busy.retry_after} s", headers={"Retry-After": str(busy.retry_after)})
        except TooLongError as exc:
            metrics.rejected.labels("too_long").inc()
            return _problem(422, str(exc).replace(str(path), name))
        except AudioDecodeError as exc:
            metrics.rejected.labels("not_audio").inc()
            return _problem(422, str(exc).replace(str(path), name))
        except ConfigError as exc:
            metrics.rejected.labels("invalid_request").inc()
            return _problem(422, str(exc))
        finally:
            path.unlink(missing_ok=True)
        prediction = result["prediction"]
        ranked = sorted(prediction["probabilities"].items(), key=lambda item: -item[1])[:top_k]
        metrics.songs.labels(prediction["genre"]).inc()
        if log is not None:
            log.write(result)
        answer = {**prediction, "path": name, "top": [{"genre": g, "probability": p} for g, p in ranked]}
        if timeline:
            answer["timeline"] = {"classes": result["timeline"]["classes"], "windows": result["timeline"]["windows"]}
        if explain:
            answer["explanation"] = result["explanation"]
        return answer

    return app


def _problem(status: int, detail: str, *, headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _describe_validation(exc: RequestValidationError) -> str:
    """One line for a rejected request, e.g. "no file: upload the song as the multipart field 'file'"."""
    problems = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        field = ".".join(location) or "request"
        if field == "file" and error.get("type") == "missing":
            problems.append("no file: upload the song as the multipart/form-data field 'file' "
                            "(curl -F file=@song.mp3 ...)")
        else:
            problems.append(f"{field}: {error.get('msg', 'invalid')}")
    return "; ".join(problems) or "invalid request"


def _display_name(filename: Optional[str]) -> str:
    """The client's file name, for messages only (never a path on this machine)."""
    name = re.sub(r"[\x00-\x1f\x7f]", "", (filename or "").replace("\\", "/").rsplit("/", 1)[-1])
    return name[:200] or "upload"


async def _save_upload(file: UploadFile) -> Path:
    """Copy the upload (already spooled by the form parser) to a named temporary file.

    Only the file's extension is taken from the client, and only when it is a known audio one
    (some decoders go by it); the name is the temporary file's own.
    """
    suffix = Path(_display_name(file.filename)).suffix.lower()
    handle, name = tempfile.mkstemp(prefix="genre-cnn-upload-", suffix=suffix if suffix in AUDIO_EXTENSIONS else "")
    try:
        with os.fdopen(handle, "wb") as out:
            await asyncio.to_thread(shutil.copyfileobj, file.file, out, MB)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    finally:
        await file.close()
    return Path(name)


def _model_info(classifier, model_dir: Path) -> dict:
    folder = ModelDir(model_dir)
    saved = folder.read_config()
    metrics = folder.read_metrics()
    test_metrics = metrics.to_dict() if metrics is not None else None
    feature_config = classifier.feature_config
    return {
        "name": model_dir.name, "kind": classifier.kind, "makes_timelines": classifier.makes_timelines,
        "explains": True,  # every kind explains its verdicts (the Classifier protocol's explain_file)
        "classes": list(classifier.classes),
        "backend": classifier.backend, "feature_config": feature_config.to_dict() if feature_config else None,
        "test_metrics": test_metrics, "trained_with": saved.get("package_version"), "version": __version__,
    }


class _RequestLog:
    """``serve --log``: one JSON line per classified song (appended, flushed, one write per line)."""

    def __init__(self, path: str | os.PathLike, *, model: str) -> None:
        self.path, self.model = Path(path), model
        self.lock = threading.Lock()

    def write(self, result: dict) -> None:
        line = json.dumps(log_record(result, model=self.model), separators=(",", ":")) + "\n"
        with self.lock, open(self.path, "a", encoding="utf-8") as out:
            out.write(line)


def log_record(result: dict, *, model: str) -> dict:
    """The ``serve --log`` line of one classified song: how it sounded and what the model said.

    Keys: ``time`` (UTC, ISO 8601), ``model``, ``genre`` and ``probability`` (top genre),
    ``n_chunks``, and the song's profile as ``genre-cnn monitor`` computes it
    (:func:`genre_cnn.signal.audio.audio_levels`): ``seconds``, ``sample_rate`` and ``channels``
    (the file's own), ``loudness_db``, ``clipping``, ``silence``, and ``band_means`` (mean log-mel
    level per band of the model's features, in dB). No audio and no file name are kept.
    """
    prediction, profile = result["prediction"], result["profile"]
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "model": model, "genre": prediction["genre"],
        "probability": round(prediction["probabilities"][prediction["genre"]], 6),
        "n_chunks": prediction["n_chunks"],
        **{name: round(value, 6) if isinstance(value, float) else value for name, value in profile.items()},
    }
