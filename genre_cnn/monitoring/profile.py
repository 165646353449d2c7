"""Profiles of sets of songs: what they sound like and what the model makes of them.

A :class:`Profile` summarises each song by its audio (duration, sample rate, channels, loudness,
clipping, silence), its spectral balance (mean log-mel level per band, in the model's own
features) and, for songs the model never trained on, the model's view of it (top genre, top
probability, mean penultimate embedding). ``fit`` saves one for its dataset beside the model
(``profile.npz``, the only code that reads or writes it is here); ``monitor`` computes the same for
incoming songs with :func:`profile_songs` and compares the two.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from genre_cnn.config import FeatureConfig
from genre_cnn.data.arrays import RowReader
from genre_cnn.data.cache import song_files, song_levels
from genre_cnn.errors import AudioDecodeError, ModelError
from genre_cnn.inference.prediction import SongEmbedding
from genre_cnn.kinds import kind_named
from genre_cnn.models.store import ModelDir
from genre_cnn.runtime.files import atomic_file
from genre_cnn.signal.audio import AUDIO_FIELDS, audio_levels
from genre_cnn.signal.logmel import song_band_means

__all__ = ["PROFILE_FILE", "Profile", "SongProfiler", "sound_profile", "profile_songs", "save_profile", "load_profile"]

PROFILE_FILE = ModelDir.PROFILE
#: 2: songs' genres and top probabilities combine their chunks by the geometric mean, as ``classify`` does
#: (version 1 averaged them: a reference of that kind would make the confidence check cry wolf).
PROFILE_VERSION = 2
def sound_profile(path: str | os.PathLike, classifier) -> dict:
    """How a song sounds, in the terms of a model's features: :func:`~genre_cnn.signal.audio.audio_levels` and
    ``band_means`` (the mean log-mel level of each band of the model's feature config, in dB).

    What ``serve --log`` records per song, and the model-free half of :meth:`SongProfiler.profile`.

    Raises
    ------
    AudioDecodeError
    """
    config = _feature_config(classifier)
    song = audio_levels(path, sr=config.sr)
    song["band_means"] = song_band_means(path, config, filterbank=classifier.filterbank)
    return song


def _feature_config(classifier):
    """The classifier's feature config; a baseline has none, so the default one describes its songs."""
    return classifier.feature_config or FeatureConfig()


@dataclasses.dataclass(frozen=True)
class Profile:
    """Per-song summaries of a set of songs.

    Attributes
    ----------
    classes : tuple of str
        The model's genres (``genres`` index them).
    seconds, loudness_db, clipping, silence : np.ndarray [shape=(n_songs,)]
    sample_rate, channels : np.ndarray [shape=(n_songs,), dtype=int]
    band_means : np.ndarray [shape=(n_songs, n_mels)]
        Mean log-mel level of each band, in dB.
    genres : np.ndarray [shape=(n_judged,), dtype=int]
        The model's top genre for each song it did not train on.
    top_probability : np.ndarray [shape=(n_judged,)]
    embeddings : np.ndarray [shape=(n_embedded, dim)]
        Mean penultimate embedding of each song the model did not train on (empty for a baseline,
        or a profile read from a serve log, which has none).
    """

    classes: tuple
    seconds: np.ndarray
    sample_rate: np.ndarray
    channels: np.ndarray
    loudness_db: np.ndarray
    clipping: np.ndarray
    silence: np.ndarray
    band_means: np.ndarray
    genres: np.ndarray
    top_probability: np.ndarray
    embeddings: np.ndarray

    @property
    def n_songs(self) -> int:
        return len(self.seconds)

    @classmethod
    def from_songs(cls, classes: Sequence[str], songs: Sequence[dict], *, judged: Optional[Sequence[bool]] = None,
                   embedding_dim: int = 0) -> "Profile":
        """Stack per-song dicts (from :meth:`SongProfiler.profile` or a serve log line).

        ``judged`` marks the songs whose model view (genre, probability, embedding) is kept:
        those the model did not train on (default: all).
        """
        judged = [True] * len(songs) if judged is None else list(judged)
        column = lambda name, dtype=np.float64: np.array([song[name] for song in songs], dtype=dtype)  # noqa: E731
        seen = [song for song, keep in zip(songs, judged) if keep]
        embedded = [song["embedding"] for song in seen if song.get("embedding") is not None]
        index = {name: i for i, name in enumerate(classes)}
        return cls(
            classes=tuple(classes), seconds=column("seconds"), sample_rate=column("sample_rate", np.int64),
            channels=column("channels", np.int64), loudness_db=column("loudness_db"), clipping=column("clipping"),
            silence=column("silence"),
            band_means=np.array([song["band_means"] for song in songs], dtype=np.float64).reshape(len(songs), -1),
            genres=np.array([index[song["genre"]] for song in seen], dtype=np.int64),
            top_probability=np.array([song["probability"] for song in seen], dtype=np.float64),
            embeddings=np.array(embedded, dtype=np.float32).reshape(len(embedded), -1 if embedded else embedding_dim),
        )

    @classmethod
    def from_files(cls, files: Sequence[Path], classifier, *, unseen: Optional[Sequence[bool]] = None,
                   progress: Callable = lambda items: items
                   ) -> tuple[Optional["Profile"], list[tuple[str, str]]]:
        """The profile of songs read from their files (:meth:`SongProfiler.profile` of each).

        Parameters
        ----------
        files : sequence of Path
        classifier : Classifier
            The model whose view of the songs is kept.
        unseen : sequence of bool, optional
            Marks the songs the model never trained on: only theirs is the model's view kept (default:
            all; also when none is marked).

        Returns
        -------
        profile : Profile or None
            None when no song could be read.
        skipped : list of (path, reason)
        """
        profiler = SongProfiler(classifier)
        songs, skipped = profile_songs(files, profiler, progress=progress)
        if not songs:
            return None, skipped
        unseen_files = {str(path) for path, keep in zip(files, unseen if unseen is not None else [True] * len(files))
                        if keep}
        judged = [song["path"] in unseen_files for song in songs]
        if not any(judged):  # no held-out songs: the training songs are all there is
            judged = [True] * len(songs)
        return cls.from_songs(classifier.classes, songs, judged=judged), skipped

    @classmethod
    def from_dataset(cls, dataset, classifier, *, inputs=None,
                     progress: Callable = lambda items: items) -> tuple[Optional["Profile"], list[tuple[str, str]]]:
        """The profile of a dataset's songs, from what the dataset holds: no song is decoded again.

        Each song's levels are those measured when the dataset was built (``songs.csv``), its band
        means those of its stored log-mel chunks, and the model's view (kept for the validation and
        test songs only, those it never trained on, so it shows how the model meets new songs) comes
        from running the network on the song's stored inputs. A dataset built before levels were
        recorded, or a model whose inputs are not stored (``inputs`` not given, and not the chunks of its
        own feature config), has its songs decoded again (:meth:`from_files`). A song without stored
        inputs (one musicnn's front end could not read) is skipped.

        Parameters
        ----------
        dataset : genre_cnn.data.dataset.Dataset
            The chunk dataset.
        classifier : Classifier
            The model whose view of the songs is kept (a network kind).
        inputs : genre_cnn.data.dataset.Dataset, optional
            The network's inputs for the same songs when they are not the chunks (musicnn's patches).

        Returns
        -------
        profile : Profile or None
            None when no song could be read.
        skipped : list of (path, reason)
        """
        names, first = dataset.song_rows()
        unseen = [dataset.splits[row] != "train" for row in first]
        judged = unseen if any(unseen) else [True] * len(names)  # no held-out songs: the training songs are all
        levels = song_levels(dataset.path)
        if inputs is None and classifier.inputs_are_log_mel and classifier.feature_config == dataset.feature_config:
            inputs = dataset  # the network's inputs are the stored chunks
        if levels is None or not classifier.embedding_layer or inputs is None or any(n not in levels for n in names):
            files = song_files(dataset.path)
            present = [i for i, name in enumerate(names) if name in files]
            profile, skipped = cls.from_files([files[names[i]] for i in present], classifier,
                                              unseen=[unseen[i] for i in present],
                                              progress=progress)
            return profile, skipped + [(name, "not in the dataset's songs.csv") for name in names if name not in files]
        stored = set(inputs.songs.tolist())  # a song the network's front end could not read has no inputs
        skipped = [(name, "no network inputs stored for it") for name in names if name not in stored]
        judged = [keep for name, keep in zip(names, judged) if name in stored]
        names = [name for name in names if name in stored]
        if not names:
            return None, skipped
        profiler = SongProfiler(classifier)
        band_means = _mean_per_song(dataset, names, lambda rows: rows.mean(axis=(0, 2), dtype=np.float64))
        viewed = [name for name, keep in zip(names, judged) if keep]
        views = dict(zip(viewed, progress(profiler.views_of_rows(inputs, viewed))))
        songs = [{"path": name, **levels[name], "band_means": band_means[name], **views.get(name, {})}
                 for name in names]
        return cls.from_songs(classifier.classes, songs, judged=judged), skipped

    def subset(self, songs: np.ndarray, judged: np.ndarray) -> "Profile":
        """The profile of some songs (rows ``songs`` of the audio arrays, ``judged`` of the model's)."""
        audio = {name: getattr(self, name)[songs] for name in (*AUDIO_FIELDS, "band_means")}
        return dataclasses.replace(self, **audio, genres=self.genres[judged],
                                   top_probability=self.top_probability[judged],
                                   embeddings=self.embeddings[judged] if len(self.embeddings) else self.embeddings)


class SongProfiler:
    """One song's profile as a model sees it: the same code for the reference (``fit``) and incoming songs.

    The model's view of a song (top genre and probability, mean embedding) is the classifier's own
    :meth:`~genre_cnn.inference.prediction.Classifier.embed_file`; a kind whose ``embedding_layer`` is None
    (the baseline) keeps no embedding in a profile.

    Parameters
    ----------
    classifier : Classifier
        From :func:`genre_cnn.inference.classifier.open_classifier`.
    """

    def __init__(self, classifier) -> None:
        self.classifier = classifier
        self.feature_config = _feature_config(classifier)
        self.keeps_embeddings = bool(classifier.embedding_layer)

    def profile(self, path: str | os.PathLike) -> dict:
        """The song's audio statistics, band means, top genre and probability, and mean embedding.

        Raises
        ------
        AudioDecodeError
        """
        if not self.classifier.inputs_are_log_mel:
            song = sound_profile(path, self.classifier)
            song.update(self._view(self.classifier.embed_file(path)))
            return song
        # a CNN's inputs are the log-mel chunks themselves: their band means come free with the network pass
        song = audio_levels(path, sr=self.feature_config.sr)
        band_sum, frames = 0.0, 0

        def batches():
            nonlocal band_sum, frames
            for inputs in self.classifier.network_inputs(path):
                band_sum = band_sum + inputs.sum(axis=(0, 2), dtype=np.float64)
                frames += inputs.shape[0] * inputs.shape[2]
                yield inputs

        song.update(self._view(self.classifier.embed_inputs(batches())))
        song["band_means"] = band_sum / frames
        return song

    def views_of_rows(self, inputs, songs: Sequence[str], *, batch_size: int = 256) -> Iterator[dict]:
        """The model's view of each of ``songs``, in order, from its stored rows of ``inputs`` (a dataset of
        the network's inputs): the ``genre``, ``probability`` and ``embedding`` :meth:`profile` gives from
        the song's file (a network kind only)."""
        read = RowReader(inputs.features)
        for rows in _rows_of_songs(inputs, songs):
            yield self._view(self.classifier.embed_inputs(
                read(rows[start : start + batch_size]) for start in range(0, len(rows), batch_size)))

    def _view(self, song: SongEmbedding) -> dict:
        """Genre, probability and (when kept) embedding of a song as the model sees it."""
        return {"genre": self.classifier.classes[int(np.argmax(song.probabilities))],
                "probability": float(np.max(song.probabilities)),
                "embedding": song.embedding if self.keeps_embeddings else None}


def _rows_of_songs(dataset, songs: Sequence[str]) -> Iterator[np.ndarray]:
    """The rows of each of ``songs`` in ``dataset``, in order (each song's in increasing order)."""
    order = np.argsort(dataset.songs, kind="stable")
    ordered = dataset.songs[order]
    for name in songs:
        yield order[np.searchsorted(ordered, name, side="left"):np.searchsorted(ordered, name, side="right")]


def _mean_per_song(dataset, songs: Sequence[str], reduce: Callable[[np.ndarray], np.ndarray]) -> dict:
    """``reduce`` of each song's stored rows of ``dataset``, by song."""
    read = RowReader(dataset.features)
    return {name: reduce(read(rows)) for name, rows in zip(songs, _rows_of_songs(dataset, songs))}


def profile_songs(paths: Iterable[str | os.PathLike], profiler: SongProfiler, *,
                  progress: Callable = lambda items: items) -> tuple[list[dict], list[tuple[str, str]]]:
    """Profile every readable song; the others are returned with their reasons.

    Returns
    -------
    songs : list of dict
        :meth:`SongProfiler.profile` of each readable song, with its ``path``.
    skipped : list of (path, reason)
    """
    songs, skipped = [], []
    for path in progress(list(paths)):
        try:
            songs.append({"path": str(path), **profiler.profile(path)})
        except AudioDecodeError as exc:
            skipped.append((str(path), str(exc)))
    return songs, skipped


def save_profile(profile: Profile, path: Path) -> None:
    """Write ``profile.npz`` (plain arrays, no pickles), atomically."""
    arrays = {field.name: np.asarray(getattr(profile, field.name)) for field in dataclasses.fields(Profile)}
    arrays["classes"] = np.array(profile.classes, dtype=str)
    arrays["version"] = np.array(PROFILE_VERSION)
    with atomic_file(path) as partial, open(partial, "wb") as out:
        np.savez_compressed(out, **arrays)


def load_profile(model_dir: str | os.PathLike) -> Profile:
    """Read the reference profile saved beside a model.

    Raises
    ------
    ModelError
        No profile (a model fitted before profiles existed: the message says how to add one), or a damaged one.
    """
    path = Path(model_dir) / PROFILE_FILE
    if not path.is_file():
        raise ModelError(f"{model_dir}: has no reference profile ({PROFILE_FILE}; models fitted before genre-cnn "
                         f"monitor existed have none); add one with 'genre-cnn monitor --model {model_dir} "
                         "--rebuild-profile DATASET' using the dataset it was fitted on")
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
        fields = {field.name: arrays[field.name] for field in dataclasses.fields(Profile) if field.name != "classes"}
        profile = Profile(classes=tuple(str(c) for c in arrays["classes"]), **fields)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        raise ModelError(f"{path}: is damaged; rebuild it with 'genre-cnn monitor --model {model_dir} "
                         "--rebuild-profile DATASET'") from None
    version = int(arrays.get("version", 1))
    # version 1 changed only how a song's chunks are combined: a kind with one verdict per song is unaffected
    if version < PROFILE_VERSION and kind_named(ModelDir(model_dir).kind()).classifier.combines_chunks:
        raise ModelError(f"{path}: was made by an older genre-cnn (profile version {version}: it averaged each "
                         "song's chunk probabilities, classify now takes their geometric mean); rebuild it with "
                         f"'genre-cnn monitor --model {model_dir} --rebuild-profile DATASET'")
    if profile.band_means.ndim != 2 or len(profile.band_means) != profile.n_songs:
        raise ModelError(f"{path}: is damaged (inconsistent arrays); rebuild it with 'genre-cnn monitor --model "
                         f"{model_dir} --rebuild-profile DATASET'")
    return profile
