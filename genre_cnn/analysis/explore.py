"""Exploratory analysis of a descriptor table: plots and a short text summary."""

from __future__ import annotations

import os

import numpy as np

from genre_cnn.data.descriptor_table import read_descriptor_table
from genre_cnn.errors import ConfigError
from genre_cnn.plots import plot_class_balance, plot_correlation, plot_feature_histograms, plot_pca
from genre_cnn.runtime.files import ensure_folder

__all__ = ["explore"]


def explore(table: str | os.PathLike, *, out: str | os.PathLike = "explore") -> str:
    """Write ``class_balance.png``, ``histograms.png``, ``correlation.png``, ``pca.png`` and
    ``summary.txt`` into ``out``; return the summary text.

    The summary lists the genres and their song counts, the imbalance ratio (largest over
    smallest genre) and the features that differ most between genres (ANOVA F statistic).
    """
    from sklearn.decomposition import PCA
    from sklearn.feature_selection import f_classif
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler


    _, genres, values, columns = read_descriptor_table(table)
    if len(values) < 3:
        raise ConfigError(f"{table}: {len(values)} song(s); exploring needs at least 3")
    out = ensure_folder(out, what="exploration plots")
    filled = SimpleImputer(strategy="median", keep_empty_features=True).fit_transform(values)
    scaled = StandardScaler().fit_transform(filled)
    pca = PCA(n_components=2, random_state=0).fit(scaled)

    plot_class_balance(genres, out / "class_balance.png")
    plot_feature_histograms(values, genres, columns, out / "histograms.png")
    plot_correlation(values, columns, out / "correlation.png")
    plot_pca(pca.transform(scaled), genres, pca.explained_variance_ratio_, out / "pca.png")

    names, counts = np.unique(genres, return_counts=True)
    import warnings

    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # constant columns (e.g. equal durations) score 0
        scores = np.nan_to_num(f_classif(scaled, genres)[0], nan=0.0)
    top = np.argsort(-scores)[:8]
    lines = [
        f"{len(values)} songs, {len(names)} genres: " + ", ".join(f"{n} {c}" for n, c in zip(names, counts)),
        f"imbalance ratio (largest / smallest genre): {counts.max() / counts.min():.2f}",
        "features that differ most between genres (ANOVA F):",
        *(f"  {columns[i]:<28} F = {scores[i]:.1f}" for i in top),
    ]
    summary = "\n".join(lines)
    (out / "summary.txt").write_text(summary + "\n", encoding="utf-8")
    return summary
