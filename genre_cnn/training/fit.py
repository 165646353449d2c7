"""Train the CNN on a dataset's train songs and measure it honestly on its test songs."""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from genre_cnn.config import TrainConfig, write_json
from genre_cnn.data.dataset import DEFAULT_DATASET_DIR, Dataset, load_dataset
from genre_cnn.errors import ConfigError, DatasetError
from genre_cnn.inference.runners import export_litert, with_embedding
from genre_cnn.kinds import configured, recipe_named, trainer_for
from genre_cnn.models.calibration import UNCALIBRATED, Calibration
from genre_cnn.models.novelty import Novelty
from genre_cnn.models.registry import DEFAULT_MODELS_DIR, set_latest
from genre_cnn.models.store import MODEL_FOLDER, Metrics, ModelDir
from genre_cnn.monitoring import write_reference_profile
from genre_cnn.plots import plot_confusion, plot_history, plot_reliability
from genre_cnn.runtime.backend import describe_device, import_keras, replica_devices
from genre_cnn.runtime.files import atomic_directory, check_output_folder, exclusive_lock
from genre_cnn.training.calibration import MIN_CALIBRATION_SONGS, fit_temperature
from genre_cnn.training.metrics import evaluate_chunks
from genre_cnn.training.novelty import fit_novelty, song_embeddings
from genre_cnn.training.scratch import evaluation_batches
from genre_cnn.training.weights import class_weights
from genre_cnn.version import __version__

__all__ = [
    "FitResult", "TrainedModel", "fit", "train_model", "test_metrics", "chunk_probabilities",
    "compare_with_challengers",
]


@dataclasses.dataclass(frozen=True)
class FitResult:
    """Where :func:`fit` saved the model and what it measured on the test songs."""

    model_dir: Path
    metrics: Metrics
    device: str


def fit(
    data_dir: str | os.PathLike = DEFAULT_DATASET_DIR,
    *,
    config: TrainConfig = TrainConfig(),
    name: Optional[str] = None,
    model_dir: Optional[str | os.PathLike] = None,
    models_root: str | os.PathLike = DEFAULT_MODELS_DIR,
    tensorboard: Optional[str | os.PathLike] = None,
    checkpoint: Optional[str | os.PathLike] = None,
    compare: bool = False,
    verbose: int = 2,
    log: Callable[[str], None] = print,
) -> FitResult:
    """Train a model on the dataset's train songs and save it with its plots and test metrics.

    The validation songs are measured after every epoch (the history); the saved weights are the
    last epoch's, or with ``config.keep_epoch="best"`` those of the epoch with the lowest validation
    loss. The test songs are never seen during training: their chunk- and
    song-level accuracy go to ``metrics.json``.

    Parameters
    ----------
    data_dir : path-like
        Dataset written by :func:`genre_cnn.build_dataset`.
    config : TrainConfig
        Epochs, batch size, learning rate and seed.
    name : str, optional
        Model name; the model goes to ``models_root/name``. Default: ``fit-<date>-<time>``.
    model_dir : path-like, optional
        Exact folder for the model (overrides ``name`` and ``models_root``).
    models_root : path-like
        Folder of models; ``models_root/latest`` is updated to point at the new model when the
        model lives there (an explicit ``model_dir`` elsewhere leaves ``latest`` alone).
    tensorboard : path-like, optional
        Write TensorBoard logs there.
    checkpoint : path-like, optional
        A ``.keras`` file rewritten with the model of the epoch to keep so far (every epoch with
        ``keep_epoch="last"``, every improving one with ``"best"``), for long runs that might be
        interrupted.
    compare : bool
        After fitting, also train the kind's challengers (for a CNN: the pretrained musicnn backbone's
        head and the scikit-learn baseline) on the same songs and measure them on the same test songs
        (:func:`compare_with_challengers`): ``metrics.compared`` says whether another recipe would have
        done better, and ``genre-cnn fit`` prints it.
    verbose : int
        Keras verbosity (0 silent, 1 progress bar, 2 one line per epoch).
    log : callable
        Receives progress messages.

    Returns
    -------
    FitResult
    """
    if model_dir is None:
        name = name or datetime.datetime.now().strftime("fit-%Y%m%d-%H%M%S")
        model_dir = Path(models_root) / name
    config = configured(config)  # the kind's options checked, and saved in full
    model_dir = check_output_folder(model_dir, kind=MODEL_FOLDER, inputs=[data_dir])
    trainer = trainer_for(config)
    litert_weights = trainer.litert_weights  # asked before training: a trainer without it fails now, not at the end
    chunks = load_dataset(data_dir)
    dataset = trainer.training_data(chunks, log=log)
    train_rows, val_rows, test_rows = (dataset.indices(s) for s in ("train", "val", "test"))
    trained = train_model(dataset, train_rows=train_rows, val_rows=val_rows, config=config,
                          tensorboard=tensorboard, checkpoint=checkpoint, verbose=verbose, log=log, novelty=True)
    model, history, kept, timer = trained.model, trained.history, trained.kept, trained.timer
    metrics = Metrics.from_dict({
        "best_epoch": kept.kept_epoch + 1,
        "epochs": config.epochs,
        "epochs_run": len(timer.seconds),
        "selected_by": kept.selected_by,
        **test_metrics(model, dataset, test_rows, batch_size=config.batch_size, calibration=trained.calibration),
    })
    challengers = trainer.challengers if compare else ()
    if challengers and len(test_rows):
        metrics = dataclasses.replace(metrics, compared=compare_with_challengers(chunks, challengers=challengers,
                                                                                 config=config, log=log))
    device = trained.device


    with exclusive_lock(model_dir, command="genre-cnn fit"), \
            atomic_directory(model_dir, kind=MODEL_FOLDER, inputs=[data_dir]) as tmp:
        saved = ModelDir(tmp)
        model.save(saved / saved.KERAS)
        trainer.save_front_end(saved, dataset)
        export_litert(with_embedding(model, trained.novelty), saved / saved.LITERT, weights=litert_weights)
        saved.write_novelty(trained.novelty)
        saved.write_config(
            kind=trainer.kind,
            classes=dataset.classes,
            package_version=__version__,
            feature_config=dataset.feature_config.to_dict(),
            train_config=config.to_dict(),
            dataset={"path": str(dataset.path), "fingerprint": dataset.fingerprint},
            device=device,
            calibration=trained.calibration.to_dict(),
            novelty=None if trained.novelty is None else trained.novelty.to_dict(),
            created=datetime.datetime.now().isoformat(timespec="seconds"),
        )
        saved.write_metrics(metrics)
        write_json(saved / saved.HISTORY, {**{k: [float(v) for v in vs] for k, vs in history.items()},
                                           "epoch_seconds": [round(s, 3) for s in timer.seconds]})
        _write_history_csv(history, timer.seconds, saved / saved.HISTORY_CSV)
        plot_history(history, saved / saved.HISTORY_PLOT, kept_epoch=kept.kept_epoch)
        if metrics.test_songs:
            plot_confusion(dataset.classes, saved / saved.CONFUSION_PLOT, songs=metrics.confusion_songs,
                           song_accuracy=metrics.song_accuracy, chunks=metrics.confusion_chunks,
                           chunk_accuracy=metrics.chunk_accuracy)
            plot_reliability(metrics, saved / saved.RELIABILITY_PLOT)
        write_reference_profile(tmp, chunks, inputs=dataset, log=log)  # for genre-cnn monitor
    if model_dir.resolve().parent == Path(models_root).resolve():
        set_latest(model_dir, models_root=models_root)
    return FitResult(model_dir=model_dir, metrics=metrics, device=device)


def compare_with_challengers(dataset: Dataset, *, challengers, config: TrainConfig,
                              log: Callable[[str], None] = print) -> dict:
    """Train each recipe named in ``challengers`` on the dataset's training songs and measure it on its test songs.

    Each challenger gets the same songs and splits, and the shared options of ``config`` (epochs,
    seed, refit); only the recipe differs (:func:`genre_cnn.kinds.recipe_named`, its ``challenge``).

    Returns
    -------
    dict
        ``{name: {"song_accuracy", "test_songs", "command"}}`` per challenger, or ``{name: {"error": why}}``
        for one that could not be trained (e.g. the songs' audio moved since the dataset was built).
    """
    compared = {}
    for name in challengers:
        compared.update(recipe_named(name).challenge(dataset, config=config, log=log))
    return compared


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """What :func:`train_model` returns: the model (the kept epoch's weights) and its training record."""

    model: object
    history: dict
    kept: object
    timer: object
    device: str
    calibration: Calibration = UNCALIBRATED
    refit: bool = False  #: the model was trained again on the training and validation songs (TrainConfig.refit)
    novelty: Optional[Novelty] = None  #: the songs it learned from, to flag unfamiliar songs (None: this kind has none)


def train_model(
    dataset: Dataset,
    *,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    config: TrainConfig = TrainConfig(),
    tensorboard: Optional[str | os.PathLike] = None,
    checkpoint: Optional[str | os.PathLike] = None,
    verbose: int = 2,
    log: Callable[[str], None] = print,
    novelty: bool = False,
) -> TrainedModel:
    """Train a fresh model on the chunks ``train_rows``, measured on ``val_rows`` after every epoch.

    The training core shared by :func:`fit` and :func:`genre_cnn.training.cv.cross_validate`: it sees
    only the rows it is given. A kind's augmentations (the CNN's ``augment`` option) touch the training batches
    only; validation batches are served as stored.

    ``novelty``: also fit the model's novelty reference (:func:`genre_cnn.training.novelty.fit_novelty`): a pass
    over the learned-from chunks that only a saved model needs (``fit``), not a cv fold or a comparison.

    Returns
    -------
    TrainedModel
        The model carries no augmentation layer (it is the plain inference model).
    """
    _check_trainable(dataset, train_rows)
    config = configured(config)
    trainer = trainer_for(config)
    keras = import_keras()
    keras.utils.set_random_seed(config.seed)
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    device = describe_device()
    copies = len(replica_devices()) if trainer.replicated else 0
    replicas = f", {copies} replicas" if copies > 1 else ""
    unit = trainer.unit
    log(f"Training on {device}{replicas}{trainer.describe(config)}: {len(train_rows)} train {unit}, "
        f"{len(val_rows)} validation {unit}, {len(dataset.classes)} genres")

    # lazy: Keras callbacks: importing it imports TensorFlow
    from genre_cnn.training.callbacks import EpochTimes, KeptEpoch

    n_classes = len(dataset.classes)
    monitor = "val_loss" if len(val_rows) else "loss"
    kept = KeptEpoch(monitor=monitor, keep=config.keep_epoch)
    timer = EpochTimes()
    weights = class_weights(dataset.labels[train_rows], n_classes)
    if config.class_weight == "none" and weights.max() / weights.min() > 1.5:
        log(f"Note: the largest genre has {weights.max() / weights.min():.1f}x the training {unit} of the "
            "smallest; consider balanced class weights (--class-weight balanced)")
    callbacks = [kept, timer, *_optional_callbacks(keras, config, monitor, tensorboard)]
    if checkpoint is not None and Path(checkpoint).suffix != ".keras":
        raise ConfigError(f"checkpoint={checkpoint}: the file name must end in .keras", parameter="checkpoint")
    refitting = config.refit and len(val_rows) > 0
    model, history = trainer.train(dataset, train_rows=train_rows, val_rows=val_rows, config=config, kept=kept,
                                  callbacks=callbacks, checkpoint=checkpoint, verbose=verbose, log=log)
    calibration = fit_temperature(chunk_probabilities(model, dataset, val_rows, batch_size=config.batch_size),
                                  labels=dataset.labels[val_rows], songs=dataset.songs[val_rows])
    if calibration.calibrated:
        log(f"Calibration: temperature {calibration.temperature:.2f}, unsure below {calibration.min_confidence:.2f}, "
            f"fitted on {calibration.songs} validation songs")
    else:
        log(f"Calibration: none ({len(set(dataset.songs[val_rows]))} validation songs, fewer than "
            f"{MIN_CALIBRATION_SONGS}); probabilities are the network's own")
    learned_rows = train_rows
    if refitting:
        learned_rows = np.sort(np.concatenate([train_rows, val_rows]))
        model = _refit(trainer, dataset, learned_rows, config=config,
                       epochs=kept.kept_epoch + 1, checkpoint=checkpoint, verbose=verbose, log=log)
    layer = trainer.embedding_layer(model, config) if novelty else None
    reference = None if layer is None else fit_novelty(
        song_embeddings(model, dataset, learned_rows, layer=layer, batch_size=config.batch_size), layer=layer)
    if reference is not None:
        log(f"Novelty: songs farther than {reference.threshold:.2f}x the training songs' spacing are flagged "
            f"unfamiliar (chosen on {reference.songs} {reference.fitted_on})")
    return TrainedModel(model=model, history=history, kept=kept, timer=timer, device=device, calibration=calibration,
                        refit=refitting, novelty=reference)


def _refit(trainer, dataset: Dataset, rows: np.ndarray, *, config: TrainConfig, epochs: int,
           checkpoint: Optional[str | os.PathLike], verbose: int, log: Callable[[str], None]):
    """Train again, from the same start (seed), on ``rows`` (training + validation chunks) for ``epochs`` epochs.

    Without validation songs there is nothing to watch: no early stopping, no learning-rate schedule
    (``patience`` and ``reduce_lr`` apply to the first training only). ``checkpoint`` is rewritten every epoch.
    """
    # lazy: Keras callbacks: importing it imports TensorFlow
    from genre_cnn.training.callbacks import EpochTimes, KeptEpoch

    keras = import_keras()
    log(f"Refit: training again on the training and validation songs ({len(set(dataset.songs[rows]))} songs) "
        f"for {epochs} epoch(s); this is the model saved")
    keras.utils.set_random_seed(config.seed)
    last, timer = KeptEpoch(monitor="loss", keep="last"), EpochTimes()
    model, _ = trainer.train(dataset, train_rows=rows, val_rows=rows[:0],
                             config=dataclasses.replace(config, epochs=epochs, patience=None, reduce_lr=False),
                             kept=last, callbacks=[last, timer], checkpoint=checkpoint, verbose=verbose, log=log)
    log(f"Refit: {sum(timer.seconds):.0f} s")
    return model


def _optional_callbacks(keras, config: TrainConfig, monitor: str, tensorboard) -> list:
    callbacks = []
    if config.patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=config.patience,
                                                       restore_best_weights=config.keep_epoch == "best"))
    if config.reduce_lr:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=0.5, patience=max(1, (config.patience or 4) // 2), min_lr=1e-6))
    if tensorboard is not None:
        try:
            import tensorboard as _  # noqa: F401  (tf.summary needs it)
        except ImportError:
            raise ConfigError(f"tensorboard={tensorboard}: needs TensorBoard: pip install 'genre-cnn[tensorboard]'",
                              parameter="tensorboard") from None
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(tensorboard)))
    return callbacks


def _check_trainable(dataset: Dataset, train_rows: np.ndarray) -> None:
    if len(train_rows) == 0:
        raise DatasetError(f"{dataset.path}: the dataset has no training songs; rebuild it with smaller fractions")
    present = set(dataset.labels[train_rows].tolist())
    missing = [name for i, name in enumerate(dataset.classes) if i not in present]
    if missing:
        raise DatasetError(
            f"{dataset.path}: no training songs for genre(s) {missing}; add songs and rebuild the dataset"
        )


def chunk_probabilities(model, dataset: Dataset, rows: np.ndarray, *, batch_size: int = 32) -> np.ndarray:
    """The network's own (uncalibrated) probabilities of the chunks ``rows``, as stored (never augmented).

    Returns
    -------
    np.ndarray [shape=(len(rows), n_classes)]
    """
    if len(rows) == 0:
        return np.zeros((0, len(dataset.classes)), dtype=np.float32)
    return model.predict(evaluation_batches(dataset, rows, batch_size=batch_size), verbose=0)


def test_metrics(model, dataset: Dataset, test_rows: np.ndarray, *, batch_size: int = 32,
                 calibration: Calibration = UNCALIBRATED) -> dict:
    """Chunk- and song-level metrics of ``model`` (with its ``calibration``) on the chunks ``test_rows``."""
    if len(test_rows) == 0:
        return {"test_songs": 0, "test_chunks": 0, "chunk_accuracy": None, "song_accuracy": None,
                "note": "no test songs (the dataset was built with --test-fraction 0)"}
    return evaluate_chunks(
        chunk_probabilities(model, dataset, test_rows, batch_size=batch_size),
        labels=dataset.labels[test_rows],
        songs=dataset.songs[test_rows],
        classes=dataset.classes,
        calibration=calibration,
    )


def _write_history_csv(history: dict, seconds: list, path: Path) -> None:
    """One row per epoch: epoch, seconds and every logged metric (like Keras' CSVLogger)."""
    import csv

    keys = sorted(history)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "seconds", *keys])
        for epoch in range(len(seconds)):
            writer.writerow([epoch + 1, f"{seconds[epoch]:.3f}", *(f"{float(history[k][epoch]):.6g}" for k in keys)])
