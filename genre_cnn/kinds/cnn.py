"""The ``cnn`` kind: the small CNN trained from scratch on log-mel chunks (with or without a teacher).

Its network is :func:`genre_cnn.models.cnn.build_model`, its training
:func:`genre_cnn.training.scratch.train_scratch`; this module puts them together as a kind
(:mod:`genre_cnn.kinds`): its options, the classifier that opens a fitted folder, how ``fit`` trains one,
and the recipes ``cv`` compares (``scratch``, ``teacher``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Iterator, Mapping, Optional

import numpy as np

from genre_cnn.config import (
    FeatureConfig,
    TrainConfig,
    augmentations,
    check_bool,
    check_choice,
    check_number,
    check_positive_int,
)
from genre_cnn.data.dataset import Dataset
from genre_cnn.errors import ConfigError
from genre_cnn.inference.classifier import GenreClassifier
from genre_cnn.inference.occlusion import TimedViews
from genre_cnn.kinds import Kind, options_of
from genre_cnn.models.cnn import SUMMARY_LAYER
from genre_cnn.models.store import ModelDir
from genre_cnn.signal.logmel import SongFeatureStream, mel_band_edges
from genre_cnn.training.recipes import TrainedRecipe
from genre_cnn.training.scratch import train_scratch

__all__ = ["CnnOptions", "CnnClassifier", "ScratchCnn", "KIND"]


@dataclasses.dataclass(frozen=True)
class CnnOptions:
    """The options of the CNN from scratch (``TrainConfig(options=CnnOptions(...))``, or the same by name).

    Parameters
    ----------
    augment : tuple of str
        Augmentations of the training chunks, any of :data:`genre_cnn.config.AUGMENTATIONS` (see
        :mod:`genre_cnn.training.augment`; also one comma-separated string); validation and test
        chunks are never augmented.
    noise_snr_db : float
        Signal-to-noise ratio of the ``noise`` augmentation, in dB.
    gain_db : float
        The ``gain`` augmentation changes the level by up to this many dB either way.
    stretch : float
        The ``stretch`` augmentation plays chunks up to ``1 + stretch`` times faster or slower.
    pitch_semitones : float
        The ``pitch`` augmentation shifts by up to this many semitones either way.
    mixup_alpha : float
        Beta(alpha, alpha) distribution of the ``mixup`` weights; small alpha mixes little.
    random_crop : bool
        Cut every training chunk at a new random offset each epoch (from its own frames and the
        next chunk's of the same song), so an epoch shows new excerpts of the training songs;
        validation and test chunks are served as stored.
    crops_per_chunk : int
        With ``random_crop``: random crops of every training chunk per epoch (each epoch then takes
        this many times the steps). More distinct excerpts, more optimiser steps, same songs.
    teacher : {None, "musicnn"}
        Knowledge distillation (:mod:`genre_cnn.training.distill`): the CNN also learns the soft genre
        probabilities that a musicnn head, trained on the training songs only, gives each
        training chunk. The saved model is the plain CNN.
    temperature : float
        Softening of the teacher's and the student's probabilities in the distillation loss (>= 1).
    distill_weight : float
        Share of the true-label cross-entropy in the distillation loss (the rest is the
        temperature-scaled divergence from the teacher), in [0, 1].
    head : {"wide", "summary"}
        The CNN's head (:data:`genre_cnn.models.cnn.HEADS`): ``"wide"`` (the default) adds to the
        convolutions' logits a linear path from the chunk's spectral summary, set by a logistic
        regression before training and left as it is by training; ``"summary"`` (the previous
        default, and what a config saved without ``head`` had) feeds the pooled features and each
        band's mean and spread through one dense layer.
    mixed_precision : bool
        Train with Keras' ``mixed_float16`` policy (float16 maths, float32 weights): faster on
        GPUs with tensor cores, slower on CPUs. The saved model is float32.
    """

    augment: tuple = ()
    noise_snr_db: float = 20.0
    gain_db: float = 6.0
    stretch: float = 0.1
    pitch_semitones: float = 2.0
    mixup_alpha: float = 0.2
    random_crop: bool = True
    crops_per_chunk: int = 1
    teacher: Optional[str] = None
    temperature: float = 2.0
    distill_weight: float = 0.5
    head: str = "wide"
    mixed_precision: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "augment", augmentations(self.augment))
        for name in ("noise_snr_db", "gain_db", "stretch", "pitch_semitones", "mixup_alpha", "temperature",
                     "distill_weight"):
            check_number(name, getattr(self, name))
        for name in ("gain_db", "stretch", "pitch_semitones", "mixup_alpha"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}={getattr(self, name)!r} must be above 0", parameter=name)
        if self.stretch >= 1:
            raise ConfigError(f"stretch={self.stretch!r} must be below 1 (0.1 means ±10 % speed)", parameter="stretch")
        check_positive_int("crops_per_chunk", self.crops_per_chunk)
        if self.teacher is not None:
            check_choice("teacher", self.teacher, ("musicnn",))
        if not self.temperature >= 1:
            raise ConfigError(f"temperature={self.temperature!r} must be >= 1 (1 keeps the teacher's probabilities)",
                              parameter="temperature")
        if not 0 <= self.distill_weight <= 1:
            raise ConfigError(f"distill_weight={self.distill_weight!r} must be in [0, 1]", parameter="distill_weight")
        check_choice("head", self.head, ("wide", "summary"))
        for name in ("random_crop", "mixed_precision"):
            check_bool(name, getattr(self, name))

    @classmethod
    def from_flat_train_config(cls, saved: Mapping) -> "CnnOptions":
        """The options in a flat ``train_config`` saved before kinds had their own; one saved before the wide
        head existed had the summary head."""
        own = {field.name: saved[field.name] for field in dataclasses.fields(cls) if field.name in saved}
        return cls(**{"head": "summary", **own})


class CnnClassifier(GenreClassifier):
    """The CNN trained from scratch: its input is the log-mel chunks of
    :class:`~genre_cnn.signal.logmel.SongFeatureStream`."""

    kind = "cnn"
    #: The wide head's standardised spectral summary (what its linear path sees; with it, songs of a genre
    #: the model never saw are told apart: tests/test_monitor.py), else the pooled convolutions.
    embedding_layer = ("standardise_summary", "global_pool")
    makes_timelines = True
    inputs_are_log_mel = True

    @staticmethod
    def input_shape(feature_config: FeatureConfig) -> tuple:
        return feature_config.input_shape

    @staticmethod
    def read_front_end(folder: ModelDir, feature_config: FeatureConfig) -> np.ndarray:
        """The mel filterbank the model was trained with (so classify needs no librosa)."""
        return folder.read_filterbank(feature_config)

    def network_inputs(self, path: str | os.PathLike) -> Iterator[np.ndarray]:
        for features, _ in SongFeatureStream(path, self.feature_config, filterbank=self.filterbank):
            yield features

    def timed_views(self, path: str | os.PathLike):
        """The song's log-mel chunks with their start times, for :func:`genre_cnn.inference.occlusion.explain_song`."""
        config, inputs, starts = self.feature_config, [], []
        for features, offsets in SongFeatureStream(path, config, filterbank=self.filterbank):
            inputs.append(features)
            starts.append(offsets / config.sr)
        return TimedViews(inputs=np.concatenate(inputs), starts=np.concatenate(starts),
                          seconds_per_frame=config.hop_length / config.sr,
                          band_edges_hz=mel_band_edges(config.n_mels, fmin=config.fmin,
                                                      fmax=config.sr / 2 if config.fmax is None else config.fmax))

    def predict_views(self, views: np.ndarray) -> np.ndarray:
        """:meth:`predict_chunks` of views from :meth:`timed_views` (they are the chunks)."""
        return self.predict_chunks(views)


class ScratchCnn:
    """The small CNN from scratch on log-mel chunks (:func:`genre_cnn.training.scratch.train_scratch`)."""

    kind = "cnn"
    unit = "chunks"
    replicated = True
    #: The recipes ``fit --compare`` trains on the same songs to tell the user when one would do better.
    challengers = ("musicnn", "baseline")
    #: Measured (benchmarks/RESULTS.md): a third of the file, up to half the network's CPU time (none on an AVX2-only
    #: AMD EPYC), the same top genre on all 568 songs of the demo, dev-music and real-genres, within 0.015.
    litert_weights = "int8"

    def training_data(self, dataset, *, log=print) -> Dataset:
        return dataset

    def describe(self, config: TrainConfig) -> str:
        options = options_of(config)
        text = ", mixed precision" if options.mixed_precision else ""
        text += f", augmented with {'+'.join(options.augment)}" if options.augment else ""
        text += ", random crops" if options.random_crop else ""
        text += f", distilled from {options.teacher} (T={options.temperature:g})" if options.teacher else ""
        return text

    def train(self, dataset, *, train_rows, val_rows, config, kept, callbacks, checkpoint=None, verbose=2,
              log=print):
        return train_scratch(dataset, train_rows=train_rows, val_rows=val_rows, config=config, kept=kept,
                             callbacks=callbacks, checkpoint=checkpoint, verbose=verbose, log=log)

    def save_front_end(self, folder: ModelDir, dataset: Dataset) -> None:
        folder.write_filterbank(dataset.feature_config)  # so classify needs no librosa

    def embedding_layer(self, model, config: TrainConfig) -> Optional[str]:
        """The wide head's standardised spectral summary; None for the summary head.

        Measured on real-genres (one split by artist, 92 test songs against 24 recordings of speech, noise,
        sweeps and tones): the summary separates them perfectly (AUROC 1.000), the top probability not at
        all (0.52); benchmarks/RESULTS.md. The novelty threshold is chosen on the training songs, each
        against the others, which is fair only for an embedding training does not shape: the summary is
        (its standardisation aside), the summary head's pooled convolutions are not, so that head gets none.
        """
        present = {layer.name for layer in model.layers}
        return SUMMARY_LAYER if SUMMARY_LAYER in present else None


KIND = Kind(
    name="cnn",
    classifier=CnnClassifier,
    options=CnnOptions,
    trainer=ScratchCnn(),
    claims_flat_train_config=lambda saved: not saved.get("backbone"),
    recipes={
        "scratch": TrainedRecipe("scratch", kind="cnn", options={"teacher": None}, title="the CNN from scratch"),
        "teacher": TrainedRecipe("teacher", kind="cnn", options={"teacher": "musicnn"},
                                 title="the CNN distilled from musicnn", command="--teacher musicnn"),
    },
)
