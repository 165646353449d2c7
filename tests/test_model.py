"""The Keras model: named blocks, normalisation inside, softmax output, save and load."""

import numpy as np
import pytest

from genre_cnn.models.cnn import build_model

keras = pytest.importorskip("keras")


@pytest.fixture
def model():
    keras.utils.set_random_seed(0)
    return build_model((16, 63), 3, mel_mean=np.full(16, -40.0), mel_variance=np.full(16, 100.0))


def test_layers_are_named_blocks(model):
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["log_mel", "add_channel", "normalise_bands"]
    assert [n for n in names if n.startswith("block")] == [
        f"block{i}_{kind}" for i in range(1, 5) for kind in ("conv", "bn", "relu", "pool")]
    assert names[-1] == "genre"
    assert model.input_shape == (None, 16, 63) and model.output_shape == (None, 3)


def test_raw_db_input_is_normalised_per_band_inside_the_model(model):
    normalise = keras.Model(model.input, model.get_layer("normalise_bands").output)
    out = normalise.predict(np.full((1, 16, 63), -30.0, np.float32), verbose=0)
    np.testing.assert_allclose(out, 1.0, rtol=1e-5)  # (-30 - -40) / sqrt(100)


def test_outputs_are_probabilities(model, rng):
    probabilities = model.predict(rng.normal(-40, 10, (5, 16, 63)).astype(np.float32), verbose=0)
    assert probabilities.shape == (5, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_save_and_load_in_safe_mode_predict_identically(model, tmp_path, rng):
    x = rng.normal(-40, 10, (4, 16, 63)).astype(np.float32)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True, compile=False)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
