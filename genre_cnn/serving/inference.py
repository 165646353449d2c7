"""What one inference process does with an uploaded file: the CPU-bound half of ``serve``.

Each process of the server's pool opens the model once (:func:`start`) and then classifies the
files the event loop hands it (:func:`analyse`). Nothing here knows about HTTP.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import tempfile
import warnings
from pathlib import Path
from typing import Optional

from genre_cnn.errors import AudioDecodeError, ConfigError, GenreCnnWarning, TooLongError
from genre_cnn.inference.classifier import open_classifier
from genre_cnn.inference.timeline import check_timeline_options, classify_timeline
from genre_cnn.monitoring.profile import sound_profile
from genre_cnn.signal.audio import audio_info, decode_once

__all__ = ["start", "analyse"]

_classifier = None
#: Longest upload, in seconds, decoded once into a copy for several readers (a mono float32 WAV at the
#: upload's rate: 176 kB a second at 44.1 kHz, so at most ~106 MB); longer ones are decoded by each reader.
COPY_MAX_SECONDS = 600


def start(model_dir: str, backend: str) -> None:
    """Open the model in this process (the pool's initializer)."""
    global _classifier

    with warnings.catch_warnings():  # the server's own process has said what there was to say about the model
        warnings.simplefilter("ignore", GenreCnnWarning)
        _classifier = open_classifier(model_dir, backend=backend)


def ready() -> bool:
    """True once :func:`start` has run in this process (used to warm the pool up)."""
    return _classifier is not None


def analyse(path: str, *, max_seconds: float, timeline: bool = False, window: Optional[float] = None,
            hop: Optional[float] = None, profile: bool = False, explain: bool = False,
            display_name: Optional[str] = None) -> dict:
    """Classify one file as ``classify`` does, plus what the server reports and logs about it.

    Parameters
    ----------
    path : str
        The uploaded file, saved by the server.
    max_seconds : float
        Longer recordings are refused before decoding (when the header states a duration).
    timeline : bool
        Also compute the genre probabilities of every ``window`` seconds, one every ``hop``.
    profile : bool
        Also compute the song's audio statistics and mean log-mel level per band (for ``serve --log``),
        as :mod:`genre_cnn.monitoring` does.
    explain : bool
        Also draw why the song got its genre (:mod:`genre_cnn.inference.occlusion`), as a base64 PNG.
    display_name : str, optional
        The client's name of the file, for the picture's title.

    Returns
    -------
    dict
        ``prediction`` (:class:`~genre_cnn.inference.classifier.SongPrediction` as a dict), ``info`` (sample
        rate, channels, seconds), and ``timeline`` / ``profile`` / ``explanation`` when asked for.

    Raises
    ------
    AudioDecodeError
        Not audio, damaged, silent, too short, or too long (:class:`TooLongError`).
    ConfigError
        A timeline asked of a model that cannot make one, or a bad ``window``/``hop``.
    """
    if timeline:
        if not _classifier.makes_timelines:
            raise ConfigError(f"timeline=true needs a CNN trained from scratch; this server's model is a "
                              f"{_classifier.kind} model")
        check_timeline_options(_classifier, window=window, hop=hop)  # before any decoding
    info = audio_info(path)
    if info.seconds is not None and info.seconds > max_seconds:
        raise TooLongError(f"{path}: the recording lasts {info.seconds:.0f} s, more than this server's limit of "
                           f"{max_seconds:g} s (--max-seconds); send an excerpt")
    with contextlib.ExitStack() as cleanup:
        song = _decoded_copy(path, info, cleanup) if timeline or explain or profile else path
        try:
            result = {"prediction": _classified(song, upload=path), "info": _info(info)}
            if timeline:
                moments = classify_timeline(song, _classifier, window=window, hop=hop)
                result["timeline"] = {**moments.to_dict(), "path": path}
            if explain:
                explanation, draw = _classifier.explain_file(song, genre=result["prediction"]["genre"])
                picture = io.BytesIO()
                draw(dataclasses.replace(explanation, path=display_name or "upload"), picture)
                result["explanation"] = base64.b64encode(picture.getvalue()).decode("ascii")
            if profile:
                result["profile"] = _profile(song, info)
        except AudioDecodeError as exc:  # say it of the upload, not of its decoded copy
            if song == path:
                raise
            raise type(exc)(str(exc).replace(str(song), path), parameter=exc.parameter) from exc
    return result


def _decoded_copy(path: str, info, cleanup: contextlib.ExitStack) -> str:
    """The upload decoded once (mono, at its own rate, in a folder ``cleanup`` removes) for the several
    readers of one request; the upload itself when the copy would be long (:data:`COPY_MAX_SECONDS`, or a
    length the header does not state) or cannot be written (a full disk): each reader then decodes it."""
    if info.seconds is None or info.seconds > COPY_MAX_SECONDS:
        return path
    scratch = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="genre-cnn-serve-")))
    try:
        return str(decode_once(path, scratch / "decoded.wav", sr=info.sample_rate))
    except (OSError, RuntimeError):  # soundfile's write errors are RuntimeErrors
        return path


def _classified(path, *, upload: str) -> dict:
    """The verdict on ``path`` (the upload or its decoded copy), as a dict naming the upload."""
    prediction = _classifier.classify_file(path)
    if not prediction.ok:
        raise AudioDecodeError(prediction.error)
    return {**prediction.to_dict(), "path": upload}


def _info(info) -> dict:
    return {"sample_rate": info.sample_rate, "channels": info.channels, "seconds": info.seconds}


def _profile(song: Path, info) -> dict:
    """:func:`sound_profile` of the decoded copy, with the upload's own rate and channels."""
    measured = sound_profile(song, _classifier)
    return {**measured, "sample_rate": info.sample_rate, "channels": info.channels,
            "band_means": measured["band_means"].round(3).tolist()}
