"""Does incoming audio still look like the training data? Statistical checks of two profiles.

Each check compares one aspect of the reference :class:`~genre_cnn.monitoring.profile.Profile`
(saved by ``fit``) with the incoming songs' and gives a statistic and a p-value (the chance of a
difference at least this large if both were drawn from the same distribution). The p-values are
adjusted together with Holm's method, so the chance that a run on undrifted audio flags *any*
check stays below ``alpha``; a check whose adjusted p-value is below ``alpha`` has drifted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
from scipy import stats

from genre_cnn.errors import ConfigError, ModelError, MonitorError
from genre_cnn.inference.classifier import expand_paths, open_classifier
from genre_cnn.monitoring.profile import PROFILE_FILE, Profile, SongProfiler, load_profile, profile_songs

__all__ = ["Check", "DriftReport", "compare", "monitor", "read_serve_log", "DRIFT_EXIT_CODE"]

#: Exit code of ``genre-cnn monitor`` when drift is found (1 stays "could not run").
DRIFT_EXIT_CODE = 3
PERMUTATIONS = 1000


@dataclasses.dataclass(frozen=True)
class Check:
    """One comparison: what was tested, how, and the verdict.

    Attributes
    ----------
    name : str
    test : str
        The statistical test (e.g. "KS", "chi-square", "MMD, 1000 permutations").
    statistic : float or None
    p_value : float or None
        Unadjusted p-value; None when the check could not run (``detail`` says why).
    adjusted_p : float or None
        Holm-adjusted over all checks that ran.
    drifted : bool
    detail : str
        The numbers behind the verdict, e.g. "median −27.4 dBFS → −39.5 dBFS".
    """

    name: str
    test: str
    statistic: Optional[float]
    p_value: Optional[float]
    adjusted_p: Optional[float] = None
    drifted: bool = False
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class DriftReport:
    """The verdict on a batch of incoming songs.

    Attributes
    ----------
    model : str
    checks : list of Check
    alpha : float
    n_reference, n_incoming : int
        Songs on each side.
    skipped : list of (path, reason)
        Incoming files that could not be read.
    summaries : dict
        Quantiles (5, 25, 50, 75, 95 %) of each audio statistic, per-band quartiles and genre
        shares, for ``reference`` and ``incoming``: what the report plots (no per-song data).
    """

    model: str
    checks: list
    alpha: float
    n_reference: int
    n_incoming: int
    skipped: list = dataclasses.field(default_factory=list)
    summaries: dict = dataclasses.field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return any(check.drifted for check in self.checks)

    @property
    def exit_code(self) -> int:
        return DRIFT_EXIT_CODE if self.drifted else 0

    def to_dict(self) -> dict:
        return {"model": self.model, "drifted": self.drifted, "alpha": self.alpha, "n_reference": self.n_reference,
                "n_incoming": self.n_incoming, "checks": [dataclasses.asdict(check) for check in self.checks],
                "skipped": [{"path": path, "reason": reason} for path, reason in self.skipped],
                "summaries": self.summaries}


# === The checks ===
def _ks(name: str, reference: np.ndarray, incoming: np.ndarray, *, unit: str, scale: float = 1.0) -> Check:
    reference, incoming = reference[np.isfinite(reference)], incoming[np.isfinite(incoming)]
    if len(reference) < 2 or len(incoming) < 2:
        return Check(name, "KS", None, None, detail="too few values")
    result = stats.ks_2samp(reference, incoming)
    detail = f"median {np.median(reference) * scale:.3g} → {np.median(incoming) * scale:.3g} {unit}".rstrip()
    return Check(name, "KS", float(result.statistic), float(result.pvalue), detail=detail)


def _categories(name: str, reference: list, incoming: list, *, describe: Callable = str) -> Check:
    """Chi-square test of homogeneity of two samples of categories."""
    if not reference or not incoming:
        return Check(name, "chi-square", None, None, detail="no values on one side")
    labels = sorted(set(reference) | set(incoming))
    table = np.array([[reference.count(label) for label in labels], [incoming.count(label) for label in labels]])
    table = table[:, table.sum(axis=0) > 0]
    shares = lambda row: ", ".join(f"{describe(l)} {c / max(1, row.sum()):.0%}" for l, c in zip(labels, row) if c)  # noqa: E731
    detail = f"{shares(table[0])} → {shares(table[1])}"
    if table.shape[1] < 2:
        return Check(name, "chi-square", 0.0, 1.0, detail=detail)
    result = stats.chi2_contingency(table)
    return Check(name, "chi-square", float(result.statistic), float(result.pvalue), detail=detail)


def _bands(reference: np.ndarray, incoming: np.ndarray, *, alpha: float) -> Check:
    """Per-band KS tests; Benjamini–Hochberg over the bands; the share of bands that moved."""
    name = "spectral balance"
    if len(reference) < 2 or len(incoming) < 2 or reference.shape[1] != incoming.shape[1]:
        return Check(name, "KS per band + BH", None, None, detail="too few songs or a different number of bands")
    p_values = np.array([stats.ks_2samp(reference[:, b], incoming[:, b]).pvalue for b in range(reference.shape[1])])
    adjusted = stats.false_discovery_control(p_values, method="bh")
    moved = adjusted < alpha
    shift = np.median(incoming, axis=0) - np.median(reference, axis=0)
    worst = int(np.argmax(np.abs(shift)))
    detail = (f"{moved.sum()} of {len(moved)} bands drifted ({moved.mean():.0%}); median shift "
              f"{np.median(shift):+.1f} dB, largest {shift[worst]:+.1f} dB in band {worst}")
    # the smallest BH-adjusted p-value is Simes' test of "no band moved"
    return Check(name, "KS per band + BH", float(moved.mean()), float(adjusted.min()), detail=detail)


def _mmd(reference: np.ndarray, incoming: np.ndarray, *, seed: int, permutations: int = PERMUTATIONS) -> Check:
    """Maximum mean discrepancy with an RBF kernel (median heuristic), p-value by permuting songs."""
    name, test = "embeddings", f"MMD, {permutations} permutations"
    if len(reference) < 2 or len(incoming) < 2:
        no_embeddings = not len(incoming) or not len(reference)
        why = "no embeddings (a baseline, or a serve log)" if no_embeddings else "too few songs"
        return Check(name, test, None, None, detail=why)
    if reference.shape[1] != incoming.shape[1]:
        return Check(name, test, None, None, detail=f"the reference embeddings have {reference.shape[1]} dimensions, "
                                                    f"the model gives {incoming.shape[1]}: rebuild the profile")
    pooled = np.concatenate([reference, incoming]).astype(np.float64)
    squared = np.maximum(((pooled[:, None, :] - pooled[None, :, :]) ** 2).sum(axis=-1), 0.0)
    bandwidth = np.median(squared[np.triu_indices(len(pooled), 1)]) or 1.0
    kernel = np.exp(-squared / bandwidth)
    n = len(reference)

    def statistic(order: np.ndarray) -> float:
        k = kernel[np.ix_(order, order)]
        xx, yy, xy = k[:n, :n], k[n:, n:], k[:n, n:]
        m = len(order) - n
        return ((xx.sum() - np.trace(xx)) / (n * (n - 1)) + (yy.sum() - np.trace(yy)) / (m * (m - 1))
                - 2 * xy.mean())

    rng = np.random.default_rng(seed)
    observed = statistic(np.arange(len(pooled)))
    null = np.array([statistic(rng.permutation(len(pooled))) for _ in range(permutations)])
    p_value = (1 + np.count_nonzero(null >= observed)) / (1 + permutations)
    return Check(name, test, float(observed), float(p_value), detail=f"MMD² {observed:.4f} (null 95th pct "
                                                                       f"{np.percentile(null, 95):.4f})")


def compare(reference: Profile, incoming: Profile, *, alpha: float = 0.05, seed: int = 0,
            permutations: int = PERMUTATIONS, model: str = "", skipped: Iterable = ()) -> DriftReport:
    """Run every check of ``incoming`` against ``reference``.

    Parameters
    ----------
    reference, incoming : Profile
    alpha : float
        Chance of flagging drift when there is none (family-wise, Holm over the checks).
    seed : int
        Seeds the MMD permutations.
    """
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha={alpha!r} must be between 0 and 1")
    incoming_genres = [reference.classes[i] for i in incoming.genres]
    checks = [
        _categories("sample rate / channels",
                    [(int(r), int(c)) for r, c in zip(reference.sample_rate, reference.channels)],
                    [(int(r), int(c)) for r, c in zip(incoming.sample_rate, incoming.channels)],
                    describe=lambda rc: f"{rc[0]} Hz×{rc[1]}"),
        _ks("duration", reference.seconds, incoming.seconds, unit="s"),
        _ks("loudness", reference.loudness_db, incoming.loudness_db, unit="dBFS"),
        _ks("clipping", reference.clipping, incoming.clipping, unit="% samples", scale=100),
        _ks("silence", reference.silence, incoming.silence, unit="% of time", scale=100),
        _bands(reference.band_means, incoming.band_means, alpha=alpha),
        _mmd(reference.embeddings, incoming.embeddings, seed=seed, permutations=permutations),
        _categories("predicted genres", [reference.classes[i] for i in reference.genres], incoming_genres),
        _ks("confidence", reference.top_probability, incoming.top_probability, unit="top probability"),
    ]
    ran = [i for i, check in enumerate(checks) if check.p_value is not None]
    if ran:
        adjusted = _holm(np.array([checks[i].p_value for i in ran]))
        for i, p in zip(ran, adjusted):
            checks[i] = dataclasses.replace(checks[i], adjusted_p=float(p), drifted=bool(p < alpha))
    return DriftReport(model=model, checks=checks, alpha=alpha, n_reference=reference.n_songs,
                       n_incoming=incoming.n_songs, skipped=list(skipped),
                       summaries={"reference": _summary(reference), "incoming": _summary(incoming)})


QUANTILES = (5, 25, 50, 75, 95)


def _summary(profile: Profile) -> dict:
    """Quantiles and shares of a profile (rounded): enough to plot, too little to identify a song."""
    def quantiles(values):
        values = np.asarray(values, dtype=np.float64)
        values = values[np.isfinite(values)]
        return [round(float(q), 4) for q in np.percentile(values, QUANTILES)] if len(values) else None

    counts = np.bincount(profile.genres, minlength=len(profile.classes))
    return {
        **{name: quantiles(getattr(profile, name)) for name in ("seconds", "loudness_db", "clipping", "silence")},
        "top_probability": quantiles(profile.top_probability),
        "band_quartiles": [[round(float(v), 2) for v in row] for row in
                           np.percentile(profile.band_means, (25, 50, 75), axis=0)] if profile.n_songs else None,
        "genre_shares": {c: round(float(n / max(1, counts.sum())), 4) for c, n in zip(profile.classes, counts)},
    }


def _holm(p_values: np.ndarray) -> np.ndarray:
    order = np.argsort(p_values)
    m = len(p_values)
    stepped = np.maximum.accumulate((m - np.arange(m)) * p_values[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


# === Incoming songs ===
#: The type of each field of a ``serve --log`` line that ``monitor`` reads: (kinds, may be null).
_LOG_FIELDS = {
    "seconds": ("number", True), "sample_rate": ("count", False), "channels": ("count", False),
    "loudness_db": ("number", False), "clipping": ("share", False), "silence": ("share", False),
    "probability": ("share", False), "genre": ("text", False),
}


def read_serve_log(path: str | os.PathLike, classes, *, n_bands: Optional[int] = None,
                   model: Optional[str] = None) -> tuple[list[dict], list[tuple[str, str]]]:
    """The songs of a ``serve --log`` file, as profile dicts (no embeddings), every field checked.

    Parameters
    ----------
    classes : sequence of str
        The model's genres.
    n_bands : int, optional
        How many ``band_means`` every line must have (the model's mel bands).
    model : str, optional
        The model's name: lines whose ``model`` field names another model are left out, and said so.

    Returns
    -------
    songs : list of dict
    left_out : list of (where, reason)
        ``"FILE:LINE"`` of each line written by another model.

    Raises
    ------
    MonitorError
        A line is not JSON, lacks a field, has a field of the wrong type or shape, or names a genre
        the model does not have; the message names the file, the line and the field.
    """
    songs, left_out = [], []
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as lines:
            numbered = list(enumerate(lines, start=1))
    except UnicodeDecodeError:
        raise MonitorError(f"{path}: is not a text file; give the file that 'genre-cnn serve --log' writes") from None
    for number, line in numbered:
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MonitorError(f"{where}: not a genre-cnn serve log line (not JSON: {exc}); "
                               "give the file that 'genre-cnn serve --log' writes") from None
        if not isinstance(record, dict):
            raise MonitorError(f"{where}: not a genre-cnn serve log line (a JSON {type(record).__name__}, not an "
                               "object); give the file that 'genre-cnn serve --log' writes")
        written_by = record.get("model")
        if model is not None and isinstance(written_by, str) and written_by != model:
            left_out.append((where, f"written by model {written_by!r}, not {model!r}: left out"))
            continue
        if record.get("band_means") is None and "genre" in record:
            raise MonitorError(f"{where}: the line has no audio statistics; it was written by an older "
                               "genre-cnn serve")
        song = {name: _log_field(record, name, kind, nullable, where) for name, (kind, nullable) in _LOG_FIELDS.items()}
        if song["genre"] not in classes:
            raise MonitorError(f"{where}: genre {song['genre']!r} is not one of this model's; "
                               "was the log written by another model?")
        song["band_means"] = _log_bands(record.get("band_means"), n_bands, where)
        songs.append({**song, "seconds": np.nan if song["seconds"] is None else song["seconds"], "embedding": None})
    return songs, left_out


def _log_field(record: dict, name: str, kind: str, nullable: bool, where: str):
    """One checked field of a serve log line (see :data:`_LOG_FIELDS`)."""
    if name not in record:
        raise MonitorError(f"{where}: not a genre-cnn serve log line (no field {name!r}); "
                           "give the file that 'genre-cnn serve --log' writes")
    value = record[name]
    if value is None and nullable:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    fits = {"text": isinstance(value, str),
            "number": number and math.isfinite(value),
            "count": number and float(value).is_integer() and value > 0,
            "share": number and 0 <= value <= 1}[kind]
    if not fits:
        wanted = {"text": "a string", "number": "a number", "count": "a positive whole number",
                  "share": "a number from 0 to 1"}[kind]
        raise MonitorError(f"{where}: field {name!r} is {json.dumps(value)[:40]}, not {wanted}; "
                           "the line was not written by 'genre-cnn serve --log' (or was edited)")
    return int(value) if kind == "count" else value


def _log_bands(value, n_bands: Optional[int], where: str) -> list:
    """The ``band_means`` of a serve log line: a list of ``n_bands`` finite numbers."""
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise MonitorError(f"{where}: field 'band_means' is not a list of numbers; "
                           "the line was not written by 'genre-cnn serve --log' (or was edited)")
    if n_bands is not None and len(value) != n_bands:
        raise MonitorError(f"{where}: field 'band_means' has {len(value)} bands but this model has {n_bands}; "
                           "was the log written by a model with other features?")
    return value


def monitor(model_dir: str | os.PathLike, incoming: Iterable[str | os.PathLike], *, min_songs: int = 8,
            alpha: float = 0.05, seed: int = 0, progress: Callable = lambda items: items) -> DriftReport:
    """Compare incoming songs with the reference profile saved beside a model.

    Parameters
    ----------
    model_dir : path-like
        A model folder with ``profile.npz`` (every ``fit`` writes one).
    incoming : iterable of path-like
        Audio files and folders, or ``.jsonl`` logs written by ``genre-cnn serve --log``.
    min_songs : int
        Fewer readable incoming songs than this is an error, not a verdict.
    alpha : float
        Chance of a false alarm on undrifted audio (all checks together).

    Raises
    ------
    ModelError
        No model, or no reference profile (the message says how to add one).
    MonitorError
        Too few readable songs, or a bad log.
    """
    if isinstance(min_songs, bool) or not isinstance(min_songs, int) or min_songs < 2:
        raise ConfigError(f"min_songs={min_songs!r} must be an integer of at least 2")
    classifier = open_classifier(model_dir)
    if not classifier.profiles_from_dataset and not (Path(classifier.model_dir) / PROFILE_FILE).is_file():
        raise ModelError(f"{model_dir}: this {classifier.kind} model has no reference profile, and its profile is made "
                         "only when it is fitted with its songs' folder at hand: refit it so (a baseline: "
                         f"'genre-cnn baseline TABLE --tracks TRACKS_DIR --out {model_dir}')")
    reference = load_profile(classifier.model_dir)
    incoming = [Path(p) for p in incoming]
    missing = [p for p in incoming if not p.exists()]
    if missing:
        raise MonitorError(f"{missing[0]}: does not exist")
    logs = [p for p in incoming if p.is_file() and p.suffix.lower() in (".jsonl", ".log", ".ndjson")]
    songs, skipped = [], []
    for log in logs:
        logged, left_out = read_serve_log(log, classifier.classes, n_bands=reference.band_means.shape[1],
                                          model=Path(classifier.model_dir).name)
        songs += logged
        skipped += left_out
    audio = list(expand_paths([p for p in incoming if p not in logs]))
    if audio:
        profiled, unreadable = profile_songs(audio, SongProfiler(classifier), progress=progress)
        songs += profiled
        skipped += unreadable
    where = ", ".join(map(str, incoming))
    if not songs and skipped and logs and not audio:
        where, reason = skipped[0]
        raise MonitorError(f"{', '.join(map(str, logs))}: all {len(skipped)} line(s) were left out (e.g. {where}: "
                           f"{reason}); monitor that model with --model")
    if not songs:
        what = "no readable audio files" if skipped else "no audio files or serve logs"
        raise MonitorError(f"{where}: {what}; give folders or files of songs, or a 'genre-cnn serve --log' file")
    if len(songs) < min_songs:
        raise MonitorError(f"{where}: only {len(songs)} readable song(s), fewer than min_songs={min_songs}; "
                           "a verdict on so few would be noise: add songs or lower min_songs", parameter="min_songs")
    profile = Profile.from_songs(classifier.classes, songs, embedding_dim=reference.embeddings.shape[1])
    return compare(reference, profile, alpha=alpha, seed=seed, model=Path(classifier.model_dir).name,
                   skipped=skipped)
