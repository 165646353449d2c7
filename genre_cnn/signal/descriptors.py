"""Handcrafted per-song descriptors: tempo, onsets, pitch, spectral statistics, MFCCs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from genre_cnn.errors import AudioDecodeError
from genre_cnn.runtime.files import machine_lock
from genre_cnn.runtime.parallel import process_pool
from genre_cnn.signal.audio import load_audio
from genre_cnn.signal.segment import check_usable

__all__ = ["DESCRIPTOR_SR", "DESCRIPTOR_VERSION", "N_MFCC", "descriptor_columns", "song_descriptors",
           "compile_descriptor_code", "describe_songs"]

DESCRIPTOR_SR = 22050
N_MFCC = 20
PITCH_SR = 11025  # pYIN runs on a downsampled copy: 5x faster, and 65-2093 Hz fits below 5.5 kHz
F0_MIN, F0_MAX = 65.0, 2093.0  # C2 to C7
#: pYIN's pitch grid in semitones (librosa's default). pYIN was most of a song's descriptors: with librosa's the
#: descriptors took 2.9-3.6 s of CPU per 30 s song, with :func:`genre_cnn.signal.pitch.pitch_track` (the same
#: path) 0.53-0.57 s (``benchmarks/bench_descriptors.py``, 2026-12-07). A half-semitone grid was 6.2x cheaper
#: than librosa's (before the
#: faster decoding) but moved the voiced fraction by ~30 % and the baseline's cv accuracy on dev-music by
#: -3 points over three comparisons (+2.2, -6.8, -4.8; benchmarks/RESULTS.md, 2026-12-06), so it is not used.
PITCH_RESOLUTION = 0.1
#: Which computation of the descriptors this is; the table and every baseline record it.
DESCRIPTOR_VERSION = 1

#: Whether this process has compiled (or loaded) librosa's numba code that the descriptors use.
_compiled = False


def descriptor_columns(n_mfcc: int = N_MFCC) -> list[str]:
    """The numeric columns of the descriptor table, in order (documented in the README)."""
    columns = ["duration", "rms_mean", "rms_std", "zcr_mean", "zcr_std"]
    for name in ("centroid", "bandwidth", "rolloff", "contrast"):
        columns += [f"spectral_{name}_mean", f"spectral_{name}_std"]
    columns += ["tempo", "onset_count", "onsets_per_second",
                "f0_mean", "f0_median", "f0_std", "f0_p5", "f0_p95", "voiced_fraction"]
    for i in range(1, n_mfcc + 1):
        columns += [f"mfcc{i}_mean", f"mfcc{i}_std"]
    return columns


def song_descriptors(path: str | os.PathLike, *, sr: int = DESCRIPTOR_SR, n_mfcc: int = N_MFCC) -> dict:
    """Descriptors of one whole song.

    Returns
    -------
    dict
        One float per :func:`descriptor_columns` name. Pitch statistics are NaN when no frame is
        voiced (``voiced_fraction`` is then 0).

    Raises
    ------
    AudioDecodeError
        The file cannot be decoded, or fails :func:`genre_cnn.signal.segment.check_usable` (too short, silent).
    """
    compile_descriptor_code()
    y = load_audio(path, sr=sr)
    check_usable(Path(path), y, sr)
    return _descriptors_of(y, sr=sr, n_mfcc=n_mfcc)


def compile_descriptor_code() -> None:
    """Compile librosa's numba code for the descriptors in this process, one process at a time.

    librosa keeps its compiled beat-tracking and pYIN code in numba's cache on disk. Two processes
    that compile it at the same time (the workers of a fresh install) can leave a mismatched pair
    of cache files, and every process that loads them then crashes with a segmentation fault
    (numba issue 10128; 8 crashes in 8 tries with 4 workers). So the first descriptors of each
    process are of a short tone, computed under a lock every process of this user shares: the
    first fills the cache, the others wait and load it. Later calls return at once; a forked
    worker inherits the compiled code.
    """
    global _compiled
    if _compiled:
        return
    with machine_lock("numba-cache"):
        seconds = np.arange(3 * DESCRIPTOR_SR) / DESCRIPTOR_SR
        tone = sum(np.sin(2 * np.pi * 220.0 * k * seconds) / k for k in (1, 2, 3))
        _descriptors_of((0.3 * tone).astype(np.float32), sr=DESCRIPTOR_SR, n_mfcc=N_MFCC)
    _compiled = True


def _descriptors_of(y: np.ndarray, *, sr: int, n_mfcc: int) -> dict:
    """:func:`song_descriptors` of decoded samples ``y`` (float32, mono, at ``sr``)."""
    import librosa

    values = {"duration": len(y) / sr}
    rms = librosa.feature.rms(y=y)[0]
    zcr = librosa.feature.zero_crossing_rate(y)[0]
    # one STFT for everything below: the onset envelope and the MFCCs both start from the power mel spectrogram
    # that librosa would compute from the same STFT (its defaults: 2048-sample Hann frames, 512 apart), in dB
    spectrum = np.abs(librosa.stft(y))
    log_mel = librosa.power_to_db(librosa.feature.melspectrogram(S=spectrum**2, sr=sr))
    centroid = librosa.feature.spectral_centroid(S=spectrum, sr=sr)
    spectral = {
        "centroid": centroid[0],
        "bandwidth": librosa.feature.spectral_bandwidth(S=spectrum, sr=sr, centroid=centroid)[0],
        "rolloff": librosa.feature.spectral_rolloff(S=spectrum, sr=sr)[0],
        "contrast": librosa.feature.spectral_contrast(S=spectrum, sr=sr),
    }
    values.update(rms_mean=rms.mean(), rms_std=rms.std(), zcr_mean=zcr.mean(), zcr_std=zcr.std())
    for name, series in spectral.items():
        values[f"spectral_{name}_mean"], values[f"spectral_{name}_std"] = series.mean(), series.std()

    onset_envelope = librosa.onset.onset_strength(S=log_mel, sr=sr)
    tempo, _ = librosa.beat.beat_track(onset_envelope=onset_envelope, sr=sr)
    onsets = librosa.onset.onset_detect(onset_envelope=onset_envelope, sr=sr)
    values.update(tempo=float(np.atleast_1d(tempo)[0]), onset_count=len(onsets),
                  onsets_per_second=len(onsets) / values["duration"])

    # lazy: numba, compiled under compile_descriptor_code's lock
    from genre_cnn.signal.pitch import pitch_track

    low = librosa.resample(y, orig_sr=sr, target_sr=PITCH_SR)
    f0, voiced = pitch_track(low, fmin=F0_MIN, fmax=F0_MAX, sr=PITCH_SR, frame_length=1024, hop_length=512,
                             resolution=PITCH_RESOLUTION)
    pitched = f0[voiced & np.isfinite(f0)]
    values["voiced_fraction"] = float(voiced.mean()) if len(voiced) else 0.0
    if len(pitched):
        values.update(f0_mean=pitched.mean(), f0_median=np.median(pitched), f0_std=pitched.std(),
                      f0_p5=np.percentile(pitched, 5), f0_p95=np.percentile(pitched, 95))
    else:
        values.update({k: np.nan for k in ("f0_mean", "f0_median", "f0_std", "f0_p5", "f0_p95")})

    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=n_mfcc)
    for i in range(n_mfcc):
        values[f"mfcc{i + 1}_mean"], values[f"mfcc{i + 1}_std"] = mfcc[i].mean(), mfcc[i].std()
    return {name: float(values[name]) for name in descriptor_columns(n_mfcc)}


def _describe_one(path: Path) -> dict | str:
    """:func:`song_descriptors` of one file, or the reason (a string) it could not be described."""
    try:
        return song_descriptors(path)
    except AudioDecodeError as exc:
        return str(exc)


def describe_songs(paths: Sequence[Path], *, workers: Optional[int] = None,
                   progress: Optional[Callable[..., Iterable]] = None) -> list:
    """:func:`song_descriptors` of every file in parallel: a dict each, or the reason (a string) it failed.

    ``progress`` wraps the results as they arrive (e.g. ``tqdm``; called with ``total=``).
    """
    workers = (os.cpu_count() or 1) if workers is None else workers
    track = progress or (lambda results, total: results)
    if workers <= 1 or len(paths) < 2:
        return list(track(map(_describe_one, paths), total=len(paths)))
    compile_descriptor_code()  # before the workers start: they inherit it, or load what it cached
    with process_pool(min(workers, len(paths))) as pool:
        return list(track(pool.map(_describe_one, paths), total=len(paths)))
