"""The CNN from scratch: log-mel chunks in, randomly cropped and augmented batches, RMSprop."""

from __future__ import annotations

from typing import Callable

import numpy as np

from genre_cnn.config import TrainConfig
from genre_cnn.data.arrays import RowReader
from genre_cnn.data.dataset import Dataset
from genre_cnn.errors import DatasetError
from genre_cnn.kinds import options_of
from genre_cnn.models.cnn import WIDE_LAYER, build_model, set_summary_statistics, summary_network
from genre_cnn.runtime.backend import import_keras, precision_policy, training_strategy
from genre_cnn.signal.logmel import mel_filterbank
from genre_cnn.training.augment import SIGNAL_AUGMENTATIONS, ChunkAugmenter
from genre_cnn.training.distill import distillation_loss, teacher_targets, true_label_accuracy
from genre_cnn.training.weights import class_weights

__all__ = ["train_scratch", "training_batches", "evaluation_batches", "band_statistics", "fit_wide_path"]

#: Inverse regularisation strength of the logistic regression that starts the wide path (scikit-learn's
#: ``C``). The regression alone, 5 folds x 2 fold seeds, C = 0.1 / 0.03 / 0.01: real-genres (by artist)
#: 0.649 / 0.658 / 0.663, dev-music 0.773 / 0.780 / 0.787, demo 0.882 / 0.868 / - ; the whole wide-headed
#: network on the demo (3 seeds): C = 0.03 0.841, C = 0.01 0.871 (benchmarks/RESULTS.md).
WIDE_C = 0.01
#: Whether training may change the wide path after the regression set it. Frozen, the convolutions
#: learn only what the regression misses, and they cannot unlearn what it generalises. Demo, 3 seeds,
#: 5 folds, C = 0.01: frozen 0.906, trained 0.871 (C = 0.03, trained: 0.841); dev-music seed 0,
#: frozen 0.761, trained 0.783 (C = 0.03) (benchmarks/RESULTS.md).
WIDE_TRAINABLE = False
#: The logistic regression learns from at most this many training chunks (drawn with the seed).
WIDE_MAX_CHUNKS = 20_000


def train_scratch(dataset: Dataset, *, train_rows: np.ndarray, val_rows: np.ndarray, config: TrainConfig, kept,
                  callbacks: list, checkpoint=None, verbose: int = 2, log: Callable[[str], None] = print):
    """Fit a fresh CNN (:func:`genre_cnn.models.cnn.build_model`) on the chunks ``train_rows``.

    With a ``teacher`` among the options the targets are the true genre and the teacher's softened
    probabilities (:mod:`genre_cnn.training.distill`); SpecAugment and the teacher's loss live in a
    training-only wrapper, so the returned model stays the plain inference network.

    Parameters
    ----------
    config : TrainConfig
        The shared options, and the CNN's own (:class:`genre_cnn.kinds.cnn.CnnOptions`).
    kept : genre_cnn.training.callbacks.KeptEpoch
        Among ``callbacks``: its epoch's weights are restored before returning.

    Returns
    -------
    model : keras.Model
        The float32 inference network with the kept epoch's weights.
    history : dict
    """
    # lazy: defines Keras layers: importing it imports TensorFlow
    from genre_cnn.models.layers import SpecAugment

    # lazy: Keras callbacks: importing it imports TensorFlow
    from genre_cnn.training.callbacks import BestCheckpoint

    keras = import_keras()
    n_classes = len(dataset.classes)
    options = options_of(config)

    mixup = "mixup" in options.augment
    one_hot = mixup or options.teacher is not None
    soft_targets = None
    if options.teacher is not None:
        soft_targets = teacher_targets(dataset, train_rows, temperature=options.temperature, seed=config.seed,
                                       log=log)
        keras.utils.set_random_seed(config.seed)  # the student starts the same with or without a teacher
    mean, variance = band_statistics(dataset.features, train_rows)
    strategy = training_strategy()
    replicas = strategy.num_replicas_in_sync
    with precision_policy(options.mixed_precision), strategy.scope():
        model = build_model(dataset.feature_config.input_shape, n_classes, mel_mean=mean, mel_variance=variance,
                            head=options.head)
        if options.head == "wide":
            fit_wide_path(model, dataset, train_rows, seed=config.seed, balanced=config.class_weight == "balanced",
                          log=log)
            model.get_layer(WIDE_LAYER).trainable = WIDE_TRAINABLE
        trainee = model
        if "specaugment" in options.augment or options.teacher:  # a training-only wrapper: the saved model stays plain
            inputs = keras.Input(shape=dataset.feature_config.input_shape, name="log_mel")
            masked = SpecAugment(mean, seed=config.seed, name="specaugment")(inputs) \
                if "specaugment" in options.augment else inputs
            trainee = keras.Model(inputs, model(masked), name="genre_cnn_training")
        optimizers = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}
        if options.teacher is not None:
            loss = distillation_loss(n_classes, temperature=options.temperature, weight=options.distill_weight)
            metrics = [true_label_accuracy(n_classes)]
        else:
            loss = "categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy"
            metrics = ["accuracy"]
        trainee.compile(optimizer=optimizers[config.optimizer](learning_rate=config.learning_rate), loss=loss,
                        metrics=metrics)
    train_data = training_batches(dataset, train_rows, config, soft_targets=soft_targets, devices=replicas)
    val_data = evaluation_batches(dataset, val_rows, batch_size=config.batch_size, one_hot=one_hot,
                                  teacher=options.teacher is not None, devices=replicas) if len(val_rows) else None
    if checkpoint is not None:
        callbacks.append(BestCheckpoint(checkpoint, model=model, monitor=kept.monitor, keep=config.keep_epoch))
    history = trainee.fit(
        train_data, validation_data=val_data, epochs=config.epochs, callbacks=callbacks, verbose=verbose,
        class_weight=dict(enumerate(class_weights(dataset.labels[train_rows], n_classes).tolist()))
        if config.class_weight == "balanced" else None,
    )
    kept.restore(trainee)
    if options.mixed_precision or replicas > 1:  # save, test and export a plain float32 single-device twin
        with precision_policy(False):
            twin = build_model(dataset.feature_config.input_shape, n_classes, mel_mean=mean, mel_variance=variance,
                               head=options.head)
        twin.set_weights(model.get_weights())
        model = twin
    return model, history.history


def training_batches(dataset: Dataset, rows: np.ndarray, config: TrainConfig, *, soft_targets=None,
                     devices: int = 1):
    """The shuffled, randomly cropped and augmented (per ``config``'s CNN options) batches that train on the
    chunks ``rows``.

    ``soft_targets`` (a teacher's probabilities per chunk) are served after the one-hot labels;
    ``devices``: how many devices share each batch (see :class:`genre_cnn.training.batches.ChunkBatches`).

    Returns
    -------
    genre_cnn.training.batches.ChunkBatches
    """
    # lazy: a Keras PyDataset: importing it imports TensorFlow
    from genre_cnn.training.batches import ChunkBatches

    options = options_of(config)
    augmenter = None
    if any(name in SIGNAL_AUGMENTATIONS for name in options.augment):
        augmenter = ChunkAugmenter(dataset.feature_config, options, filterbank=mel_filterbank(dataset.feature_config))
    mixup = "mixup" in options.augment
    feature_config = dataset.feature_config
    crop = options.random_crop and feature_config.hop_samples <= feature_config.chunk_samples
    return ChunkBatches(
        features=dataset.features, labels=dataset.labels, rows=rows, batch_size=config.batch_size,
        shuffle=True, seed=config.seed, augmenter=augmenter, repeats=options.crops_per_chunk if crop else 1,
        next_rows=dataset.next_rows() if augmenter is not None or crop or soft_targets is not None else None,
        n_classes=len(dataset.classes) if mixup or soft_targets is not None else None,
        mixup_alpha=options.mixup_alpha if mixup else None,
        crop_hop_frames=round(feature_config.hop_samples / feature_config.hop_length) if crop else None,
        soft_targets=soft_targets, devices=devices,
    )


def evaluation_batches(dataset: Dataset, rows: np.ndarray, *, batch_size: int, one_hot: bool = False,
                       teacher: bool = False, devices: int = 1):
    """Batches of the chunks ``rows`` exactly as stored, in order: never augmented.

    Labels are one-hot with ``one_hot`` (when training with mixup or a teacher the loss expects them
    so); with ``teacher`` they are one-hot twice (the true label stands in for the teacher on held-out
    songs). ``devices`` as for :func:`training_batches` (validation while training on several devices;
    predictions keep the default, one row per chunk).
    """
    # lazy: a Keras PyDataset: importing it imports TensorFlow
    from genre_cnn.training.batches import ChunkBatches

    n_classes = len(dataset.classes)
    return ChunkBatches(
        features=dataset.features, labels=dataset.labels, rows=rows, batch_size=batch_size,
        n_classes=n_classes if one_hot or teacher else None,
        soft_targets=np.eye(n_classes, dtype=np.float32)[dataset.labels] if teacher else None,
        devices=devices,
    )


def fit_wide_path(model, dataset: Dataset, rows: np.ndarray, *, seed: int = 0, balanced: bool = False,
                  log: Callable[[str], None] = print) -> float:
    """Start the wide path where a logistic regression on the training chunks' spectral summaries ends.

    Sets the standardisation of the summary to the training chunks' mean and variance, fits a
    multinomial logistic regression (``C`` = :data:`WIDE_C`) on the standardised summaries of up to
    :data:`WIDE_MAX_CHUNKS` training chunks, and copies its weights into the wide layer. The
    convolutions' logits start at zero, so before its first step the network *is* that regression.

    Parameters
    ----------
    model : keras.Model
        Built by :func:`genre_cnn.models.cnn.build_model` with ``head="wide"``; changed in place.
    dataset : Dataset
    rows : np.ndarray
        The training chunks.
    seed : int
        Seed of the draw of chunks (when there are more than :data:`WIDE_MAX_CHUNKS`).
    balanced : bool
        Weigh chunks inversely to their genre's size, as ``class_weight="balanced"`` training does.
    log : callable

    Returns
    -------
    float
        The regression's accuracy on those training chunks.

    Raises
    ------
    DatasetError
        The training chunks hold fewer than two genres.
    """
    from sklearn.linear_model import LogisticRegression

    rows = np.sort(rows)
    if len(rows) > WIDE_MAX_CHUNKS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, WIDE_MAX_CHUNKS, replace=False))
    labels = dataset.labels[rows]
    if len(np.unique(labels)) < 2:
        raise DatasetError(f"{dataset.path}: the training songs hold {len(np.unique(labels))} genre(s); "
                           "a classifier needs at least two: add songs of other genres")
    read, trunk = RowReader(dataset.features), summary_network(model)
    summaries = np.concatenate([trunk.predict(read(rows[start : start + 1024]), batch_size=256, verbose=0)
                                for start in range(0, len(rows), 1024)]).astype(np.float32)
    mean = summaries.mean(axis=0, dtype=np.float64)
    variance = np.maximum(summaries.var(axis=0, dtype=np.float64), 1e-6)
    set_summary_statistics(model, mean, variance)
    standardised = ((summaries - mean) / np.sqrt(variance + 1e-6)).astype(np.float32)
    regression = LogisticRegression(C=WIDE_C, max_iter=1000, random_state=seed,
                                    class_weight="balanced" if balanced else None).fit(standardised, labels)
    n_classes = len(dataset.classes)
    kernel = np.zeros((standardised.shape[1], n_classes), dtype=np.float32)
    bias = np.full(n_classes, -10.0, dtype=np.float32)  # a genre without training chunks: never predicted
    if len(regression.classes_) == 2:  # scikit-learn keeps one set of weights for two classes
        coef = np.concatenate([-regression.coef_ / 2, regression.coef_ / 2])
        intercept = np.concatenate([-regression.intercept_ / 2, regression.intercept_ / 2])
    else:
        coef, intercept = regression.coef_, regression.intercept_
    kernel[:, regression.classes_] = coef.T
    bias[regression.classes_] = intercept
    model.get_layer(WIDE_LAYER).set_weights([kernel, bias])
    accuracy = float(regression.score(standardised, labels))
    log(f"Wide path: logistic regression on {len(rows)} chunks' spectral summaries, training accuracy {accuracy:.3f}")
    return accuracy


def band_statistics(features: np.ndarray, rows: np.ndarray, *, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of each mel band over the chunks ``rows``, read block by block.

    Returns
    -------
    mean, variance : np.ndarray [shape=(n_mels,), dtype=float64]
    """
    read = RowReader(features)
    total = np.zeros(features.shape[1])
    total_sq = np.zeros(features.shape[1])
    count = 0
    for start in range(0, len(rows), block):
        chunk = read(np.sort(rows[start : start + block])).astype(np.float64)
        total += chunk.sum(axis=(0, 2))
        total_sq += np.square(chunk).sum(axis=(0, 2))
        count += chunk.shape[0] * chunk.shape[2]
    mean = total / count
    variance = np.maximum(total_sq / count - mean**2, 1e-6)
    return mean, variance
