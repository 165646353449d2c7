"""Chunking policy: full chunks, tail, short songs, overlap."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genre_cnn.config import FeatureConfig
from genre_cnn.errors import AudioTooShortError
from genre_cnn.signal.segment import chunk_offsets, segment


def config(chunk=100, hop=100, tail="drop", short="pad", min_seconds=0.0):
    return FeatureConfig(sr=100, chunk_samples=chunk, hop_samples=hop, tail=tail, short=short,
                         min_seconds=min_seconds, n_fft=16, hop_length=4, n_mels=8)


@pytest.mark.parametrize(
    "n, options, expected",
    [
        (300, {}, [0, 100, 200]),
        (399, {}, [0, 100, 200]),
        (350, {"tail": "pad"}, [0, 100, 200, 300]),
        (349, {"tail": "pad"}, [0, 100, 200]),
        (300, {"hop": 50}, [0, 50, 100, 150, 200]),
        (100, {}, [0]),
        (40, {}, [0]),
    ],
    ids=["exact", "tail-dropped", "tail-half-padded", "tail-under-half-dropped", "overlap", "one-chunk",
         "short-padded"],
)
def test_chunk_offsets(n, options, expected):
    assert chunk_offsets(n, config(**options)).tolist() == expected


def test_short_song_skipped_when_policy_says_so():
    with pytest.raises(AudioTooShortError, match=r"only 0\.40 s of audio, shorter than one chunk \(1\.00 s\)"):
        chunk_offsets(40, config(short="skip"))


def test_songs_under_min_seconds_are_always_rejected():
    with pytest.raises(AudioTooShortError, match=r"only 0\.20 s of audio; at least 0\.5 s is needed"):
        chunk_offsets(20, config(min_seconds=0.5))
    with pytest.raises(AudioTooShortError, match="only 0.00 s"):
        chunk_offsets(0, config())


def test_segment_copies_the_audio_and_zero_pads():
    y = np.arange(250, dtype=np.float32)
    chunks, offsets = segment(y, config(tail="pad"))
    assert chunks.shape == (3, 100) and offsets.tolist() == [0, 100, 200]
    np.testing.assert_array_equal(chunks[1], y[100:200])
    np.testing.assert_array_equal(chunks[2, :50], y[200:])
    assert not chunks[2, 50:].any()


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=5000),
    chunk=st.integers(min_value=16, max_value=700),
    hop=st.integers(min_value=1, max_value=700),
    tail=st.sampled_from(["drop", "pad"]),
)
def test_offsets_follow_the_policy_for_any_length(n, chunk, hop, tail):
    offsets = chunk_offsets(n, config(chunk=chunk, hop=hop, tail=tail))
    assert len(offsets) >= 1 and offsets[0] == 0
    assert np.all(np.diff(offsets) == hop)
    if n < chunk:
        assert offsets.tolist() == [0]
        return
    full = [o for o in offsets if o + chunk <= n]
    assert len(full) == (n - chunk) // hop + 1
    extra = len(offsets) - len(full)
    next_start = full[-1] + hop
    expected_extra = tail == "pad" and next_start < n and n - next_start >= chunk / 2
    assert extra == int(expected_extra)
