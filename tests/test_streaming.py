"""Training batches streamed from disk equal the in-memory rows, reshuffled every epoch."""

import numpy as np
import pytest

from genre_cnn.data.arrays import NpyAppender

streaming = pytest.importorskip("genre_cnn.training.batches")


@pytest.fixture
def stored(tmp_path, rng):
    data = rng.standard_normal((23, 4, 6)).astype(np.float32)
    with NpyAppender(tmp_path / "f.npy", row_shape=(4, 6)) as out:
        out.append(data)
    return data, np.load(tmp_path / "f.npy", mmap_mode="r")


def test_batches_from_the_file_equal_batches_from_memory(stored):
    data, mapped = stored
    labels = np.arange(23) % 3
    rows = np.array([0, 2, 3, 5, 7, 11, 13, 17, 19, 22])
    from_file = streaming.ChunkBatches(features=mapped, labels=labels, rows=rows, batch_size=4, shuffle=True, seed=5)
    in_memory = streaming.ChunkBatches(features=data, labels=labels, rows=rows, batch_size=4, shuffle=True, seed=5)
    assert len(from_file) == 3
    seen = []
    for i in range(len(from_file)):
        (xa, ya), (xb, yb) = from_file[i], in_memory[i]
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        picked = [int(np.flatnonzero((data == row).all(axis=(1, 2)))[0]) for row in xa]
        np.testing.assert_array_equal(labels[picked], ya)
        seen += picked
    assert sorted(seen) == rows.tolist()


def test_order_changes_every_epoch_but_not_without_shuffle(stored):
    _, mapped = stored
    labels = np.zeros(23, dtype=int)
    shuffled = streaming.ChunkBatches(features=mapped, labels=labels, rows=np.arange(23), batch_size=23,
                                      shuffle=True, seed=0)
    first = shuffled[0][0].copy()
    shuffled.on_epoch_end()
    assert not np.array_equal(first, shuffled[0][0])
    fixed = streaming.ChunkBatches(features=mapped, labels=labels, rows=np.arange(23), batch_size=23)
    np.testing.assert_array_equal(fixed[0][0], np.asarray(mapped))



def test_several_devices_share_every_batch_equally(stored):
    """Training on N GPUs splits every batch N ways: each batch holds a multiple of N chunks."""
    _, mapped = stored
    labels = np.zeros(23, dtype=int)

    def sizes(rows, **options):
        batches = streaming.ChunkBatches(features=mapped, labels=labels, rows=np.asarray(rows), **options)
        return [len(batches[i][1]) for i in range(len(batches))]

    assert sizes(np.arange(17), batch_size=8) == [8, 8, 1]  # one device: the usual layout
    assert sizes(np.arange(18), batch_size=8, devices=2) == [8, 8, 2]
    assert sizes(np.arange(17), batch_size=7, devices=2) == [8, 8, 8, 8, 2]  # every chunk twice, batches of 8
    assert sizes(np.arange(17), batch_size=8, devices=2, shuffle=True) == [8, 8]  # training leaves one out
    assert sizes([4], batch_size=8, devices=2, shuffle=True) == [2]  # a lone chunk for two devices: twice


def test_training_leaves_out_different_chunks_every_epoch(stored):
    _, mapped = stored
    batches = streaming.ChunkBatches(features=mapped, labels=np.arange(23), rows=np.arange(17), batch_size=8,
                                     devices=2, shuffle=True, seed=1)
    left_out = set()
    for _ in range(10):
        served = np.concatenate([batches[i][1] for i in range(len(batches))])
        assert len(served) == 16 and len(set(served.tolist())) == 16
        left_out |= set(range(17)) - set(served.tolist())
        batches.on_epoch_end()
    assert len(left_out) > 1


def test_evaluation_on_several_devices_counts_every_chunk_equally(stored):
    data, mapped = stored
    labels = np.arange(23) % 3
    batches = streaming.ChunkBatches(features=mapped, labels=labels, rows=np.array([5, 9, 20]), batch_size=8,
                                     devices=4)
    served = [int(np.flatnonzero((data == row).all(axis=(1, 2)))[0])
              for i in range(len(batches)) for row in batches[i][0]]
    assert sorted(served) == [5] * 4 + [9] * 4 + [20] * 4
    np.testing.assert_array_equal(np.concatenate([batches[i][1] for i in range(len(batches))]), labels[served])
