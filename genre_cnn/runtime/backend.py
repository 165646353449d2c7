"""Import Keras (and TensorFlow) only when a command needs them, quietly."""

from __future__ import annotations

import contextlib
import os
import sys

from genre_cnn.errors import ConfigError
from genre_cnn.runtime.native import native_stderr_silenced

__all__ = ["import_keras", "describe_device", "replica_devices", "training_strategy", "precision_policy"]


def import_keras():
    """Return the ``keras`` module, importing TensorFlow with its start-up chatter silenced."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with native_stderr_silenced():
        import keras
        import tensorflow  # noqa: F401  (probes the GPU once, here)

        tensorflow.config.list_physical_devices("GPU")
        tensorflow.get_logger().setLevel("ERROR")  # no retracing advice meant for TensorFlow developers
    return keras


def describe_device() -> str:
    """Say where TensorFlow will train: the GPU(s) it sees, or the CPU."""
    import_keras()
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name", gpu.name))
        return f"GPU ({', '.join(names)})"
    return f"CPU ({os.cpu_count()} cores; TensorFlow sees no GPU)"


def replica_devices() -> list[str]:
    """The devices that hold a copy of the model while it trains: every GPU when there are several.

    Returns
    -------
    list of str
        TensorFlow device names (``/device:GPU:0``...); empty with one GPU or none, where training
        runs on the default device.
    """
    import_keras()
    import tensorflow as tf

    gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
    return gpus if len(gpus) > 1 else []


def training_strategy():
    """``tf.distribute.MirroredStrategy`` over :func:`replica_devices` when there are several, else the default.

    Each batch is split between the replicas and their gradients are combined; the saved model is
    the plain single-device network (tested with two logical CPU devices standing in for two
    GPUs). Training across machines is not offered: with Keras 3, ``MultiWorkerMirroredStrategy``
    fails on the first step (tried with two workers on 127.0.0.1; see benchmarks/RESULTS.md). What
    scales out is cross-validation: ``cv --engine dask`` trains the folds in parallel.

    Raises
    ------
    ConfigError
        ``GENRE_CNN_MULTIWORKER`` is set (it was documented by earlier versions).
    """
    import_keras()
    import tensorflow as tf

    if os.environ.get("GENRE_CNN_MULTIWORKER"):
        raise ConfigError("GENRE_CNN_MULTIWORKER: training across machines is not supported (Keras 3's "
                          "MultiWorkerMirroredStrategy fails); unset it, train on one machine, and spread "
                          "cross-validation folds with 'genre-cnn cv --engine dask --scheduler tcp://HOST:PORT'")
    devices = replica_devices()
    if devices:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


@contextlib.contextmanager
def precision_policy(mixed: bool):
    """Use Keras' ``mixed_float16`` policy inside the block (float32 weights, float16 maths)."""
    keras = import_keras()
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
