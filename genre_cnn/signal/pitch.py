"""The pitch of a song's voice or lead: pYIN, as librosa computes it, decoded over the moves it allows.

``librosa.pyin`` spends ~95 % of its time in a dense Viterbi decoding over its 2 x 602 pitch states (C2 to C7 in
tenths of a semitone, voiced and unvoiced): every state of a frame is compared with every state of the frame
before, 1.4 million comparisons a frame. But pYIN's transitions are local: from one pitch bin it can move at
most 10 semitones up or down a frame (its ``max_transition_rate`` at the descriptors' 46 ms hop), so 69 % of
those transitions have probability 0, and most of the states that remain are far less likely than the best.
:func:`pitch_track` computes pYIN's observation probabilities as librosa does (:func:`_observation`: its
code, with the prior over a frame's troughs written out instead of asking ``scipy.stats`` 600 times a song)
and its transition matrix with librosa's own code (once per process), and decodes them with
:func:`viterbi_sparse`, which visits only the transitions that exist, treats the others as librosa does (a
probability of 0 is ``log(tiny)``), and skips blocks of states that cannot beat the best move found. The
decoded path is librosa's, state for state (tested on real songs and on 300 random problems with ties); only
the time differs (``benchmarks/bench_descriptors.py``, benchmarks/RESULTS.md).
"""

from __future__ import annotations

import functools
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
    difference, interpolate = internals

    # the steps of librosa.pyin (librosa 0.11), with its observation step's prior in closed form and its Viterbi
    # replaced
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
    observation = _observation(yin_frames, shifts, sr=sr, thresholds=thresholds,
                               boltzmann_parameter=boltzmann_parameter, beta_probs=beta_probs,
                               no_trough_prob=no_trough_prob, min_period=min_period, fmin=fmin,
                               n_pitch_bins=n_pitch_bins, bins_per_semitone=bins_per_semitone)
    semitones_per_frame = round(max_transition_rate * 12 * hop_length / sr)
    moves = _pyin_moves(n_pitch_bins, semitones_per_frame * bins_per_semitone + 1, switch_prob)
    states = _decode(observation, moves, p_init=np.full(2 * n_pitch_bins, 1 / (2 * n_pitch_bins)))

    frequencies = fmin * 2 ** (np.arange(n_pitch_bins) / (12 * bins_per_semitone))
    voiced = states < n_pitch_bins
    f0 = frequencies[states % n_pitch_bins]
    f0[~voiced] = np.nan
    return f0, voiced


#: The librosa versions whose pYIN internals :func:`pitch_track` calls (0.10's take other arguments).
LIBROSA_INTERNALS = ("0.11",)


def _pyin_internals():
    """librosa's own steps of pYIN before the observation probabilities, or None for a librosa whose internals may
    differ."""
    import librosa
    from librosa.core import pitch

    if not librosa.__version__.startswith(tuple(f"{version}." for version in LIBROSA_INTERNALS)):
        return None
    try:
        return pitch._cumulative_mean_normalized_difference, pitch._parabolic_interpolation
    except AttributeError:
        return None


def _observation(yin_frames: np.ndarray, shifts: np.ndarray, *, sr: int, thresholds: np.ndarray,
                 boltzmann_parameter: int, beta_probs: np.ndarray, no_trough_prob: float, min_period: int,
                 fmin: float, n_pitch_bins: int, bins_per_semitone: int) -> np.ndarray:
    """pYIN's observation probabilities of each pitch state (voiced, then unvoiced) in each frame, as librosa 0.11's
    ``__pyin_helper`` computes them.

    The one change: the prior over a frame's troughs (smaller periods first) is the Boltzmann distribution's
    probability mass written out, ``(1 - e^-λ) e^-λk / (1 - e^-λN)`` for the k-th of N troughs below a threshold,
    the expression ``scipy.stats.boltzmann.pmf`` evaluates on the same numbers, without the per-frame overhead of
    scipy's distribution machinery (a third of the observation step's time).

    Returns
    -------
    np.ndarray [shape=(2 * n_pitch_bins, n_frames)]
    """
    import librosa

    yin_probs = np.zeros_like(yin_frames)
    for i, yin_frame in enumerate(yin_frames.T):
        # the troughs of the frame, and which of them are below each threshold
        is_trough = librosa.util.localmin(yin_frame)
        is_trough[0] = yin_frame[0] < yin_frame[1]
        (trough_index,) = np.nonzero(is_trough)
        if len(trough_index) == 0:
            continue
        trough_heights = yin_frame[trough_index]
        below = np.less.outer(trough_heights, thresholds[1:])
        # the prior over the troughs below a threshold: the k-th of N gets the Boltzmann mass of k
        positions = np.cumsum(below, axis=0) - 1
        counts = np.broadcast_to(np.count_nonzero(below, axis=0), below.shape)
        k, n = positions[below], counts[below]
        rate = np.full(k.shape, boltzmann_parameter)
        prior = np.zeros(below.shape)
        prior[below] = np.clip((1 - np.exp(-rate)) / (1 - np.exp(-rate * n)) * np.exp(-rate * k), 0, 1)
        # each threshold's probability to the troughs below it, or to the lowest trough when none is
        probs = prior.dot(beta_probs)
        global_min = np.argmin(trough_heights)
        n_thresholds_below_min = np.count_nonzero(~below[global_min, :])
        probs[global_min] += no_trough_prob * np.sum(beta_probs[:n_thresholds_below_min])
        yin_probs[trough_index, i] = probs

    yin_period, frame_index = np.nonzero(yin_probs)
    # the period of each candidate refined by parabolic interpolation, and its pitch bin
    period_candidates = min_period + yin_period
    period_candidates = period_candidates + shifts[yin_period, frame_index]
    f0_candidates = sr / period_candidates
    bin_index = 12 * bins_per_semitone * np.log2(f0_candidates / fmin)
    bin_index = np.clip(np.round(bin_index), 0, n_pitch_bins).astype(int)
    observation = np.zeros((2 * n_pitch_bins, yin_frames.shape[1]))
    observation[bin_index, frame_index] = yin_probs[yin_period, frame_index]
    voiced_prob = np.clip(np.sum(observation[:n_pitch_bins, :], axis=0, keepdims=True), 0, 1)
    observation[n_pitch_bins:, :] = (1 - voiced_prob) / n_pitch_bins
    return observation


@functools.lru_cache(maxsize=4)
def _pyin_moves(n_pitch_bins: int, width: int, switch_prob: float) -> tuple:
    """pYIN's transitions (librosa's: a triangular window of ``width`` bins, voicing kept with ``1 - switch_prob``)
    as :func:`viterbi_sparse` visits them; the same for every song, so made once."""
    import librosa

    local = librosa.sequence.transition_local(n_pitch_bins, width, window="triangle", wrap=False)
    transition = np.kron(librosa.sequence.transition_loop(2, 1 - switch_prob), local)
    return _sparse_moves(transition, tiny=librosa.util.tiny(np.float64(0)))  # the observations are float64


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

    return _decode(prob, _sparse_moves(transition, tiny=librosa.util.tiny(prob)), p_init=p_init)


def _sparse_moves(transition: np.ndarray, *, tiny: float) -> tuple:
    """``transition`` as :func:`_viterbi_sparse` reads it: by column, the states that can move there (ascending),
    the logs of those moves (``log(p + tiny)``, ``tiny`` that of the observations, as librosa's viterbi takes
    it), which moves exist at all, and the runs of consecutive source states in each column (pYIN's: a band of
    pitch bins, voiced and unvoiced), whose best move is found with vector instructions."""
    import scipy.sparse

    into = scipy.sparse.csc_matrix(transition)  # column j: the states that can move into j
    into.sort_indices()
    starts, sources = into.indptr.astype(np.int64), into.indices.astype(np.int64)
    breaks = np.ones(len(sources), dtype=bool)
    breaks[1:] = sources[1:] != sources[:-1] + 1
    breaks[starts[:-1][starts[:-1] < len(sources)]] = True  # a run never spans two columns
    run_first = np.flatnonzero(breaks).astype(np.int64)
    run_length = np.diff(np.append(run_first, len(sources))).astype(np.int64)
    column_runs = np.searchsorted(run_first, starts).astype(np.int64)
    return (starts, sources, np.log(into.data + tiny), np.asarray(transition) > 0, column_runs, run_first, run_length)


def _decode(prob: np.ndarray, moves: tuple, *, p_init: np.ndarray) -> np.ndarray:
    """:func:`viterbi_sparse` over transitions already made by :func:`_sparse_moves`."""
    import librosa

    tiny = librosa.util.tiny(prob)
    return _viterbi_sparse(np.log(prob + tiny).T.copy(), *moves, float(np.log(tiny)), np.log(p_init + tiny))


#: Below every log-probability a path can have (each step adds at least log(tiny) ~ -745).
_NO_VALUE = -1e300
#: States per block whose best value bounds every move out of them (:func:`_viterbi_sparse`).
_BLOCK = 16


@numba.njit(cache=True)
def _best_source(value, j, starts, sources, log_weights, moves, log_zero):  # pragma: no cover
    """The state that the path into state ``j`` comes from, after a step whose values are ``value``: the first of
    the best sources (ascending), or the first of the states with the best ``value + log_zero`` that has no move
    to ``j`` if that is better (or as good and earlier)."""
    best_i, best_v = -1, -np.inf
    for k in range(starts[j], starts[j + 1]):
        candidate = value[sources[k]] + log_weights[k]
        if candidate > best_v:
            best_v, best_i = candidate, sources[k]
    best_zero = (value + log_zero).max()
    for i in range(len(value)):
        if value[i] + log_zero == best_zero and not moves[i, j]:
            if best_zero > best_v or (best_zero == best_v and i < best_i):
                best_i = i
            break
    return best_i


@numba.njit(cache=True)
def _viterbi_sparse(log_prob, starts, sources, log_weights, moves, column_runs, run_first, run_length, log_zero,
                    log_p_init):  # pragma: no cover
    """The decoding: ``sources[starts[j]:starts[j + 1]]`` (ascending) can move into state ``j``, with ``log_weights``,
    in the runs ``column_runs[j]:column_runs[j + 1]`` of consecutive states; ``moves[i, j]``: whether state ``i``
    can move to ``j`` at all.

    The forward pass keeps each step's best values only: a maximum needs no index, and it need not look at a
    block of :data:`_BLOCK` source states whose best value plus the best of their moves cannot beat what was
    found (most of a pitch track's states are far below the best ones, or too far away); floating-point addition
    is monotonic, so no skipped candidate could have been larger. The way back finds, for the one state of the
    path at each step, the source the forward pass stands for, by :func:`_best_source`.
    """
    n_steps, n_states = log_prob.shape
    # the best move out of each block of each run: block_weight[run_blocks[run] + b - first block of the run]
    n_runs = len(run_first)
    run_blocks = np.zeros(n_runs + 1, dtype=np.int64)
    for run in range(n_runs):
        source = sources[run_first[run]]
        run_blocks[run + 1] = run_blocks[run] + (source + run_length[run] - 1) // _BLOCK - source // _BLOCK + 1
    block_weight = np.full(run_blocks[-1], -np.inf)
    for run in range(n_runs):
        first, source = run_first[run], sources[run_first[run]]
        for i in range(source, source + run_length[run]):
            slot = run_blocks[run] + i // _BLOCK - source // _BLOCK
            block_weight[slot] = max(block_weight[slot], log_weights[first + i - source])
    n_blocks = (n_states + _BLOCK - 1) // _BLOCK
    block_best = np.empty(n_blocks)
    values = np.empty((n_steps, n_states))
    values[0] = log_prob[0] + log_p_init
    through_zero = np.empty(n_states, dtype=np.int64)  # the states with the best value + log(0 + tiny), ascending
    for t in range(1, n_steps):
        value = values[t - 1]
        for b in range(n_blocks):
            block_best[b] = value[b * _BLOCK:min(n_states, (b + 1) * _BLOCK)].max()
        best_zero = (value + log_zero).max()
        n_zero = 0
        for i in range(n_states):
            if value[i] + log_zero == best_zero:
                through_zero[n_zero] = i
                n_zero += 1
        for j in range(n_states):
            best = _NO_VALUE
            for z in range(n_zero):  # the first of them with no move here: its candidate is best_zero
                if not moves[through_zero[z], j]:
                    best = best_zero
                    break
            for run in range(column_runs[j], column_runs[j + 1]):
                first, source = run_first[run], sources[run_first[run]]
                end = source + run_length[run]
                if j >= source and j < end:  # the state itself first: staying is the likeliest move
                    best = max(best, value[j] + log_weights[first + j - source])
                for b in range(source // _BLOCK, (end - 1) // _BLOCK + 1):
                    if block_best[b] + block_weight[run_blocks[run] + b - source // _BLOCK] <= best:
                        continue
                    for i in range(max(source, b * _BLOCK), min(end, (b + 1) * _BLOCK)):
                        candidate = value[i] + log_weights[first + i - source]
                        if candidate > best:
                            best = candidate
            values[t, j] = log_prob[t, j] + best
    state = np.empty(n_steps, dtype=np.int64)
    state[-1] = np.argmax(values[-1])
    for t in range(n_steps - 2, -1, -1):
        state[t] = _best_source(values[t], state[t + 1], starts, sources, log_weights, moves, log_zero)
    return state
