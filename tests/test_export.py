"""Exports for deployment give the same (calibrated) probabilities as the classifier."""

import numpy as np
import pytest
from click.testing import CliRunner

from genre_cnn.cli import main
from genre_cnn.data.dataset import load_dataset
from genre_cnn.errors import ModelError
from genre_cnn.inference.classifier import classify, load_classifier
from genre_cnn.inference.export import export_model
from genre_cnn.inference.runners import LiteRTRunner


@pytest.fixture
def chunks(trained):
    return np.asarray(load_dataset(trained["dataset"]).features[:5])


@pytest.fixture
def expected(trained, chunks):
    return load_classifier(trained["result"].model_dir, backend="keras").predict_chunks(chunks)


def test_litert(trained, tmp_path, chunks, expected):
    result = CliRunner().invoke(main, ["export", "--model", str(trained["result"].model_dir), "--format", "litert",
                                       "--out", str(tmp_path / "genre.tflite")])
    assert result.exit_code == 0 and result.output == f"Exported litert to {tmp_path / 'genre.tflite'}\n"
    np.testing.assert_allclose(LiteRTRunner(tmp_path / "genre.tflite").predict(chunks), expected, atol=1e-5)


def test_saved_model(trained, tmp_path, chunks, expected):
    import tensorflow as tf

    path = export_model(trained["result"].model_dir, fmt="saved_model", out=tmp_path / "serving" / "1")
    served = tf.saved_model.load(str(path))
    np.testing.assert_allclose(served.serve(tf.constant(chunks)).numpy(), expected, atol=1e-5)


def test_onnx(trained, tmp_path, chunks, expected):
    onnxruntime = pytest.importorskip("onnxruntime")
    path = export_model(trained["result"].model_dir, fmt="onnx", out=tmp_path / "genre.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    [output] = session.run(None, {session.get_inputs()[0].name: chunks})
    np.testing.assert_allclose(output, expected, atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_export_of_a_missing_model(tmp_path):
    with pytest.raises(ModelError, match=r"No model at .*nothing. Run 'genre-cnn fit' first"):
        export_model(tmp_path / "nothing", fmt="litert")


def test_parallel_classify_equals_serial(trained):
    serial = classify([trained["tracks"]], model=trained["result"].model_dir, workers=1)
    parallel = classify([trained["tracks"]], model=trained["result"].model_dir, workers=2)
    assert len(serial) == 15
    assert [p.path for p in serial] == [p.path for p in parallel]
    for a, b in zip(serial, parallel):
        np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-6)


def test_exports_carry_the_temperature_but_the_model_folders_own_litert_file_stays_raw(trained, tmp_path, chunks):
    import shutil

    from genre_cnn.models.store import ModelDir

    model_dir = tmp_path / "model"
    shutil.copytree(trained["result"].model_dir, model_dir)
    calibration = ModelDir(model_dir).read_calibration()
    assert calibration.temperature != 1.0
    raw = LiteRTRunner(model_dir / "model.tflite").predict(chunks)
    elsewhere = export_model(model_dir, fmt="litert", out=tmp_path / "deploy.tflite")
    np.testing.assert_allclose(LiteRTRunner(elsewhere).predict(chunks), calibration.apply(raw), atol=1e-5)

    song = trained["tracks"] / "tones" / "tones_0.mp3"
    before = classify([song], model=model_dir, backend="litert")[0].probabilities
    assert export_model(model_dir, fmt="litert") == model_dir / "model.tflite"  # re-export in place
    np.testing.assert_allclose(LiteRTRunner(model_dir / "model.tflite").predict(chunks), raw, atol=1e-5)
    after = classify([song], model=model_dir, backend="litert")[0].probabilities
    for genre in before:  # calibrated once, as before
        assert after[genre] == pytest.approx(before[genre], abs=1e-5)
