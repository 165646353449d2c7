"""Frozen configuration objects, saved as JSON beside every dataset and model."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Mapping, Optional

from genre_cnn.errors import ConfigError

__all__ = [
    "FEATURE_VERSION",
    "DEFAULT_SR",
    "DEFAULT_CHUNK_SAMPLES",
    "FeatureConfig",
    "TrainConfig",
    "SHARED_TRAIN_OPTIONS",
    "AUGMENTATIONS",
    "augmentations",
    "check_bool",
    "check_choice",
    "check_positive_int",
    "check_number",
    "read_json",
    "write_json",
    "check_classes",
]

#: Version of the feature pipeline (decode -> segment -> log-mel). A model made with another
#: version cannot be reproduced by this code and is refused by ``classify``.
FEATURE_VERSION = 1

DEFAULT_SR = 22050
#: 100000 samples (about 4.5 s at 22050 Hz), the chunk length of the original article.
DEFAULT_CHUNK_SAMPLES = 100_000

TAIL_POLICIES = ("drop", "pad")
SHORT_POLICIES = ("pad", "skip")
SILENCE_POLICIES = ("drop", "keep")
#: Training augmentations, in the order they are applied (see :mod:`genre_cnn.training.augment`).
AUGMENTATIONS = ("shift", "stretch", "pitch", "gain", "noise", "specaugment", "mixup")


def check_positive_int(name: str, value: Any) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``value`` is an integer above 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name}={value!r} must be a positive integer", parameter=name)


def check_choice(name: str, value: Any, choices: tuple) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} must be one of {', '.join(map(repr, choices))}", parameter=name)


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Everything that turns an audio file into the CNN's input, in one place.

    The same object is saved with the dataset (``feature_config.json``) and with every model
    (``config.json``), and ``classify`` rebuilds exactly these features from it.

    Parameters
    ----------
    sr : int
        Sample rate every file is resampled to, in Hz.
    chunk_samples : int
        Length of one chunk in samples (default 100000, about 4.5 s at 22050 Hz).
    hop_samples : int
        Distance between the starts of two chunks; smaller than ``chunk_samples`` means overlap.
    tail : {"drop", "pad"}
        What happens to audio left after the last full chunk. ``"drop"`` ignores it; ``"pad"``
        zero-pads it to a full chunk when it is at least half a chunk long.
    short : {"pad", "skip"}
        Songs shorter than one chunk (but at least ``min_seconds`` long) are zero-padded to one
        chunk (``"pad"``) or rejected with :class:`AudioTooShortError` (``"skip"``).
    min_seconds : float
        Songs shorter than this are always rejected as too short.
    silence : {"drop", "keep"}
        Chunks whose peak is at or below ``silence_db`` are dropped (and counted) or kept. A song
        whose chunks are all silent is rejected either way when dropping.
    silence_db : float
        Peak level in dBFS at or below which a chunk counts as silent (default -80 dBFS).
    trim_db : float, optional
        Remove leading and trailing silence quieter than this many dB below the song's peak
        (``librosa.effects.trim``) before chunking; None keeps everything.
    denoise : bool
        Spectral-gating noise reduction (the ``noisereduce`` package) before chunking.
    n_fft, hop_length, n_mels : int
        STFT window length, STFT hop and number of mel bands.
    fmin, fmax : float
        Frequency range of the mel filterbank in Hz; ``fmax=None`` means ``sr / 2``.
    amin : float
        Power floor before taking decibels: the quietest value is ``10 * log10(amin)`` dB.
    version : int
        Version of the feature pipeline, see :data:`FEATURE_VERSION`.
    dtype : {"float32", "float16"}
        How ``features.npy`` stores the log-mel chunks. ``"float16"`` halves the disk and page cache
        (dB values keep a step of at most 0.03 dB); readers always get float32.
    """

    sr: int = DEFAULT_SR
    chunk_samples: int = DEFAULT_CHUNK_SAMPLES
    hop_samples: int = DEFAULT_CHUNK_SAMPLES
    tail: str = "drop"
    short: str = "pad"
    min_seconds: float = 0.5
    silence: str = "drop"
    silence_db: float = -80.0
    trim_db: Optional[float] = None
    denoise: bool = False
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: Optional[float] = None
    amin: float = 1e-10
    version: int = FEATURE_VERSION
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_choice("dtype", self.dtype, FEATURE_DTYPES)
        for name in ("sr", "chunk_samples", "hop_samples", "n_fft", "hop_length", "n_mels"):
            check_positive_int(name, getattr(self, name))
        check_choice("tail", self.tail, TAIL_POLICIES)
        check_choice("short", self.short, SHORT_POLICIES)
        check_choice("silence", self.silence, SILENCE_POLICIES)
        if self.trim_db is not None and not (self.trim_db > 0 and math.isfinite(self.trim_db)):
            raise ConfigError(f"trim_db={self.trim_db!r} must be a positive number of dB (e.g. 60)",
                              parameter="trim_db")
        if not (self.silence_db <= 0 and math.isfinite(self.silence_db)):
            raise ConfigError(f"silence_db={self.silence_db!r} must be a level in dBFS <= 0", parameter="silence_db")
        if self.n_fft > self.chunk_samples:
            raise ConfigError(
                f"n_fft={self.n_fft} must not exceed chunk_samples={self.chunk_samples}; "
                "use longer chunks or a smaller n_fft"
            )
        if not (self.min_seconds >= 0 and math.isfinite(self.min_seconds)):
            raise ConfigError(f"min_seconds={self.min_seconds!r} must be a number >= 0", parameter="min_seconds")
        if not self.amin > 0:
            raise ConfigError(f"amin={self.amin!r} must be > 0", parameter="amin")
        nyquist = self.sr / 2
        top = nyquist if self.fmax is None else self.fmax
        if not 0 <= self.fmin < top <= nyquist:
            raise ConfigError(
                f"fmin={self.fmin}, fmax={self.fmax} must satisfy 0 <= fmin < fmax <= sr/2 = {nyquist:g}"
            )

    @classmethod
    def from_seconds(
        cls,
        *,
        sr: int = DEFAULT_SR,
        chunk_seconds: Optional[float] = None,
        hop_seconds: Optional[float] = None,
        **options: Any,
    ) -> "FeatureConfig":
        """Build a config with chunk length and hop given in seconds.

        ``chunk_seconds=None`` keeps the article's length (100000 samples at 22050 Hz, scaled to
        ``sr``); ``hop_seconds=None`` means no overlap.
        """
        for name, value in (("chunk_seconds", chunk_seconds), ("hop_seconds", hop_seconds)):
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"{name}={value!r} must be a positive number of seconds", parameter=name)
        if chunk_seconds is None:
            chunk_seconds = DEFAULT_CHUNK_SAMPLES / DEFAULT_SR
        chunk_samples = max(1, round(chunk_seconds * sr))
        hop_samples = chunk_samples if hop_seconds is None else max(1, round(hop_seconds * sr))
        return cls(sr=sr, chunk_samples=chunk_samples, hop_samples=hop_samples, **options)

    @property
    def chunk_seconds(self) -> float:
        """Chunk length in seconds."""
        return self.chunk_samples / self.sr

    @property
    def n_frames(self) -> int:
        """Number of STFT frames in one chunk (centred frames)."""
        return 1 + self.chunk_samples // self.hop_length

    @property
    def input_shape(self) -> tuple[int, int]:
        """Shape of one chunk's log-mel spectrogram, ``(n_mels, n_frames)``."""
        return (self.n_mels, self.n_frames)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        """Rebuild a config saved by :meth:`to_dict`, refusing ones this code cannot reproduce."""
        return _from_dict(cls, data, "feature config")


#: How ``features.npy`` may store the chunks (:attr:`FeatureConfig.dtype`).
FEATURE_DTYPES = ("float32", "float16")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Options of one training run, saved in the model's ``config.json``: those every kind of model
    shares, the kind to train, and that kind's own options.

    Each kind keeps its options in its own module (:mod:`genre_cnn.kinds`): the CNN's
    augmentations, crops, head and teacher in :class:`genre_cnn.kinds.cnn.CnnOptions`, the musicnn
    head's ``fine_tune`` in :class:`genre_cnn.kinds.musicnn.MusicnnOptions`. Here ``options`` may be
    that object or a mapping of its fields by name; the kind checks them when ``fit`` or ``cv``
    starts (:func:`genre_cnn.kinds.configured`), refusing, by name, options it does not take.

    Parameters
    ----------
    epochs : int
        Passes over the training examples.
    batch_size : int
        Examples per gradient step.
    learning_rate : float
        Learning rate of the optimiser.
    seed : int
        Seed for weight initialisation and shuffling; the same seed gives the same model.
    optimizer : {"rmsprop", "adam"}
        The optimiser (RMSprop as in the original article).
    class_weight : {"none", "balanced"}
        ``"balanced"`` weighs each training example by ``n / (n_genres * n_of_its_genre)``.
    patience : int, optional
        Stop when the validation loss has not improved for this many epochs (the best weights are
        kept either way); None trains all epochs.
    reduce_lr : bool
        Halve the learning rate when the validation loss stalls for ``max(1, patience // 2)`` epochs
        (2 without ``patience``).
    keep_epoch : {"last", "best"}
        Whose weights the saved model gets: the last epoch's, or those of the epoch with the
        lowest validation loss (training loss without validation songs). With a few validation
        songs the validation loss is noisy; cross-validation kept "last" (benchmarks/RESULTS.md).
    refit : bool
        After training on the training songs (the validation songs measured after every epoch, then
        used to calibrate the probabilities), train again from the same start on the training *and*
        validation songs for as many epochs as were kept; that second network is the one saved. The
        validation songs are otherwise never learned from. Twice the training time; without
        validation songs there is nothing to add, and no second run.
    kind : str
        The kind of model to train (``"cnn"``, the CNN from scratch; ``"musicnn"``, a head on the
        pretrained backbone; or a plug-in's), as :func:`genre_cnn.kinds.kind_names` lists them.
    options : mapping or the kind's options object
        The kind's own options; missing ones keep the kind's defaults. Given by name they are kept as a
        plain dict until checked, so ``TrainConfig()`` and its checked copy (whose options are the kind's
        object with every default) are equal in what they train, not under ``==``.
    """

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    optimizer: str = "rmsprop"
    class_weight: str = "none"
    patience: Optional[int] = None
    reduce_lr: bool = False
    keep_epoch: str = "last"
    refit: bool = True
    kind: str = "cnn"
    options: Any = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ConfigError(f"learning_rate={self.learning_rate!r} must be a positive number",
                              parameter="learning_rate")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed={self.seed!r} must be an integer >= 0", parameter="seed")
        check_choice("optimizer", self.optimizer, ("rmsprop", "adam"))
        check_choice("class_weight", self.class_weight, ("none", "balanced"))
        if self.patience is not None:
            check_positive_int("patience", self.patience)
        check_choice("keep_epoch", self.keep_epoch, ("last", "best"))
        for name in ("reduce_lr", "refit"):
            check_bool(name, getattr(self, name))
        if not isinstance(self.kind, str) or not self.kind:
            raise ConfigError(f"kind={self.kind!r} must be the name of a model kind", parameter="kind")
        if isinstance(self.options, Mapping):
            object.__setattr__(self, "options", dict(self.options))
        elif not dataclasses.is_dataclass(self.options):
            raise ConfigError(f"options={self.options!r} must be a mapping of the {self.kind} kind's options "
                              "by name, or its options object", parameter="options")

    def option_values(self) -> dict:
        """The kind's options as a dict (what was given, or every field of the options object)."""
        return dict(self.options) if isinstance(self.options, dict) else dataclasses.asdict(self.options)

    def to_dict(self) -> dict:
        return {**{field.name: getattr(self, field.name) for field in dataclasses.fields(self)},
                "options": self.option_values()}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Rebuild a config saved by :meth:`to_dict` (a model's saved from before kinds had their own options
        is read by :func:`genre_cnn.kinds.train_config_from_dict`)."""
        return _from_dict(cls, data, "training config")


#: The options every kind shares (:class:`TrainConfig`'s fields other than ``kind`` and ``options``).
SHARED_TRAIN_OPTIONS = tuple(field.name for field in dataclasses.fields(TrainConfig)
                             if field.name not in ("kind", "options"))


def check_bool(name: str, value: Any) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``value`` is True or False."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} must be True or False", parameter=name)


def check_number(name: str, value: Any) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``value`` is a finite number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} must be a number", parameter=name)


def augmentations(value: Any) -> tuple[str, ...]:
    """``value`` (names, or one comma-separated string) as a tuple in :data:`AUGMENTATIONS` order.

    Raises
    ------
    ConfigError
        Names that are not augmentations, or not a list of names.
    """
    if isinstance(value, str):
        value = [part for part in value.replace(" ", "").split(",") if part]
    if not isinstance(value, (list, tuple)) or not all(isinstance(name, str) for name in value):
        raise ConfigError(f"augment={value!r} must be a list of augmentation names", parameter="augment")
    unknown = [name for name in value if name not in AUGMENTATIONS]
    if unknown:
        raise ConfigError(
            f"augment={','.join(value)}: unknown augmentation(s) {', '.join(unknown)}; choose from "
            f"{','.join(AUGMENTATIONS)}", parameter="augment"
        )
    return tuple(name for name in AUGMENTATIONS if name in value)


def _from_dict(cls, data: Any, what: str):
    if not isinstance(data, dict):
        raise ConfigError(f"the {what} must be a JSON object, got {type(data).__name__}")
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"the {what} has unknown fields {unknown}; it was written by another version of genre-cnn"
        )
    if cls is FeatureConfig and data.get("version", FEATURE_VERSION) != FEATURE_VERSION:
        raise ConfigError(
            f"the {what} has version={data.get('version')!r} but this genre-cnn computes "
            f"version {FEATURE_VERSION}; rebuild the dataset or refit the model with this version"
        )
    try:
        return cls(**data)
    except TypeError as exc:  # wrong value types that slipped past the validators
        raise ConfigError(f"the {what} is invalid: {exc}") from exc


def check_classes(value: Any) -> tuple[str, ...]:
    """``value`` as a tuple of genre names, if it is a list of at least two distinct non-empty strings.

    Raises
    ------
    ConfigError
        Anything else (a number, a dict, names that repeat...).
    """
    if (not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, str) and v for v in value)
            or len(set(value)) != len(value)):
        raise ConfigError("the class list must be a JSON list of at least two distinct genre names, "
                          f"got {json.dumps(value, default=repr)[:60]}")
    return tuple(value)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as pretty JSON (the caller's directory is already a temporary one)."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def read_json(path: Path, *, what: str, error: type = ConfigError, fix: str = "rebuild it",
              expect: Optional[type] = None) -> Any:
    """Read a JSON file, raising ``error`` with the path and ``fix`` when it is missing or invalid.

    ``expect`` (e.g. ``dict``) is the type the top-level value must have.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {what} is missing; {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: {what} is not valid JSON ({exc}); {fix}") from None
    except OSError as exc:
        raise error(f"{path}: {what} cannot be read ({exc.strerror}); {fix}") from None
    if expect is not None and not isinstance(data, expect):
        raise error(f"{path}: {what} is damaged (a JSON {type(data).__name__} instead of a "
                    f"{'JSON object' if expect is dict else expect.__name__}); {fix}")
    return data
