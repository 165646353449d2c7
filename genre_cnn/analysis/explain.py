"""Explain one song's verdict and draw it: ``genre-cnn explain`` (computed by :mod:`genre_cnn.inference.occlusion`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from genre_cnn.errors import AudioDecodeError, ConfigError
from genre_cnn.inference.classifier import open_classifier
from genre_cnn.runtime.files import atomic_file

__all__ = ["explain"]


def explain(song: str | os.PathLike, *, model=None, out: str | os.PathLike = "why.png", genre: Optional[str] = None,
            backend: str = "auto"):
    """Explain one song's verdict and draw it to ``out`` (PNG, written whole or not at all).

    Parameters
    ----------
    song : path-like
    model : path-like or loaded classifier, optional
        Default: the latest model.
    out : path-like
    genre : str, optional
        Explain this genre instead of the chosen one.
    backend : {"auto", "litert", "keras"}

    Returns
    -------
    genre_cnn.inference.occlusion.Explanation or DescriptorExplanation
        What the model's kind explains: an occlusion map (a network) or its descriptors (a baseline).

    Raises
    ------
    ConfigError
        An unknown genre, or an ``out`` that is not a PNG or cannot be written.
    AudioDecodeError
    """
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"out={out}: the picture is a PNG; name a file ending in .png", parameter="out")
    song = Path(song)
    if song.is_dir():
        raise AudioDecodeError(f"{song}: is a folder; name one song (classify FOLDER --explain DIR does a folder)")
    if not song.is_file():
        raise AudioDecodeError(f"{song}: no such file; check the path")
    opened = model is not None and not isinstance(model, (str, os.PathLike))
    classifier = model if opened else open_classifier(model, backend=backend)
    explanation, draw = classifier.explain_file(song, genre=genre)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(out) as partial, open(partial, "wb") as handle:
            draw(explanation, handle)
    except OSError as exc:
        raise ConfigError(f"out={out}: cannot be written ({exc.strerror or exc}); choose another place",
                          parameter="out") from None
    return explanation
