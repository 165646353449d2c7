"""How a song's genre probabilities are made from its chunks' (classify, fit, cv, timelines alike)."""

import numpy as np
import pytest

from genre_cnn.inference.prediction import SongVerdict, song_probabilities


def test_a_song_is_the_normalised_geometric_mean_of_its_chunks():
    chunks = np.array([[0.9, 0.1], [0.2, 0.8]])
    geometric = np.sqrt(chunks.prod(axis=0))
    np.testing.assert_allclose(song_probabilities(chunks), geometric / geometric.sum())
    assert song_probabilities(chunks).sum() == pytest.approx(1.0)


def test_one_sure_chunk_outweighs_two_leaning_the_other_way():
    chunks = np.array([[0.8, 0.2], [0.8, 0.2], [0.01, 0.99]])
    assert chunks.mean(axis=0).argmax() == 0  # an arithmetic mean would say the first genre
    assert song_probabilities(chunks).argmax() == 1


def test_a_single_chunk_is_its_own_song():
    np.testing.assert_allclose(song_probabilities(np.array([[0.2, 0.3, 0.5]])), [0.2, 0.3, 0.5])


def test_a_chunk_that_rules_a_genre_out_does_not_make_the_song_impossible():
    chunks = np.array([[0.0, 1.0]] + [[0.9, 0.1]] * 9)
    probabilities = song_probabilities(chunks)
    assert np.isfinite(probabilities).all() and probabilities.sum() == pytest.approx(1.0)
    assert 0 < probabilities[0] < 1


def test_chunks_added_batch_by_batch_give_the_song_all_at_once():
    chunks = np.random.default_rng(0).dirichlet([1, 1, 1], size=11)
    verdict = SongVerdict(3)
    for batch in (chunks[:4], chunks[4:5], chunks[5:]):
        verdict.add(batch)
    assert verdict.n_chunks == 11
    np.testing.assert_allclose(verdict.probabilities, song_probabilities(chunks))


def test_a_song_without_chunks_has_no_probabilities():
    verdict = SongVerdict(3)
    assert verdict.n_chunks == 0 and np.isnan(verdict.probabilities).all()
