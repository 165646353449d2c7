"""Classify songs with a saved model: per-chunk probabilities combined per song."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np

from genre_cnn.config import FeatureConfig
from genre_cnn.errors import AudioDecodeError, ConfigError, GenreCnnWarning, ModelError
from genre_cnn.inference.occlusion import explain_song
from genre_cnn.inference.prediction import Classifier, SongEmbedding, SongPrediction, SongVerdict, expand_paths
from genre_cnn.inference.runners import KerasRunner, open_runner, with_embedding
from genre_cnn.kinds import kind_named
from genre_cnn.models.calibration import UNCALIBRATED, Calibration
from genre_cnn.models.novelty import Novelty
from genre_cnn.models.registry import DEFAULT_MODELS_DIR, resolve_model_dir
from genre_cnn.models.store import ModelDir
from genre_cnn.plots import plot_explanation
from genre_cnn.runtime.parallel import process_pool
from genre_cnn.signal.logmel import chunks_per_batch

__all__ = ["SongPrediction", "Classifier", "GenreClassifier", "load_classifier", "open_classifier",
           "with_min_confidence", "classify", "classify_files", "expand_paths"]


class GenreClassifier:
    """A saved network together with the feature config, filterbank and classes it was trained with.

    The common part of every network kind (:mod:`genre_cnn.kinds`), which differ in their front
    end (:meth:`network_inputs`, :meth:`read_front_end`). Use :func:`open_classifier` to make one.

    Attributes
    ----------
    model_dir : Path
    classes : tuple of str
        Genre names, in the order of the probability columns.
    feature_config : FeatureConfig
    calibration : Calibration
        The temperature every probability this classifier gives is calibrated with.
    min_confidence : float or None
        Verdicts less sure than this are flagged unsure: the calibration's threshold unless
        :func:`open_classifier` was given another.
    novelty : Novelty or None
        The songs the network learned from, in its embedding space: songs far from all of them are
        flagged unfamiliar. None for a model fitted without one (never flagged).
    backend : str
        ``"litert"`` or ``"keras"``: what runs the network.
    """

    kind = ""
    #: The layer whose output is the network's embedding of an input (:meth:`embed_file`, for ``monitor``): the
    #: novelty reference's layer when the model has one, else the first of these candidates the network has.
    embedding_layer = ""
    makes_timelines = False
    inputs_are_log_mel = False
    profiles_from_dataset = True
    #: A song's verdict combines the verdicts of its chunks (or patches).
    combines_chunks = True

    def __init__(self, model_dir: Path, runner, classes: Sequence[str], feature_config: FeatureConfig,
                 filterbank: Optional[np.ndarray] = None, calibration: Calibration = UNCALIBRATED,
                 novelty: Optional[Novelty] = None):
        self.model_dir = model_dir
        self.novelty = novelty
        self.runner = runner
        self.classes = tuple(classes)
        self.feature_config = feature_config
        self.filterbank = filterbank
        self.calibration = calibration
        self.min_confidence = calibration.min_confidence
        self._embedder = None  # a Keras network with an embedding output, when needed

    @property
    def backend(self) -> str:
        return self.runner.name

    @classmethod
    def open(cls, model_dir: str | os.PathLike, *, backend: str = "auto") -> "GenreClassifier":
        """Open a model folder of this kind (see :func:`open_classifier`, which finds the kind).

        The saved feature config must be one this version computes, and must agree with the
        network's input and output shapes.

        Raises
        ------
        ModelError
            Missing or incomplete model folder, or a config this version cannot reproduce.
        """
        model_dir = Path(model_dir)
        folder = ModelDir(model_dir)
        if not (folder / folder.KERAS).is_file():
            raise ModelError(f"{model_dir}: {ModelDir.KERAS} is missing; refit with 'genre-cnn fit'")
        saved = folder.read_config()
        classes = folder.read_classes(saved)
        feature_config = folder.read_feature_config(saved)
        calibration = folder.read_calibration(saved)
        novelty = folder.read_novelty(saved)
        input_shape = cls.input_shape(feature_config)
        runner = open_runner(model_dir, backend=backend, embedding_layer=None if novelty is None else novelty.layer)
        outputs = len(classes) + (0 if novelty is None else novelty.dim)
        if runner.input_shape != input_shape or runner.n_outputs != outputs:
            raise ModelError(
                f"{model_dir}: the network takes {runner.input_shape} and gives {runner.n_outputs} outputs "
                f"but config.json describes {input_shape} -> {outputs} ({len(classes)} genres"
                f"{'' if novelty is None else f' and a {novelty.dim}-wide embedding'}); "
                "the folder mixes two models, refit it"
            )
        return cls(model_dir, runner, classes, feature_config, cls.read_front_end(folder, feature_config),
                   calibration, novelty)

    @staticmethod
    def input_shape(feature_config: FeatureConfig) -> tuple:
        """The shape of one input of this kind's network."""
        raise NotImplementedError

    @staticmethod
    def read_front_end(folder: ModelDir, feature_config: FeatureConfig) -> Optional[np.ndarray]:
        """What the kind's front end reads from its folder besides the network (the CNN's filterbank)."""
        return None

    def network_inputs(self, path: str | os.PathLike) -> Iterator[np.ndarray]:
        """The network's input for one song, in batches.

        Raises
        ------
        AudioDecodeError
        """
        raise NotImplementedError

    def predict_chunks(self, features: np.ndarray, *, batch_size: Optional[int] = None) -> np.ndarray:
        """Calibrated probabilities of each chunk, shape ``(n_chunks, n_classes)``, run ``batch_size`` chunks
        at a time (default: as many as fit the byte budget of :func:`genre_cnn.signal.logmel.chunks_per_batch`).

        Every verdict of this classifier (songs, timeline windows) combines these, so all carry the
        model's temperature (:class:`~genre_cnn.models.calibration.Calibration`).
        """
        return self.predict_and_embed(features, batch_size=batch_size)[0]

    def predict_and_embed(self, features: np.ndarray, *, batch_size: Optional[int] = None
                          ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """:meth:`predict_chunks` and, in the same pass, each chunk's embedding (None without a novelty
        reference), shape ``(n_chunks, novelty.dim)``."""
        raw = self.runner.predict(features, batch_size=batch_size or chunks_per_batch(self.feature_config))
        n_classes = len(self.classes)
        embeddings = raw[:, n_classes:] if self.novelty is not None else None
        return self.calibration.apply(raw[:, :n_classes]), embeddings

    def embed_file(self, path: str | os.PathLike) -> SongEmbedding:
        """The song's verdict and mean embedding in one pass over its inputs.

        Raises
        ------
        AudioDecodeError
        """
        return self.embed_inputs(self.network_inputs(path))

    def embed_inputs(self, batches: Iterable[np.ndarray]) -> SongEmbedding:
        """:meth:`embed_file` of one song's network inputs, given in batches (e.g. its chunks stored in a dataset).

        The probabilities are always those of the classifier's own runner (what ``classify`` gives).
        With a novelty reference the runner gives the embedding in the same pass (the folder's
        ``model.tflite`` was exported so); otherwise the Keras network is opened once, with the first
        of :attr:`embedding_layer` it has as its output; a kind without an embedding layer embeds
        nothing (an empty embedding).

        Parameters
        ----------
        batches : iterable of np.ndarray
            The song's network inputs, ``(n, *input_shape)`` each.

        Returns
        -------
        SongEmbedding

        Raises
        ------
        AudioDecodeError
            No input at all (a song shorter than one chunk).
        ModelError
            The network has none of the :attr:`embedding_layer` candidates.
        """
        verdict, total = self._combine(batches, self._predict_with_embedding)
        if not verdict.n_chunks:
            raise AudioDecodeError("no chunk to embed (a song shorter than one chunk)")
        embedding = np.asarray(total / verdict.n_chunks, dtype=np.float32).reshape(-1)
        return SongEmbedding(probabilities=verdict.probabilities, embedding=embedding, n_chunks=verdict.n_chunks)

    def _combine(self, batches: Iterable[np.ndarray], predict) -> tuple[SongVerdict, object]:
        """A song's verdict from its batches of inputs, and the sum of their embeddings (0.0 when ``predict``,
        one of :meth:`predict_and_embed` and :meth:`_predict_with_embedding`, gives none)."""
        verdict, total = SongVerdict(len(self.classes)), 0.0
        for inputs in batches:
            probabilities, embeddings = predict(inputs)
            verdict.add(probabilities)
            if embeddings is not None:
                total = total + embeddings.sum(axis=0, dtype=np.float64)
        return verdict, total

    def _predict_with_embedding(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.novelty is not None:
            return self.predict_and_embed(inputs)
        probabilities = self.predict_chunks(inputs)
        if not self.embedding_layer:
            return probabilities, np.zeros((len(inputs), 0), np.float32)
        if self._embedder is None:
            network = KerasRunner(Path(self.model_dir) / ModelDir.KERAS).model
            candidates = (self.embedding_layer,) if isinstance(self.embedding_layer, str) else self.embedding_layer
            present = {layer.name for layer in network.layers}
            layer = next((name for name in candidates if name in present), None)
            if layer is None:
                raise ModelError(f"{self.model_dir}: the network has none of the layers {', '.join(candidates)} "
                                 "to embed songs with; refit the model")
            self._embedder = with_embedding(network, layer)  # rows: probabilities, then the embedding
        raw = np.asarray(self._embedder.predict(inputs, batch_size=chunks_per_batch(self.feature_config), verbose=0))
        return probabilities, raw[:, len(self.classes):]

    def explain_file(self, path: str | os.PathLike, *, genre: Optional[str] = None):
        """The song's occlusion map and the function that draws it (:mod:`genre_cnn.inference.occlusion`)."""
        return explain_song(self, path, genre=genre), plot_explanation

    def classify_file(self, path: str | os.PathLike) -> SongPrediction:
        """Classify one song; decoding problems become a :class:`SongPrediction` with ``error``."""
        try:
            verdict, embedding_sum = self._combine(self.network_inputs(path), self.predict_and_embed)
        except AudioDecodeError as exc:
            return SongPrediction(path=str(path), error=str(exc))
        novelty = None if self.novelty is None else float(self.novelty.score(embedding_sum / verdict.n_chunks)[0])
        return SongPrediction.of(path, self.classes, verdict.probabilities, n_chunks=verdict.n_chunks,
                                 min_confidence=self.min_confidence, novelty=novelty,
                                 max_novelty=None if self.novelty is None else self.novelty.threshold)


def load_classifier(
    model: Optional[str | os.PathLike] = None,
    *,
    models_root: str | os.PathLike = DEFAULT_MODELS_DIR,
    backend: str = "auto",
    min_confidence: Optional[float] = None,
) -> Classifier:
    """Open a model folder (default: the latest fit) as its kind's classifier: :func:`open_classifier`.

    Kept under this name, which earlier versions used for network kinds only.
    """
    return open_classifier(model, models_root=models_root, backend=backend, min_confidence=min_confidence)


def with_min_confidence(classifier, min_confidence: Optional[float]):
    """``classifier`` flagging verdicts below ``min_confidence`` as unsure (None: keep the model's threshold).

    Raises
    ------
    ConfigError
        ``min_confidence`` outside [0, 1].
    """
    if min_confidence is not None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ConfigError(f"min_confidence={min_confidence} must be a probability in [0, 1]",
                              parameter="min_confidence")
        classifier.min_confidence = float(min_confidence)
    return classifier


def open_classifier(
    model: Optional[str | os.PathLike] = None,
    *,
    models_root: str | os.PathLike = DEFAULT_MODELS_DIR,
    backend: str = "auto",
    min_confidence: Optional[float] = None,
) -> Classifier:
    """Open any model folder as its kind of :class:`Classifier`: the one factory for every model.

    The folder's ``config.json`` names its kind; the kind's classifier (:mod:`genre_cnn.kinds`)
    opens it. A kind whose folder holds a pickle (the scikit-learn baseline) is opened only from a
    folder named directly, never through ``models/latest`` or a link.

    Parameters
    ----------
    model : path-like, optional
        Model folder; default: the one ``models_root/latest`` names.
    models_root : path-like
    backend : {"auto", "litert", "keras"}
        What runs a network. ``"auto"`` uses the LiteRT export (``model.tflite``, starts in
        milliseconds, no TensorFlow) when present and ``ai-edge-litert`` is installed, else the
        Keras model (loaded in safe mode: no arbitrary code). Ignored by kinds without a network.
    min_confidence : float, optional
        Flag verdicts whose top probability is below this as unsure, instead of the threshold
        chosen when the model was fitted.

    Raises
    ------
    ModelError
        Missing or incomplete model folder, a kind this version does not open, or a config it
        cannot reproduce.
    """
    model_dir = resolve_model_dir(model, models_root=models_root)
    folder = ModelDir(model_dir)
    # (resolve_model_dir refused a kind holding a pickle reached through models/latest or a link)
    kind = kind_named(folder.kind(), where=str(folder / folder.CONFIG))
    return with_min_confidence(kind.classifier.open(model_dir, backend=backend), min_confidence)


def classify(
    paths: Iterable[str | os.PathLike],
    *,
    model: Optional[str | os.PathLike | GenreClassifier] = None,
    models_root: str | os.PathLike = DEFAULT_MODELS_DIR,
    backend: str = "auto",
    workers: Optional[int] = 1,
    min_confidence: Optional[float] = None,
) -> list[SongPrediction]:
    """Classify songs and folders of songs.

    Parameters
    ----------
    paths : iterable of path-like
        Audio files and/or folders (searched recursively for audio files).
    model : path-like or loaded classifier, optional
        Model folder of any kind, or an already opened classifier; default: the latest fit under
        ``models_root``.
    models_root : path-like
    backend : {"auto", "litert", "keras"}
        See :func:`open_classifier`.
    workers : int, optional
        Processes classifying files in parallel (``None``: one per CPU core). Used with the LiteRT
        backend; the Keras backend runs in this process.
    min_confidence : float, optional
        Flag verdicts whose top probability is below this as unsure (default: the model's threshold,
        chosen when it was fitted).

    Returns
    -------
    list of SongPrediction
        One per file, in order; unreadable files carry an ``error`` instead of probabilities.
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):  # a classifier already opened
        classifier = model if min_confidence is None else with_min_confidence(copy.copy(model), min_confidence)
    else:
        classifier = open_classifier(model, models_root=models_root, backend=backend, min_confidence=min_confidence)
    files = list(expand_paths(paths))
    return list(classify_files(files, classifier, workers=workers))


def classify_files(files: Sequence[Path], classifier, *, workers: Optional[int] = 1) -> Iterator[SongPrediction]:
    """Classify ``files`` with an open classifier, yielding each verdict in order as soon as it is known.

    Parameters
    ----------
    files : sequence of Path
    classifier : Classifier
        From :func:`open_classifier`.
    workers : int, optional
        Processes classifying files in parallel (``None``: one per CPU core), with the LiteRT
        backend; otherwise the files are classified in this process.

    Yields
    ------
    SongPrediction
    """
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers <= 1 or len(files) < 2 or classifier.backend != "litert":
        yield from (classifier.classify_file(path) for path in files)
        return
    with process_pool(min(workers, len(files)), initializer=_start_worker,
                      initargs=(classifier.model_dir, classifier.min_confidence)) as pool:
        yield from pool.map(_classify_in_worker, files, chunksize=max(1, min(64, len(files) // (4 * workers))))


_worker_classifier: Optional[Classifier] = None


def _start_worker(model_dir: Path, min_confidence: Optional[float]) -> None:
    global _worker_classifier
    with warnings.catch_warnings():  # the parent process has said what there was to say about the model
        warnings.simplefilter("ignore", GenreCnnWarning)
        _worker_classifier = open_classifier(model_dir, backend="litert")
    _worker_classifier.min_confidence = min_confidence


def _classify_in_worker(path: Path) -> SongPrediction:
    return _worker_classifier.classify_file(path)
