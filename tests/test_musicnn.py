"""The musicnn backbone: the Keras port reproduces the original TF1 graph, and its notice ships with it."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from genre_cnn.models.musicnn import (  # noqa: E402
    NOTICE_FILE,
    PATCH_FRAMES,
    SR,
    WEIGHTS_FILE,
    load_musicnn,
    musicnn_front_end,
    musicnn_patches,
)

FIXTURE = Path(__file__).with_name("fixtures") / "musicnn_reference.npz"


@pytest.fixture(scope="module")
def musicnn():
    return load_musicnn()


def test_port_matches_the_original_graph_on_reference_clips(musicnn):
    reference = np.load(FIXTURE)  # made by tools/convert_musicnn.py from the original TF1 graph
    out = musicnn.predict(reference["patches"], verbose=0)
    np.testing.assert_allclose(out["tags"], reference["tags"], atol=1e-4)
    np.testing.assert_allclose(out["embedding"], reference["embedding"], atol=1e-3)
    assert reference["tags"].max() > 0.5  # the clips do light up tags: the comparison is not of zeros


def test_weights_ship_with_the_isc_notice():
    assert WEIGHTS_FILE.stat().st_size > 3_000_000
    notice = NOTICE_FILE.read_text()
    assert "Music Technology Group, Universitat Pompeu Fabra 2019" in notice and "Permission to use" in notice


def test_front_end_and_patches():
    t = np.arange(7 * SR) / SR
    front = musicnn_front_end(0.5 * np.sin(2 * np.pi * 440 * t))
    assert front.shape == (1 + 7 * SR // 256, 96) and np.isfinite(front).all() and front.max() > 1
    patches = musicnn_patches(front)
    assert patches.shape == (2, PATCH_FRAMES, 96)
    np.testing.assert_array_equal(patches[1], front[PATCH_FRAMES : 2 * PATCH_FRAMES])
    assert musicnn_patches(front[:50]).shape == (1, PATCH_FRAMES, 96)  # short input: zero-padded


def test_loud_audio_does_not_overflow_the_front_end():
    # float16 tops out at 65504: 10000 * S in float16 would be inf for loud music
    loud = np.random.default_rng(0).uniform(-1, 1, 3 * SR).astype(np.float32)
    assert np.isfinite(musicnn_front_end(loud)).all()


def test_missing_weights_are_a_clear_error(tmp_path):
    from genre_cnn.errors import ModelError

    with pytest.raises(ModelError, match="musicnn weights are missing; reinstall genre-cnn or run tools/convert"):
        load_musicnn(tmp_path / "none.weights.h5")
