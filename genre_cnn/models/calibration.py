"""Temperature scaling: genre probabilities that mean what they say.

A network trained with cross-entropy is often over- or under-confident: of the songs it calls
"rock 0.9", far fewer or more than 90 % are rock. One number, the *temperature* ``T``, fitted after
training on songs the model did not learn from, fixes most of it (Guo et al. 2017, "On calibration
of modern neural networks"): every probability vector ``p`` becomes ``softmax(log p / T)``. The
order of the genres never changes, so neither does the predicted genre or any accuracy.

A song's probabilities are the normalised geometric mean of its chunks'
(:class:`genre_cnn.inference.prediction.SongVerdict`), and dividing the logarithms by ``T`` commutes
with that mean: calibrating every chunk and then combining them gives the calibrated song. So the
same :meth:`Calibration.apply` serves chunks, timeline windows, songs and a baseline's one vector.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np

from genre_cnn.errors import ModelError

__all__ = ["Calibration", "UNCALIBRATED", "UNSURE_PRECISION"]

#: The share of right verdicts that the songs at or above a model's ``min_confidence`` reached on the songs
#: that chose it: below the threshold, a verdict is flagged *unsure*.
UNSURE_PRECISION = 0.9
#: Floor of a probability before its logarithm (as :data:`genre_cnn.inference.prediction.PROBABILITY_FLOOR`).
FLOOR = 1e-7


@dataclasses.dataclass(frozen=True)
class Calibration:
    """A model's temperature and what it was fitted on (``config.json``'s ``"calibration"``).

    Attributes
    ----------
    temperature : float
        ``T > 1`` softens over-confident probabilities, ``T < 1`` sharpens timid ones; 1 leaves them.
    fitted_on : str
        Which songs chose ``T`` ("validation songs", "cross-validated training songs"), or why there
        is none.
    songs : int
        How many songs chose it (0: the model is not calibrated).
    min_confidence : float or None
        A song whose calibrated top probability is below this is *unsure*: chosen on the same songs so
        that those at or above it were right at least :data:`UNSURE_PRECISION` of the time. None: no
        threshold (an uncalibrated model never says unsure unless asked with one).
    """

    temperature: float = 1.0
    fitted_on: str = "not calibrated"
    songs: int = 0
    min_confidence: Optional[float] = None

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and np.isfinite(self.temperature)
                and self.temperature > 0):
            raise ModelError(f"calibration temperature={self.temperature!r} must be a positive number; "
                             "refit the model")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ModelError(f"calibration min_confidence={self.min_confidence!r} must be a probability in [0, 1]; "
                             "refit the model")

    @property
    def calibrated(self) -> bool:
        """Whether a temperature was fitted (on at least one song)."""
        return self.songs > 0

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """``softmax(log p / T)`` along the last axis (the genres); ``p`` itself when ``T`` is 1.

        Parameters
        ----------
        probabilities : np.ndarray [shape=(..., n_classes)]

        Returns
        -------
        np.ndarray
            Same shape, float32 for float32 input; rows sum to 1.
        """
        probabilities = np.asarray(probabilities)
        if self.temperature == 1.0:
            return probabilities
        logits = np.log(np.clip(probabilities.astype(np.float64), FLOOR, 1.0)) / self.temperature
        logits -= logits.max(axis=-1, keepdims=True)
        weights = np.exp(logits)
        calibrated = weights / weights.sum(axis=-1, keepdims=True)
        return calibrated.astype(probabilities.dtype if probabilities.dtype.kind == "f" else np.float64)

    def to_dict(self) -> dict:
        """JSON-ready, as ``config.json``'s ``"calibration"`` holds it."""
        saved = {"temperature": round(float(self.temperature), 6), "fitted_on": self.fitted_on, "songs": self.songs}
        if self.min_confidence is not None:
            saved["min_confidence"] = round(float(self.min_confidence), 6)
        return saved

    @classmethod
    def from_dict(cls, data: Optional[Any], *, where: str = "the model config") -> "Calibration":
        """Read ``config.json``'s ``"calibration"``; None (a model fitted before calibration) is :data:`UNCALIBRATED`.

        Raises
        ------
        ModelError
            Present but not a temperature.
        """
        if data is None:
            return UNCALIBRATED
        if not isinstance(data, dict) or "temperature" not in data:
            raise ModelError(f"{where}: its calibration is damaged (no temperature); refit the model")
        try:
            threshold = data.get("min_confidence")
            return cls(temperature=float(data["temperature"]), fitted_on=str(data.get("fitted_on", "")),
                       songs=int(data.get("songs", 0)), min_confidence=None if threshold is None else float(threshold))
        except (TypeError, ValueError):
            raise ModelError(f"{where}: its calibration is damaged ({data!r}); refit the model") from None


#: What a model without a temperature gets (one fitted before calibration, or without validation songs).
UNCALIBRATED = Calibration()
