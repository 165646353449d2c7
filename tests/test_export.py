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
                                       "--weights", "float32", "--out", str(tmp_path / "genre.tflite")])
    assert result.exit_code == 0 and result.output == f"Exported litert to {tmp_path / 'genre.tflite'}\n"
    np.testing.assert_allclose(LiteRTRunner(tmp_path / "genre.tflite").predict(chunks), expected, atol=1e-5)


def test_int8_weights_take_a_third_of_the_file_and_keep_the_verdicts(tmp_path):
    """What fit writes for a CNN (dynamic-range int8 weights) against float32, on a network of the default size
    with random weights (measured on real songs in benchmarks/RESULTS.md: the same top genre on all 568 songs
    of three sets, probabilities within 0.015, up to half the network's CPU time, depending on the CPU)."""
    from genre_cnn.config import FeatureConfig
    from genre_cnn.inference.runners import export_litert
    from genre_cnn.models.cnn import build_model

    config = FeatureConfig()
    model = build_model(config.input_shape, 4, mel_mean=np.full(config.n_mels, -40.0),
                        mel_variance=np.full(config.n_mels, 400.0))
    rng = np.random.default_rng(0)
    deep = model.get_layer("deep_logits")  # built to add nothing: give the convolutions a say
    deep.set_weights([rng.normal(scale=0.3, size=w.shape).astype(np.float32) for w in deep.get_weights()])
    inputs = rng.normal(-40.0, 15.0, size=(8, *config.input_shape)).astype(np.float32)
    export_litert(model, tmp_path / "float32.tflite", weights="float32")
    export_litert(model, tmp_path / "int8.tflite", weights="int8")
    assert (tmp_path / "int8.tflite").stat().st_size < 0.4 * (tmp_path / "float32.tflite").stat().st_size
    exact, quantised = (LiteRTRunner(tmp_path / f"{w}.tflite").predict(inputs) for w in ("float32", "int8"))
    np.testing.assert_allclose(exact, model.predict(inputs, verbose=0), atol=1e-5)
    assert (exact.argmax(axis=1) == quantised.argmax(axis=1)).all() and np.abs(exact - quantised).max() < 0.02
    with pytest.raises(ModelError, match="weights='int16' must be one of float32, int8"):
        export_litert(model, tmp_path / "x.tflite", weights="int16")


def test_weights_are_a_litert_option(trained, tmp_path):
    with pytest.raises(ModelError, match=r"weights='int8' applies to the litert format only"):
        export_model(trained["result"].model_dir, fmt="onnx", weights="int8", out=tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=r"weights='' must be one of float32, int8"):
        export_model(trained["result"].model_dir, weights="", out=tmp_path / "m.tflite")
    result = CliRunner().invoke(main, ["export", "--model", str(trained["result"].model_dir), "--format", "onnx",
                                       "--weights", "int8", "--out", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1 and "applies to the litert format only" in result.output
    assert not (tmp_path / "m.onnx").exists()


def quantised_tensors(path):
    from ai_edge_litert.interpreter import Interpreter

    return sum(detail["dtype"] == np.int8 for detail in Interpreter(model_path=str(path)).get_tensor_details())


def test_fit_writes_the_cnns_litert_file_with_int8_weights_and_export_keeps_them(trained, tmp_path):
    """The folder's own model.tflite (what classify runs) has 8-bit weights; re-exported in place by default it
    keeps them, and --weights float32 writes the exact network."""
    import shutil

    model_dir = shutil.copytree(trained["result"].model_dir, tmp_path / "model")
    assert quantised_tensors(model_dir / "model.tflite") > 0
    export_model(model_dir)
    assert quantised_tensors(model_dir / "model.tflite") > 0
    export_model(model_dir, weights="float32")
    assert quantised_tensors(model_dir / "model.tflite") == 0


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
