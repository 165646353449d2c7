"""The pitch descriptors' pYIN: librosa's own result, state for state, from a decoding that skips impossible moves."""

from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.stats

from genre_cnn.signal import pitch
from genre_cnn.signal.audio import load_audio
from genre_cnn.signal.descriptors import F0_MAX, F0_MIN, PITCH_RESOLUTION, PITCH_SR
from genre_cnn.signal.pitch import pitch_track, viterbi_sparse

TRACKS = Path(__file__).resolve().parents[1] / "tracks"
OPTIONS = dict(sr=PITCH_SR, fmin=F0_MIN, fmax=F0_MAX, frame_length=1024, hop_length=512, resolution=PITCH_RESOLUTION)


def librosa_pyin(y):
    f0, voiced, _ = librosa.pyin(y, **OPTIONS)
    return f0, voiced


def assert_same_track(mine, theirs):
    np.testing.assert_array_equal(mine[1], theirs[1])
    np.testing.assert_array_equal(mine[0], theirs[0])  # NaN where unvoiced, in both


def glide_with_gaps(seconds=6.0):
    """A voice-like glide (C3 up two octaves), broken by silences and a burst of noise."""
    t = np.arange(int(seconds * PITCH_SR)) / PITCH_SR
    f0 = 130.8 * 4 ** (t / seconds)
    phase = 2 * np.pi * np.cumsum(f0) / PITCH_SR
    y = sum(np.sin(k * phase) / k for k in (1, 2, 3)) * 0.3
    quarter = len(y) // 4
    y[quarter:quarter + quarter // 3] = 0.0
    y[2 * quarter:2 * quarter + quarter // 3] = np.random.default_rng(0).normal(0, 0.2, quarter // 3)
    return y.astype(np.float32)


def test_the_pitch_of_a_glide_with_gaps_is_librosas_pyin():
    y = glide_with_gaps()
    mine = pitch_track(y, **OPTIONS)
    assert_same_track(mine, librosa_pyin(y))
    assert 0.3 < mine[1].mean() < 0.95  # voiced and unvoiced stretches, both decoded


@pytest.mark.parametrize("song", ["chiptune/bomberclone_cerror_intro.mp3", "orchestral", "electronic"])
def test_the_pitch_of_real_songs_is_librosas_pyin(song):
    path = TRACKS / song if song.endswith(".mp3") else sorted((TRACKS / song).glob("*.mp3"))[0]
    y = load_audio(path, sr=PITCH_SR)[: 12 * PITCH_SR]
    assert_same_track(pitch_track(y, **OPTIONS), librosa_pyin(y))


@pytest.mark.parametrize("song", ["chiptune/bomberclone_cerror_intro.mp3", "orchestral", "glide"])
def test_the_observation_probabilities_are_librosas_to_the_last_bit(song):
    """The prior over a frame's troughs is written out instead of asking scipy.stats.boltzmann: the same numbers."""
    from librosa.core import pitch as librosa_pitch

    if song == "glide":
        y = glide_with_gaps()
    else:
        path = TRACKS / song if song.endswith(".mp3") else sorted((TRACKS / song).glob("*.mp3"))[0]
        y = load_audio(path, sr=PITCH_SR)[: 12 * PITCH_SR]
    sr, frame_length, hop_length = PITCH_SR, 1024, 512
    frames = librosa.util.frame(np.pad(y, frame_length // 2), frame_length=frame_length, hop_length=hop_length)
    min_period, max_period = int(np.floor(sr / F0_MAX)), int(np.ceil(sr / F0_MIN))
    yin_frames = librosa_pitch._cumulative_mean_normalized_difference(frames, min_period, max_period)
    shifts = librosa_pitch._parabolic_interpolation(yin_frames)
    thresholds = np.linspace(0, 1, 101)
    beta_probs = np.diff(scipy.stats.beta.cdf(thresholds, 2, 18))
    n_pitch_bins = int(np.floor(120 * np.log2(F0_MAX / F0_MIN))) + 1
    theirs, _ = getattr(librosa_pitch, "__pyin_helper")(yin_frames, shifts, sr, thresholds, 2, beta_probs, 0.01,
                                                        min_period, F0_MIN, n_pitch_bins, 10)
    mine = pitch._observation(yin_frames, shifts, sr=sr, thresholds=thresholds, boltzmann_parameter=2,
                              beta_probs=beta_probs, no_trough_prob=0.01, min_period=min_period, fmin=F0_MIN,
                              n_pitch_bins=n_pitch_bins, bins_per_semitone=10)
    assert (mine[:n_pitch_bins] > 0).any(axis=0).mean() > 0.5  # pitch candidates in most frames: the prior was used
    np.testing.assert_array_equal(mine, theirs[0])


def test_the_sparse_viterbi_is_librosas_viterbi_ties_and_impossible_moves_included():
    rng = np.random.default_rng(1)
    for trial in range(300):  # from 2 states to 160: several blocks of states, which the decoding may skip
        n_states, n_steps = int(rng.integers(2, 16 if trial < 150 else 80)), int(rng.integers(1, 30))
        width = int(rng.integers(1, n_states + 1))
        transition = librosa.sequence.transition_local(n_states, width, window="triangle", wrap=False) \
            if n_states > 1 else np.ones((1, 1))
        if trial % 2:  # pYIN's shape: the same local moves within and across two blocks
            transition = np.kron(librosa.sequence.transition_loop(2, 0.9), transition)
        n_states = len(transition)
        prob = rng.random((n_states, n_steps))
        prob[rng.random(prob.shape) < 0.5] = 0.0  # observations of probability 0: only a move of probability 0 helps
        if trial % 3 == 0:
            prob = np.round(prob, 1)  # equal candidates: the first one wins in both
        elif trial % 3 == 1:
            prob = prob**8  # a few likely states, the rest far below (as in a pitch track)
        p_init = np.full(n_states, 1 / n_states)
        expected = librosa.sequence.viterbi(prob, transition, p_init=p_init)
        np.testing.assert_array_equal(viterbi_sparse(prob, transition, p_init=p_init), expected, err_msg=f"{trial}")


def test_a_move_of_probability_0_is_taken_from_the_first_of_equally_good_sources():
    # 0.45 and 0.45 * (1 - 1e-15) differ, but not once log(tiny) is added: librosa then takes state 0,
    # although state 1 is (a hair) better before the addition
    transition = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    prob = np.array([[1 - 1e-15, 0.0], [1.0, 0.0], [0.0, 1.0]])
    p_init = np.array([0.45, 0.45, 0.1])
    expected = librosa.sequence.viterbi(prob, transition, p_init=p_init)
    np.testing.assert_array_equal(expected, [0, 2])
    np.testing.assert_array_equal(viterbi_sparse(prob, transition, p_init=p_init), expected)


def test_another_librosa_version_gives_its_own_pyin(monkeypatch):
    y = glide_with_gaps(seconds=2.0)
    expected = librosa_pyin(y)
    calls = []
    monkeypatch.setattr(librosa, "__version__", "0.10.2")  # whose internals take other arguments
    monkeypatch.setattr(librosa, "pyin", lambda *args, **kwargs: calls.append(1) or (*expected, None))
    assert_same_track(pitch.pitch_track(y, **OPTIONS), expected)
    assert calls == [1]


def test_audio_that_is_not_finite_is_refused_as_librosa_refuses_it():
    y = glide_with_gaps(seconds=1.0)
    y[100] = np.nan
    with pytest.raises(librosa.util.exceptions.ParameterError, match="not finite"):
        pitch_track(y, **OPTIONS)


def test_a_librosa_with_other_internals_gives_its_own_pyin(monkeypatch):
    y = glide_with_gaps(seconds=2.0)
    expected = librosa_pyin(y)
    calls = []
    monkeypatch.setattr(pitch, "_pyin_internals", lambda: None)
    monkeypatch.setattr(librosa, "pyin", lambda *args, **kwargs: calls.append(1) or (*expected, None))
    assert_same_track(pitch.pitch_track(y, **OPTIONS), expected)
    assert calls == [1]
