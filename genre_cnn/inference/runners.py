"""Run a saved model on log-mel chunks: LiteRT (fast start, no TensorFlow) or Keras."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np

from genre_cnn.errors import ModelError
from genre_cnn.models.store import ModelDir
from genre_cnn.runtime.backend import import_keras
from genre_cnn.runtime.native import native_stderr_silenced

__all__ = ["KerasRunner", "LiteRTRunner", "open_runner", "export_litert", "with_embedding", "LITERT_WEIGHTS"]

BACKENDS = ("auto", "litert", "keras")
#: How a LiteRT export stores the network's weights: ``"float32"`` as trained (the same numbers as Keras), or
#: ``"int8"`` (dynamic-range quantisation: 8-bit weights, float activations). Measured on the CNN
#: (benchmarks/RESULTS.md, 568 songs of three sets): int8 halves the network's CPU time per song, gives every
#: song the same top genre and every probability within 0.015 of float32; float16 weights gained no speed.
LITERT_WEIGHTS = ("float32", "int8")


class KerasRunner:
    """The Keras model, loaded in safe mode (no arbitrary code). Imports TensorFlow.

    With ``embedding_layer``, each output row is the genre probabilities followed by that layer's
    output (:func:`with_embedding`), as the model folder's ``model.tflite`` gives them.
    """

    name = "keras"

    def __init__(self, path: Path, *, embedding_layer: str | None = None) -> None:
        # lazy: defines Keras layers (imports TensorFlow); importing it registers them for loading
        from genre_cnn.models import layers  # noqa: F401

        keras = import_keras()
        try:
            self.model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as exc:  # Keras raises many types for broken archives
            raise ModelError(f"{path}: cannot be loaded ({_first_line(exc)}); refit the model") from None
        if embedding_layer is not None:
            self.model = with_embedding(self.model, embedding_layer)
        self.input_shape = tuple(self.model.input_shape[1:])
        self.n_outputs = int(self.model.output_shape[-1])

    def predict(self, features: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        return np.asarray(self.model.predict(features, batch_size=batch_size, verbose=0))


class LiteRTRunner:
    """The LiteRT (TensorFlow Lite) export, run with the ``ai-edge-litert`` interpreter."""

    name = "litert"

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            with native_stderr_silenced():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
                self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        except Exception as exc:  # the interpreter raises several types for a damaged flatbuffer
            raise ModelError(f"{path}: cannot be loaded ({_first_line(exc)}); refit or re-export the model") from None
        details = self._interpreter.get_input_details()[0]
        self._input = details["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self.input_shape = tuple(int(n) for n in details["shape_signature"][1:])
        self.n_outputs = int(self._interpreter.get_output_details()[0]["shape"][-1])
        self._batch = None

    def predict(self, features: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        features = np.ascontiguousarray(features, dtype=np.float32)
        outputs = []
        for start in range(0, len(features), batch_size):
            batch = features[start : start + batch_size]
            with native_stderr_silenced():
                if self._batch != len(batch):
                    self._interpreter.resize_tensor_input(self._input, batch.shape)
                    self._interpreter.allocate_tensors()
                    self._batch = len(batch)
                self._interpreter.set_tensor(self._input, batch)
                self._interpreter.invoke()
            outputs.append(self._interpreter.get_tensor(self._output).copy())
        return np.concatenate(outputs) if outputs else np.zeros((0, self.n_outputs), np.float32)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def litert_available() -> bool:
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return False
    return True


def open_runner(model_dir: Path, *, backend: str = "auto", embedding_layer: str | None = None):
    """Open the model of ``model_dir`` with ``backend`` ("auto": LiteRT when it can, else Keras).

    ``embedding_layer``: the model's novelty layer (config.json's ``"novelty"``), whose output follows the
    probabilities in each row (the folder's ``model.tflite`` was exported so; the Keras model is wrapped).
    """
    if backend not in BACKENDS:
        raise ModelError(f"backend={backend!r} must be one of {', '.join(BACKENDS)}")
    litert_file = model_dir / ModelDir.LITERT
    if backend == "litert" or (backend == "auto" and litert_file.is_file() and litert_available()):
        if not litert_file.is_file():
            raise ModelError(f"{model_dir}: {ModelDir.LITERT} is missing; run 'genre-cnn export --model {model_dir}'")
        if not litert_available():
            raise ModelError("the LiteRT backend needs the ai-edge-litert package: pip install ai-edge-litert")
        return LiteRTRunner(litert_file)
    return KerasRunner(model_dir / ModelDir.KERAS, embedding_layer=embedding_layer)


def with_embedding(model, novelty_or_layer):
    """The network whose output rows are its genre probabilities followed by its embedding.

    What the model folder's own ``model.tflite`` computes when the model has a novelty reference
    (:class:`~genre_cnn.models.novelty.Novelty`): one pass gives the genres and where the chunk lies among the
    training songs. A single output keeps the order of the two fixed (LiteRT orders several outputs as it likes).

    Parameters
    ----------
    model : keras.Model
    novelty_or_layer : Novelty, str or None
        The novelty reference (or its layer name); None returns ``model`` itself. The layer is one of the
        network's graph (the CNN's summary), or a nested network of a chain (musicnn's trunk), whose output
        is then taken from the same call that feeds the rest of the chain.
    """
    if novelty_or_layer is None:
        return model
    layer_name = novelty_or_layer if isinstance(novelty_or_layer, str) else novelty_or_layer.layer
    keras = import_keras()
    layer = model.get_layer(layer_name)
    if isinstance(layer, keras.Model):  # a nested network: its .output is its own graph's, so replay the chain
        inputs = keras.Input(shape=model.input_shape[1:])
        x, embedding = inputs, None
        for each in model.layers[1:]:
            x = each(x)
            if each is layer:
                embedding = x
        outputs = x
    else:
        inputs, outputs, embedding = model.input, model.output, layer.output
    embedding = keras.layers.Flatten(name="flat_embedding")(embedding)
    joined = keras.layers.Concatenate(name="genre_and_embedding", dtype="float32")([outputs, embedding])
    return keras.Model(inputs, joined, name=model.name)


def export_litert(model, path: Path, *, weights: str = "float32") -> None:
    """Write a Keras model as a LiteRT flatbuffer (its chatter on stdout is swallowed).

    Parameters
    ----------
    weights : {"float32", "int8"}
        See :data:`LITERT_WEIGHTS`.
    """
    if weights not in LITERT_WEIGHTS:
        raise ModelError(f"weights={weights!r} must be one of {', '.join(LITERT_WEIGHTS)}")
    options = {}
    if weights == "int8":
        # lazy: the converter's options; a Keras export imports TensorFlow anyway
        import tensorflow as tf

        options["optimizations"] = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights, float activations
    with contextlib.redirect_stdout(io.StringIO()), native_stderr_silenced():
        model.export(str(path), format="litert", **options)
    if not Path(path).is_file() or os.path.getsize(path) == 0:
        raise ModelError(f"{path}: the LiteRT export wrote nothing")
