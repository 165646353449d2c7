"""Handcrafted per-song descriptors (tempo, onsets, pitch, spectral statistics, MFCCs) as a CSV."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np

from .audio import load_audio
from .errors import AudioDecodeError, ConfigError

__all__ = ["DESCRIPTOR_SR", "N_MFCC", "descriptor_columns", "song_descriptors", "write_descriptor_table",
           "read_descriptor_table"]

DESCRIPTOR_SR = 22050
N_MFCC = 20
PITCH_SR = 11025  # pYIN runs on a downsampled copy: 5x faster, and 65-2093 Hz fits below 5.5 kHz
F0_MIN, F0_MAX = 65.0, 2093.0  # C2 to C7


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
        The file cannot be decoded, or is shorter than 0.5 s.
    """
    import librosa

    y = load_audio(path, sr=sr)
    if len(y) < sr // 2:
        raise AudioDecodeError(f"{Path(path)}: only {len(y) / sr:.2f} s of audio; at least 0.5 s is needed")
    values = {"duration": len(y) / sr}
    rms = librosa.feature.rms(y=y)[0]
    zcr = librosa.feature.zero_crossing_rate(y)[0]
    spectrum = np.abs(librosa.stft(y))
    spectral = {
        "centroid": librosa.feature.spectral_centroid(S=spectrum, sr=sr)[0],
        "bandwidth": librosa.feature.spectral_bandwidth(S=spectrum, sr=sr)[0],
        "rolloff": librosa.feature.spectral_rolloff(S=spectrum, sr=sr)[0],
        "contrast": librosa.feature.spectral_contrast(S=spectrum, sr=sr),
    }
    values.update(rms_mean=rms.mean(), rms_std=rms.std(), zcr_mean=zcr.mean(), zcr_std=zcr.std())
    for name, series in spectral.items():
        values[f"spectral_{name}_mean"], values[f"spectral_{name}_std"] = series.mean(), series.std()

    onset_envelope = librosa.onset.onset_strength(y=y, sr=sr)
    tempo, _ = librosa.beat.beat_track(onset_envelope=onset_envelope, sr=sr)
    onsets = librosa.onset.onset_detect(onset_envelope=onset_envelope, sr=sr)
    values.update(tempo=float(np.atleast_1d(tempo)[0]), onset_count=len(onsets),
                  onsets_per_second=len(onsets) / values["duration"])

    low = librosa.resample(y, orig_sr=sr, target_sr=PITCH_SR)
    f0, voiced, _ = librosa.pyin(low, fmin=F0_MIN, fmax=F0_MAX, sr=PITCH_SR, frame_length=1024, hop_length=512)
    pitched = f0[voiced & np.isfinite(f0)]
    values["voiced_fraction"] = float(voiced.mean()) if len(voiced) else 0.0
    if len(pitched):
        values.update(f0_mean=pitched.mean(), f0_median=np.median(pitched), f0_std=pitched.std(),
                      f0_p5=np.percentile(pitched, 5), f0_p95=np.percentile(pitched, 95))
    else:
        values.update({k: np.nan for k in ("f0_mean", "f0_median", "f0_std", "f0_p5", "f0_p95")})

    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc)
    for i in range(n_mfcc):
        values[f"mfcc{i + 1}_mean"], values[f"mfcc{i + 1}_std"] = mfcc[i].mean(), mfcc[i].std()
    return {name: float(values[name]) for name in descriptor_columns(n_mfcc)}


def _describe_one(path: Path):
    try:
        return song_descriptors(path)
    except AudioDecodeError as exc:
        return str(exc)


def describe_songs(paths: Sequence[Path], *, workers: Optional[int] = None) -> list:
    """:func:`song_descriptors` of every file in parallel: a dict each, or the reason (a string) it failed."""
    from .parallel import process_pool

    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers <= 1 or len(paths) < 2:
        return [_describe_one(path) for path in paths]
    with process_pool(min(workers, len(paths))) as pool:
        return list(pool.map(_describe_one, paths))


def write_descriptor_table(
    tracks_dir: str | os.PathLike,
    *,
    out: str | os.PathLike,
    workers: Optional[int] = None,
    progress: Optional[Callable[[Iterable], Iterable]] = None,
) -> tuple[Path, int, list[tuple[str, str]]]:
    """Describe every song of ``tracks_dir/<genre>/`` into a CSV: ``song``, ``genre``, then the columns.

    Returns
    -------
    (path, rows written, skipped files with their reasons)
    """
    from .dataset import scan_tracks
    from .parallel import process_pool

    tracks = scan_tracks(tracks_dir)
    out = Path(out)
    workers = (os.cpu_count() or 1) if workers is None else workers
    paths = [song.path for song in tracks.songs]
    with process_pool(min(workers, len(paths))) as pool:
        results = pool.map(_describe_one, paths)
        if progress is not None:
            results = progress(results, total=len(paths))
        rows, skipped = [], []
        for song, outcome in zip(tracks.songs, results):
            if isinstance(outcome, str):
                skipped.append((song.relative, outcome))
            else:
                rows.append({"song": song.relative, "genre": song.label, **outcome})
    if not rows:
        raise AudioDecodeError(f"{tracks.root}: none of the {len(paths)} audio files could be described")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.parent / f".{out.name}.tmp-{os.getpid()}"
    with open(temporary, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        writer = csv.DictWriter(handle, fieldnames=["song", "genre", *descriptor_columns()])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, out)
    return out, len(rows), skipped


def read_descriptor_table(path: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """Read a table written by :func:`write_descriptor_table`.

    Returns
    -------
    songs : list of str
    genres : np.ndarray of str
    values : np.ndarray [shape=(n_songs, n_columns), dtype=float64]
        NaN where a value is missing.
    columns : list of str
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = [c for c in (reader.fieldnames or []) if c not in ("song", "genre")]
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; make it with 'genre-cnn features TRACKS_DIR --out {path}'") from None
    if not rows or "genre" not in rows[0] or not columns:
        raise ConfigError(f"{path}: not a descriptor table (needs song, genre and numeric columns); "
                          "make it with 'genre-cnn features'")
    try:
        values = np.array([[float(row[c]) if row[c] not in ("", None) else np.nan for c in columns]
                           for row in rows])
    except ValueError as exc:
        raise ConfigError(f"{path}: a value is not a number ({exc})") from None
    return [row["song"] for row in rows], np.array([row["genre"] for row in rows]), values, columns
