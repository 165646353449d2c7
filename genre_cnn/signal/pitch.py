"""The pitch of a song's voice or lead: pYIN, as librosa computes it, decoded over the moves it allows.

``librosa.pyin`` spends ~95 % of its time in a dense Viterbi decoding over its 2 x 602 pitch states (C2 to C7 in
tenths of a semitone, voiced and unvoiced): every state of a frame is compared with every state of the frame
before, 1.4 million comparisons a frame. But pYIN's transitions are local: from one pitch bin it can move at
most 10 semitones up or down a frame (its ``max_transition_rate`` at the descriptors' 46 ms hop), so 69 % of
those transitions have probability 0.
:func:`pitch_track` computes pYIN's observation probabilities and transition matrix with librosa's own code and
decodes them with :func:`viterbi_sparse`, which visits only the transitions that exist and treats the others as
librosa does (a probability of 0 is ``log(tiny)``). The decoded path is librosa's, state for state (tested on
real songs); only the time differs: the baseline's descriptors take 3.6x less CPU (3.0 -> 0.84 s a 30 s song,
``benchmarks/bench_descriptors.py``).
"""

from __future__ import annotations

from typing import Tuple

import numba  # librosa's own dependency: this module is imported only where descriptors are computed
import numpy as np

__all__ = ["pitch_track", "viterbi_sparse"]


def pitch_track(y: np.ndarray, *, sr: int, fmin: float, fmax: float, frame_length: int, hop_length: int,
                resolution: float = 0.1) -> Tuple[np.ndarray, np.ndarray]:
    """pYIN's fundamental frequency and voicing of each frame: ``librosa.pyin`` with its default options.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono samples at ``sr``.
    sr : int
    fmin, fmax : float
        The lowest and highest pitch searched, in Hz.
    frame_length, hop_length : int
        In samples; frames are centred (``y`` is padded with zeros by half a frame on each side).
    resolution : float
        The pitch grid's step, in semitones.

    Returns
    -------
    f0 : np.ndarray [shape=(n_frames,)]
        In Hz; NaN where the frame is unvoiced.
    voiced : np.ndarray [shape=(n_frames,), dtype=bool]

    Notes
    -----
    The observation probabilities come from librosa's private helpers, as librosa 0.11 has them; with
    another librosa (whose internals may differ), ``librosa.pyin`` itself is called: the same result, at
    its own speed.
    """
    import librosa
    import scipy.stats

    # librosa.pyin's defaults, which the package's descriptors have always used
    n_thresholds, beta_parameters, boltzmann_parameter = 100, (2, 18), 2
    max_transition_rate, switch_prob, no_trough_prob = 35.92, 0.01, 0.01
    librosa.util.valid_audio(y)  # finite, floating point: as librosa.pyin checks
    internals = _pyin_internals()
    if internals is None:
        f0, voiced, _ = librosa.pyin(y, fmin=fmin, fmax=fmax, sr=sr, frame_length=frame_length,
                                     hop_length=hop_length, resolution=resolution)
        return f0, voiced
    difference, interpolate, observe = internals

    # the steps of librosa.pyin (librosa 0.10-0.11), with its Viterbi replaced
    padded = np.pad(y, (frame_length // 2, frame_length // 2), mode="constant")
    frames = librosa.util.frame(padded, frame_length=frame_length, hop_length=hop_length)
    min_period = int(np.floor(sr / fmax))
    max_period = min(int(np.ceil(sr / fmin)), frame_length - 1)
    yin_frames = difference(frames, min_period, max_period)
    shifts = interpolate(yin_frames)
    thresholds = np.linspace(0, 1, n_thresholds + 1)
    beta_probs = np.diff(scipy.stats.beta.cdf(thresholds, *beta_parameters))
    bins_per_semitone = int(np.ceil(1.0 / resolution))
    n_pitch_bins = int(np.floor(12 * bins_per_semitone * np.log2(fmax / fmin))) + 1
    observation, _ = observe(yin_frames, shifts, sr, thresholds, boltzmann_parameter, beta_probs, no_trough_prob,
                             min_period, fmin, n_pitch_bins, bins_per_semitone)
    semitones_per_frame = round(max_transition_rate * 12 * hop_length / sr)
    local = librosa.sequence.transition_local(n_pitch_bins, semitones_per_frame * bins_per_semitone + 1,
                                              window="triangle", wrap=False)
    transition = np.kron(librosa.sequence.transition_loop(2, 1 - switch_prob), local)
    states = viterbi_sparse(observation[0], transition, p_init=np.full(2 * n_pitch_bins, 1 / (2 * n_pitch_bins)))

    frequencies = fmin * 2 ** (np.arange(n_pitch_bins) / (12 * bins_per_semitone))
    voiced = states < n_pitch_bins
    f0 = frequencies[states % n_pitch_bins]
    f0[~voiced] = np.nan
    return f0, voiced


#: The librosa versions whose pYIN internals :func:`pitch_track` calls (0.10's take other arguments).
LIBROSA_INTERNALS = ("0.11",)


def _pyin_internals():
    """librosa's own steps of pYIN before the decoding, or None for a librosa whose internals may differ."""
    import librosa
    from librosa.core import pitch

    if not librosa.__version__.startswith(tuple(f"{version}." for version in LIBROSA_INTERNALS)):
        return None
    try:
        return (pitch._cumulative_mean_normalized_difference, pitch._parabolic_interpolation,
                getattr(pitch, "__pyin_helper"))
    except AttributeError:
        return None


def viterbi_sparse(prob: np.ndarray, transition: np.ndarray, *, p_init: np.ndarray) -> np.ndarray:
    """The most likely state sequence, as ``librosa.sequence.viterbi`` finds it, visiting only nonzero transitions.

    Parameters
    ----------
    prob : np.ndarray [shape=(n_states, n_steps)]
        Each state's observation probability at each step.
    transition : np.ndarray [shape=(n_states, n_states)]
        ``transition[i, j]``: the probability of moving from state ``i`` to ``j``; rows sum to 1.
    p_init : np.ndarray [shape=(n_states,)]

    Returns
    -------
    np.ndarray [shape=(n_steps,), dtype=int]
        librosa's path, ties included: probabilities are taken as ``log(p + tiny)`` and the first of equal
        candidates wins, as there. A transition of probability 0 costs ``log(tiny)``, so a path could cross
        one: each state also considers the best such source, the first state of the step before whose
        ``value + log(tiny)`` is the largest (several can round to it) and that has no move to it.
    """
    import librosa
    import scipy.sparse

    tiny = librosa.util.tiny(prob)
    into = scipy.sparse.csc_matrix(transition)  # column j: the states that can move into j
    into.sort_indices()
    return _viterbi_sparse(np.log(prob + tiny).T.copy(), into.indptr.astype(np.int64),
                           into.indices.astype(np.int64), np.log(into.data + tiny), np.asarray(transition) > 0,
                           float(np.log(tiny)), np.log(p_init + tiny))


@numba.njit(cache=True)
def _viterbi_sparse(log_prob, starts, sources, log_weights, moves, log_zero, log_p_init):  # pragma: no cover
    """The decoding: ``sources[starts[j]:starts[j + 1]]`` (ascending) can move into state ``j``, with ``log_weights``;
    ``moves[i, j]``: whether state ``i`` can move to ``j`` at all."""
    n_steps, n_states = log_prob.shape
    value = log_prob[0] + log_p_init
    ptr = np.zeros((n_steps, n_states), dtype=np.int32)
    new = np.empty(n_states)
    through_zero = np.empty(n_states, dtype=np.int64)  # the states with the best value + log(0 + tiny), ascending
    for t in range(1, n_steps):
        best_zero = (value + log_zero).max()
        n_zero = 0
        for i in range(n_states):
            if value[i] + log_zero == best_zero:
                through_zero[n_zero] = i
                n_zero += 1
        for j in range(n_states):
            best_i, best_v = -1, -np.inf
            for k in range(starts[j], starts[j + 1]):
                candidate = value[sources[k]] + log_weights[k]
                if candidate > best_v:
                    best_v, best_i = candidate, sources[k]
            for z in range(n_zero):  # the first of them with no move here: its candidate is best_zero
                i = through_zero[z]
                if not moves[i, j]:
                    if best_zero > best_v or (best_zero == best_v and i < best_i):
                        best_v, best_i = best_zero, i
                    break
            ptr[t, j] = best_i
            new[j] = log_prob[t, j] + best_v
        value[:] = new
    state = np.empty(n_steps, dtype=np.int64)
    state[-1] = np.argmax(value)
    for t in range(n_steps - 2, -1, -1):
        state[t] = ptr[t + 1, state[t + 1]]
    return state
