"""Shared helpers of the benchmarks: synthetic 30 s mp3 clips, timing, machine description."""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

#: CPU features that change what the network costs (int8 weights gain only with some of them; RESULTS.md).
_SIMD_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def machine() -> str:
    """The system, core count, CPU model and vector instructions (Linux: from /proc/cpuinfo)."""
    cpu, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown CPU":
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = " ".join(flag for flag in _SIMD_FLAGS if flag in flags) or "no flags read"
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}; {simd}), "
            f"Python {platform.python_version()}")


def synth_clips(root: Path, *, n: int, seconds: float = 30.0, sr: int = 22050) -> Path:
    """``n`` mp3 clips of ``seconds`` in three fake genres (tones, sweeps, noise bursts)."""
    import soundfile

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    for i in range(n):
        genre = ("tones", "sweeps", "bursts")[i % 3]
        if genre == "tones":
            y = sum(np.sin(2 * np.pi * (110 + 20 * i) * k * t) / k for k in (1, 2, 3, 4))
        elif genre == "sweeps":
            y = np.sin(2 * np.pi * (300 + 2000 * ((t * (1 + i % 5)) % 1)) * t)
        else:
            y = rng.standard_normal(len(t)) * (np.sin(2 * np.pi * (1 + i % 4) * t) > 0)
        y = (0.4 * y / np.abs(y).max()).astype(np.float32)
        (root / genre).mkdir(parents=True, exist_ok=True)
        soundfile.write(root / genre / f"{genre}_{i:03d}.mp3", y, sr, format="MP3")
    return root


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def audio_seconds(paths) -> float:
    import soundfile

    return sum(soundfile.info(str(p)).duration for p in paths)


def genre_cnn_command() -> list[str]:
    """How to run the ``genre-cnn`` command: its script when installed, else ``python -m genre_cnn``."""
    executable = shutil.which("genre-cnn")
    return [executable] if executable else [sys.executable, "-m", "genre_cnn"]


def front_end(path, config, *, filterbank=None) -> tuple[np.ndarray, float, float]:
    """One song's network input, and the CPU seconds of its two stages: decoding, then the log-mel.

    Returns
    -------
    features : np.ndarray [shape=(n_chunks, n_mels, n_frames)]
    decode_seconds, log_mel_seconds : float
        ``time.process_time`` spent in each stage (run under ``threadpool_limits(1)`` for one core's cost).
    """
    from genre_cnn.signal.audio import audio_blocks
    from genre_cnn.signal.logmel import log_mel
    from genre_cnn.signal.segment import iter_chunks

    start = time.process_time()
    blocks = list(audio_blocks(path, sr=config.sr))
    decoded = time.process_time()
    chunks = np.concatenate([c for c, _ in iter_chunks(blocks, config, batch_size=10**6)])
    features = log_mel(chunks, config, filterbank=filterbank)
    return features, decoded - start, time.process_time() - decoded
