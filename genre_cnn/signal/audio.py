"""Decode an audio file into mono float32 samples at a chosen sample rate, block by block."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import shutil
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from genre_cnn.errors import AudioDecodeError
from genre_cnn.runtime.native import native_stderr_silenced

__all__ = ["AUDIO_EXTENSIONS", "AudioInfo", "is_audio_file", "check_audio_path", "audio_info", "audio_blocks",
           "mono_mix",
           "LevelMeter", "audio_levels", "AUDIO_FIELDS", "LEVEL_FIELDS",
           "load_audio", "load_excerpt", "decode_once"]

#: Formats that only ffmpeg (through audioread) decodes here.
FFMPEG_EXTENSIONS = (".m4a", ".aac", ".mp4", ".wma", ".opus", ".webm", ".mka")
#: File name endings treated as audio (compared case-insensitively).
AUDIO_EXTENSIONS = (".mp3", ".wav", ".ogg", ".oga", ".flac", ".au", ".snd", ".aif", ".aiff", ".aifc",
                    *FFMPEG_EXTENSIONS)
_FORMATS = "mp3/wav/ogg/flac/aiff"
#: More bytes per second of decoded audio than any real format needs (192 kHz, 8 channels of
#: float32 is 6 MB/s): a file that decodes to so little is not audio that a decoder understood.
MAX_PLAUSIBLE_BYTES_PER_SECOND = 8_000_000

#: Seconds of audio decoded at a time: memory stays bounded however long the file is.
BLOCK_SECONDS = 10.0


def is_audio_file(path: str | os.PathLike) -> bool:
    """True for a visible file whose name ends in one of :data:`AUDIO_EXTENSIONS`."""
    name = Path(path).name
    return not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS)


def check_audio_path(path: str | os.PathLike) -> Path:
    """Return ``path`` if it is a readable, non-empty file; otherwise say precisely what it is.

    Raises
    ------
    AudioDecodeError
        Missing file, broken symbolic link, symbolic link loop, folder, no read permission, or
        zero bytes.
    """
    path = Path(path)
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            raise AudioDecodeError(f"{path}: is a symbolic link loop; point it at an audio file") from None
        except OSError as exc:
            if "loop" in str(exc).lower() or getattr(exc, "errno", None) == 40:
                raise AudioDecodeError(f"{path}: is a symbolic link loop; point it at an audio file") from None
            raise AudioDecodeError(
                f"{path}: is a broken symbolic link (to {os.readlink(path)}); fix or remove it"
            ) from None
    if path.is_dir():
        raise AudioDecodeError(f"{path}: is a folder, not an audio file")
    if not path.is_file():
        raise AudioDecodeError(f"{path}: does not exist")
    if not os.access(path, os.R_OK):
        raise AudioDecodeError(f"{path}: permission denied; make the file readable (chmod +r)")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: the file is empty (0 bytes)")
    return path


@dataclasses.dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, before any decoding.

    Attributes
    ----------
    sample_rate : int
        The file's own sample rate in Hz.
    channels : int
    seconds : float or None
        Duration, when the format states it (None for streams that must be decoded to know).
    """

    sample_rate: int
    channels: int
    seconds: float | None


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of an audio file (sample rate, channels, duration) without decoding it.

    Raises
    ------
    AudioDecodeError
        The file is missing, unreadable or not audio (the same messages as :func:`audio_blocks`).
    """
    path = check_audio_path(path)
    with _open_source(path) as source:
        return AudioInfo(sample_rate=source.samplerate, channels=source.channels, seconds=source.seconds)


#: A sample at or above this magnitude (of full scale) counts as clipped.
CLIP_LEVEL = 0.99
#: Frames of this length whose RMS is below SILENCE_DB count as silence.
SILENCE_FRAME_SECONDS = 0.1
SILENCE_DB = -50.0
#: Loudness of digital silence (an RMS of 0) in dBFS.
FLOOR_DB = -120.0
#: What :class:`LevelMeter` measures, and the header facts recorded beside it.
LEVEL_FIELDS = ("seconds", "loudness_db", "clipping", "silence")
AUDIO_FIELDS = ("seconds", "sample_rate", "channels", "loudness_db", "clipping", "silence")


class LevelMeter:
    """Duration, loudness, clipping and silence of a recording, measured on its blocks as they are decoded.

    One pass, whatever reads the blocks: ``monitor`` measuring a song, or ``build-dataset``
    recording every song's levels while it computes the features (so that ``fit`` need not decode
    the songs again for the reference profile).

    Parameters
    ----------
    sr : int
        Sample rate of the blocks.
    """

    def __init__(self, sr: int) -> None:
        self.sr = sr
        self._frame = max(1, round(SILENCE_FRAME_SECONDS * sr))
        self._squares, self._clipped, self._samples, self._frames, self._silent = 0.0, 0, 0, 0, 0
        self._carry = np.zeros(0, np.float32)

    def metered(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """``blocks`` unchanged, each measured on its way through."""
        for block in blocks:
            self.add(block)
            yield block

    def add(self, block: np.ndarray) -> None:
        """Measure the next block (mono, at ``sr``)."""
        self._squares += float(np.dot(block, block))
        self._clipped += int(np.count_nonzero(np.abs(block) >= CLIP_LEVEL))
        self._samples += len(block)
        block = np.concatenate([self._carry, block])
        whole = len(block) // self._frame * self._frame
        power = np.mean(block[:whole].reshape(-1, self._frame).astype(np.float64) ** 2, axis=1)
        self._frames += len(power)
        self._silent += int(np.count_nonzero(power < 10 ** (SILENCE_DB / 10)))
        self._carry = block[whole:]

    @property
    def levels(self) -> dict:
        """:data:`LEVEL_FIELDS` of the blocks so far: ``seconds`` (decoded duration), ``loudness_db`` (RMS
        level in dBFS), ``clipping`` (share of samples at or above :data:`CLIP_LEVEL` of full scale) and
        ``silence`` (share of 0.1 s frames quieter than :data:`SILENCE_DB` dBFS)."""
        rms = math.sqrt(self._squares / self._samples) if self._samples else 0.0
        return {
            "seconds": self._samples / self.sr,
            "loudness_db": max(FLOOR_DB, 20 * math.log10(rms)) if rms > 0 else FLOOR_DB,
            "clipping": self._clipped / self._samples if self._samples else 0.0,
            "silence": self._silent / self._frames if self._frames else 1.0,
        }


def audio_levels(path: str | os.PathLike, *, sr: int) -> dict:
    """Header facts and level statistics of one recording, in one streaming pass.

    Returns
    -------
    dict
        :data:`AUDIO_FIELDS`: ``sample_rate`` and ``channels`` (the file's own) and the
        :class:`LevelMeter` levels of the mono signal at ``sr`` Hz.

    Raises
    ------
    AudioDecodeError
    """
    info = audio_info(path)
    meter = LevelMeter(sr)
    for block in audio_blocks(path, sr=sr):
        meter.add(block)
    return {"sample_rate": info.sample_rate, "channels": info.channels, **meter.levels}


def mono_mix(samples: np.ndarray) -> np.ndarray:
    """The mean of a block's channels, one column at a time.

    The same float32 numbers as ``samples.mean(axis=1, dtype=np.float32)`` (up to 7 channels; from 8
    numpy sums in a different order, a rounding apart), at a tenth of its cost: numpy reduces each
    short row on its own, which made averaging a 30 s stereo song at 44.1 kHz (27 ms) as costly as
    decoding it.

    Parameters
    ----------
    samples : np.ndarray [shape=(n, channels), dtype=float32]

    Returns
    -------
    mono : np.ndarray [shape=(n,), dtype=float32]
    """
    if samples.shape[1] == 1:
        return samples[:, 0]
    mono = samples[:, 0].copy()
    for channel in range(1, samples.shape[1]):
        mono += samples[:, channel]
    mono /= np.float32(samples.shape[1])
    return mono


def audio_blocks(path: str | os.PathLike, *, sr: int, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Decode a file into consecutive mono float32 blocks at ``sr`` Hz.

    soundfile (libsndfile: mp3, wav, ogg, flac, au, aiff) is tried first; audioread (ffmpeg or
    GStreamer, when installed) is the fallback. Channels are averaged and the blocks resampled
    with a streaming soxr resampler, which gives exactly the samples of a one-shot resample; only
    ``block_seconds`` of audio are held at a time.

    Parameters
    ----------
    path : path-like
    sr : int
        Target sample rate in Hz.
    block_seconds : float
        Length of each decoded block at the file's own rate.

    Yields
    ------
    block : np.ndarray [shape=(n,), dtype=float32]

    Raises
    ------
    AudioDecodeError
        The file is missing, unreadable, not audio, holds no samples or holds NaN/inf.
    """
    path = check_audio_path(path)
    source = _open_source(path)
    total = 0
    with source:
        resampler = _Resampler(source.samplerate, sr)
        blocks = source.blocks(max(1, int(block_seconds * source.samplerate)))
        while True:
            try:
                samples = next(blocks, None)
            except Exception as exc:  # a decoder failing mid-file: this file's problem, never the run's
                raise AudioDecodeError(
                    f"{path}: decoding failed after {total / source.samplerate:.2f} s ({_describe(exc, path)}); "
                    "the file is damaged: re-export or re-download it"
                ) from None
            if samples is None:
                break
            mono = mono_mix(samples)
            if not np.isfinite(mono).all():
                raise AudioDecodeError(f"{path}: the audio contains NaN or infinite samples")
            total += len(mono)
            yield resampler(mono)
    if total == 0:
        raise AudioDecodeError(f"{path}: the file holds no audio samples")
    size, seconds = path.stat().st_size, total / source.samplerate
    if size / seconds > MAX_PLAUSIBLE_BYTES_PER_SECOND:
        raise AudioDecodeError(f"{path}: cannot decode audio (only {seconds:.2f} s decoded from {size} bytes: "
                               f"the bytes are not audio); is it a complete {_FORMATS} file?")
    yield resampler.flush()


def decode_once(path: str | os.PathLike, out: str | os.PathLike, *, sr: int) -> Path:
    """Decode a song once into a mono float32 WAV at ``sr`` Hz, for several readers of the same song.

    Reading the copy with :func:`audio_blocks` gives exactly the samples that decoding ``path`` gives
    when ``sr`` is the song's own rate (the channels are averaged the same way before resampling), at
    a fraction of the cost of decoding an mp3 again.

    Parameters
    ----------
    path : path-like
        The song.
    out : path-like
        The WAV to write.
    sr : int
        Its sample rate in Hz; the song's own rate keeps every later reader's samples exact whatever
        rate it reads at.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    AudioDecodeError
        As :func:`audio_blocks`.
    """
    import soundfile

    out = Path(out)
    with soundfile.SoundFile(out, "w", samplerate=sr, channels=1, subtype="FLOAT", format="WAV") as copy:
        for block in audio_blocks(path, sr=sr):
            copy.write(block)
    return out


def _open_source(path: Path):
    """The first decoder that opens ``path`` and reports a usable format (rate and channels > 0)."""
    errors = []
    for source_type in (_SoundfileSource, _AudioreadSource):
        try:
            source = source_type(path)
        except Exception as exc:  # decoders' errors carry no stable type across versions
            errors.append(exc)
            continue
        if source.samplerate > 0 and source.channels > 0:
            return source
        source.__exit__(None, None, None)
        errors.append(ValueError(f"the decoder reports {source.samplerate} Hz and {source.channels} channel(s)"))
    suffix = path.suffix.lower()
    if suffix in FFMPEG_EXTENSIONS and shutil.which("ffmpeg") is None:
        raise AudioDecodeError(f"{path}: {suffix} files need ffmpeg to be decoded; install it "
                               "(apt-get install ffmpeg, brew install ffmpeg) or convert the file to mp3/flac")
    raise AudioDecodeError(f"{path}: cannot decode audio ({_describe(errors[0], path)}); "
                           f"is it a complete {_FORMATS} file?")


def load_audio(path: str | os.PathLike, *, sr: int) -> np.ndarray:
    """The whole file as one mono float32 array at ``sr`` Hz (see :func:`audio_blocks`).

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
    """
    return np.concatenate(list(audio_blocks(path, sr=sr)))


def load_excerpt(
    path: str | os.PathLike, *, sr: int, offset: float = 0.0, duration: float | None = None
) -> np.ndarray:
    """``duration`` seconds of the file from ``offset`` (mono float32 at ``sr``), decoding only that far.

    Raises
    ------
    AudioDecodeError
        The file cannot be decoded, or ``offset`` is past its end.
    """
    start = int(round(offset * sr))
    stop = None if duration is None else start + int(round(duration * sr))
    pieces, position = [], 0
    for block in audio_blocks(path, sr=sr):
        lo, hi = max(start - position, 0), len(block) if stop is None else min(stop - position, len(block))
        if hi > lo:
            pieces.append(block[lo:hi])
        position += len(block)
        if stop is not None and position >= stop:
            break
    if not pieces:
        raise AudioDecodeError(
            f"{Path(path)}: offset={offset:g} s is past the end of the audio ({position / sr:.2f} s)"
        )
    return np.concatenate(pieces)


class _Resampler:
    """soxr's streaming resampler, or a pass-through when the rates match."""

    def __init__(self, orig_sr: int, target_sr: int) -> None:
        self._stream = None
        if orig_sr != target_sr:
            import soxr

            self._stream = soxr.ResampleStream(orig_sr, target_sr, 1, dtype="float32", quality="HQ")

    def __call__(self, mono: np.ndarray) -> np.ndarray:
        if self._stream is None:
            return np.ascontiguousarray(mono, dtype=np.float32)
        return self._stream.resample_chunk(np.ascontiguousarray(mono, dtype=np.float32))

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        return self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


class _SoundfileSource:
    def __init__(self, path: Path) -> None:
        import soundfile

        class ForwardOnly(soundfile.SoundFile):
            """Read strictly forwards. On a seekable file, soundfile seeks to the current
            position after every read; for mp3 that restarts libmpg123 and corrupts the frames
            after each block boundary, so block-wise decoding would differ from a one-shot read."""

            def seekable(self) -> bool:
                return False

        # libsndfile, given a path, also reads a macOS AppleDouble file "._NAME" beside it as a
        # resource fork and then fails on NAME itself; through a Python file object it does not
        # (but a file object costs a Python call per small read, so only then).
        apple_double = (path.parent / f"._{path.name}").exists()
        self._handle = open(path, "rb") if apple_double else None
        try:
            with native_stderr_silenced():  # libmpg123 prints "Note: Illegal Audio-MPEG-Header" itself
                # bytes, so that names that are not valid UTF-8 (an old Latin-1 disk) open too
                self._file = ForwardOnly(self._handle if apple_double else os.fsencode(path))
        except BaseException:
            if self._handle is not None:
                self._handle.close()
            raise
        self.samplerate = int(self._file.samplerate)
        self.channels = int(self._file.channels)
        frames = int(self._file.frames)
        self.seconds = frames / self.samplerate if 0 < frames < 2**62 and self.samplerate > 0 else None

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        while True:
            with native_stderr_silenced():
                samples = self._file.read(frames, dtype="float32", always_2d=True)
            if len(samples) == 0:
                return
            yield samples

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self._file.close()
        if self._handle is not None:
            self._handle.close()


class _AudioreadSource:
    def __init__(self, path: Path) -> None:
        import audioread

        self._decoder = audioread.audio_open(str(path))
        self.samplerate = int(self._decoder.samplerate)
        self.channels = int(self._decoder.channels)
        duration = getattr(self._decoder, "duration", None)
        self.seconds = float(duration) if duration else None

    def blocks(self, frames: int) -> Iterator[np.ndarray]:
        for buffer in self._decoder:  # 16-bit little-endian interleaved PCM
            pcm = np.frombuffer(buffer, dtype="<i2").astype(np.float32) / 32768.0
            yield pcm[: len(pcm) - len(pcm) % self.channels].reshape(-1, self.channels)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self._decoder.close()


def _describe(error: Exception, path: Path) -> str:
    """libsndfile's message without the file name it repeats, e.g. 'format not recognised'."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "not a regular file" in text:  # libsndfile's words for bytes it cannot identify
        return "format not recognised"
    text = re.sub(r"""^Error opening (<[^>]*>|'[^']*'|"[^"]*"|\S+): """, "", text).strip().rstrip(".")
    return text[:1].lower() + text[1:]
