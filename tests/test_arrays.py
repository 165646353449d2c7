"""NpyAppender: rows streamed into a .npy file that numpy memory-maps as usual."""

import numpy as np
import pytest

from genre_cnn.data.arrays import NpyAppender


def test_appended_rows_load_back_memory_mapped(tmp_path, rng):
    parts = [rng.standard_normal((n, 4, 5)).astype(np.float32) for n in (3, 0, 7)]
    with NpyAppender(tmp_path / "x.npy", row_shape=(4, 5)) as out:
        for part in parts:
            out.append(part)
    loaded = np.load(tmp_path / "x.npy", mmap_mode="r")
    assert isinstance(loaded, np.memmap) and loaded.shape == (10, 4, 5)
    np.testing.assert_array_equal(loaded, np.concatenate(parts))


def test_no_rows_gives_an_empty_array(tmp_path):
    NpyAppender(tmp_path / "e.npy", row_shape=(2,)).close()
    assert np.load(tmp_path / "e.npy").shape == (0, 2)


def test_rows_of_another_shape_are_refused(tmp_path):
    with NpyAppender(tmp_path / "x.npy", row_shape=(2, 3)) as out:
        with pytest.raises(ValueError, match=r"rows of shape \(3, 2\) do not match row_shape=\(2, 3\)"):
            out.append(np.zeros((1, 3, 2)))
