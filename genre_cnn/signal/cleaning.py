"""Optional clean-up before chunking: trim leading/trailing silence, reduce stationary noise."""

from __future__ import annotations

import numpy as np

from genre_cnn.errors import ConfigError
from genre_cnn.runtime.native import native_stderr_silenced

__all__ = ["trim_silence", "reduce_noise"]


def trim_silence(y: np.ndarray, *, sr: int, top_db: float = 60.0) -> tuple[np.ndarray, float]:
    """Cut leading and trailing audio quieter than ``top_db`` below the peak (librosa.effects.trim).

    Returns
    -------
    y_trimmed : np.ndarray [shape=(m,)]
    removed_seconds : float
    """
    import librosa

    trimmed, _ = librosa.effects.trim(y, top_db=top_db)
    return np.ascontiguousarray(trimmed, dtype=np.float32), (len(y) - len(trimmed)) / sr


def reduce_noise(y: np.ndarray, *, sr: int) -> tuple[np.ndarray, float]:
    """Spectral-gating noise reduction (``noisereduce``), and how much it lowered the level.

    Returns
    -------
    y_clean : np.ndarray [shape=(n,)]
    reduction_db : float
        RMS level before minus after, in dB (>= 0 when noise was removed).
    """
    try:
        import noisereduce
    except ImportError:
        raise ConfigError("denoise=True needs the noisereduce package: pip install 'genre-cnn[denoise]'") from None

    with native_stderr_silenced():
        clean = noisereduce.reduce_noise(y=y, sr=sr, n_jobs=1).astype(np.float32)
    before, after = (float(np.sqrt(np.mean(np.square(a, dtype=np.float64)))) for a in (y, clean))
    reduction = 20 * np.log10(max(before, 1e-12) / max(after, 1e-12))
    return clean, float(reduction)
