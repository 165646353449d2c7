"""Export a trained model for deployment: LiteRT, TensorFlow SavedModel or ONNX."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from genre_cnn.errors import ModelError
from genre_cnn.inference.runners import LITERT_WEIGHTS, KerasRunner, export_litert, with_embedding
from genre_cnn.kinds import kind_named
from genre_cnn.models.calibration import Calibration
from genre_cnn.models.registry import DEFAULT_MODELS_DIR, resolve_model_dir
from genre_cnn.models.store import ModelDir
from genre_cnn.runtime.backend import import_keras
from genre_cnn.runtime.native import native_stderr_silenced

__all__ = ["EXPORT_FORMATS", "export_model"]

#: format -> default name inside the model folder
EXPORT_FORMATS = {"litert": ModelDir.LITERT, "saved_model": "saved_model", "onnx": "model.onnx"}


def export_model(
    model: Optional[str | os.PathLike] = None,
    *,
    fmt: str = "litert",
    out: Optional[str | os.PathLike] = None,
    models_root: str | os.PathLike = DEFAULT_MODELS_DIR,
    weights: Optional[str] = None,
) -> Path:
    """Export the Keras model of a model folder, with its calibration (the export's probabilities are
    the calibrated ones ``classify`` gives per chunk).

    One exception: the model folder's own ``model.tflite`` (the default LiteRT target, the file
    ``classify`` runs and applies the temperature to) is written as the plain network, as ``fit``
    writes it, so re-exporting it never calibrates twice.

    Parameters
    ----------
    model : path-like, optional
        Model folder; default: the latest fit.
    fmt : {"litert", "saved_model", "onnx"}
    out : path-like, optional
        Target file (litert, onnx) or folder (saved_model); default: inside the model folder.
    models_root : path-like
    weights : {"float32", "int8"}, optional
        LiteRT only: how the export stores the weights (:data:`~genre_cnn.inference.runners.LITERT_WEIGHTS`);
        default: as ``fit`` writes the model kind's own ``model.tflite`` (the CNN: int8).

    Returns
    -------
    Path
        Where the export was written (complete: it is written under a temporary name first).

    Raises
    ------
    ModelError
        Unknown format or weights, weights for another format than litert, a missing model or one without a
        network, or a missing optional package (ONNX).
    """
    if fmt not in EXPORT_FORMATS:
        raise ModelError(f"format={fmt!r} must be one of {', '.join(EXPORT_FORMATS)}")
    if weights is not None and fmt != "litert":
        raise ModelError(f"weights={weights!r} applies to the litert format only (format={fmt!r} keeps float32)")
    if weights is not None and weights not in LITERT_WEIGHTS:
        raise ModelError(f"weights={weights!r} must be one of {', '.join(LITERT_WEIGHTS)}")
    model_dir = resolve_model_dir(model, models_root=models_root)
    if not (model_dir / ModelDir.KERAS).is_file():
        raise ModelError(f"{model_dir}: a {ModelDir(model_dir).kind()} model has no network ({ModelDir.KERAS}) to "
                         "export; it runs where genre-cnn is installed ('genre-cnn classify --model ...')")
    target = Path(out) if out is not None else model_dir / EXPORT_FORMATS[fmt]
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = {"litert": ".tflite", "onnx": ".onnx"}.get(fmt, "")  # Keras checks the ending
    temporary = target.parent / f".{target.name}.tmp-{os.getpid()}{suffix}"

    keras_model = KerasRunner(model_dir / ModelDir.KERAS).model
    runners_file = target.resolve() == (model_dir / ModelDir.LITERT).resolve()
    if runners_file:  # the folder's own model.tflite stays raw (classify applies the temperature) and gives the
        keras_model = with_embedding(keras_model, ModelDir(model_dir).read_novelty())  # embedding for novelty
    else:
        keras_model = with_calibration(keras_model, ModelDir(model_dir).read_calibration())
    import numpy as np

    keras_model(np.zeros((1, *keras_model.input_shape[1:]), np.float32))  # ONNX export wants a built call
    try:
        if fmt == "litert":
            export_litert(keras_model, temporary, weights=_fitted_weights(model_dir) if weights is None else weights)
        elif fmt == "saved_model":
            _quiet_export(keras_model, temporary, "tf_saved_model")
        else:
            try:
                _quiet_export(keras_model, temporary, "onnx")
            except ImportError as exc:
                raise ModelError(
                    f"ONNX export needs extra packages ({exc}); install them with: pip install 'genre-cnn[onnx]'"
                ) from None
        _replace(temporary, target)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
    return target


def _fitted_weights(model_dir: Path) -> str:
    """How ``fit`` writes the LiteRT file of the folder's kind (float32 for a kind ``fit`` does not train)."""
    trainer = kind_named(ModelDir(model_dir).kind()).trainer
    return "float32" if trainer is None else trainer.litert_weights


def with_calibration(keras_model, calibration: Calibration):
    """The network followed by its temperature (:class:`~genre_cnn.models.layers.TemperatureScaling`), so an
    export gives the calibrated probabilities ``classify`` gives; the network itself when ``T`` is 1."""
    if calibration.temperature == 1.0:
        return keras_model
    from genre_cnn.models.layers import TemperatureScaling  # lazy: defines Keras layers

    keras = import_keras()
    outputs = TemperatureScaling(calibration.temperature, name="temperature_scaling")(keras_model.output)
    return keras.Model(keras_model.input, outputs, name=keras_model.name)


def _quiet_export(keras_model, path: Path, fmt: str) -> None:
    import contextlib
    import io


    with contextlib.redirect_stdout(io.StringIO()), native_stderr_silenced():
        keras_model.export(str(path), format=fmt)


def _replace(temporary: Path, target: Path) -> None:
    if target.is_dir():
        shutil.rmtree(target)
    os.replace(temporary, target)
