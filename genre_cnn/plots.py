"""Figures (the only module that imports matplotlib): history, confusion matrices, audio views."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

__all__ = ["plot_history", "plot_confusion", "plot_reliability", "plot_song_views", "plot_timeline",
           "plot_recipe_comparison", "plot_explanation", "plot_descriptor_explanation"]


def _figure(**options):
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    return Figure(layout="constrained", **options)


def plot_history(history: Mapping[str, Sequence[float]], path: Path, *, kept_epoch: int = -1):
    """Accuracy and loss per epoch, train and validation, with the kept epoch marked.

    Parameters
    ----------
    history : mapping
        Keras ``History.history``: ``loss``, ``accuracy`` and optionally ``val_loss``,
        ``val_accuracy``.
    path : Path
        PNG to write.
    kept_epoch : int
        Zero-based epoch whose weights were kept (marked with a dashed line), -1 for none.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure = _figure(figsize=(10, 4))
    axes = figure.subplots(1, 2)
    for ax, metric, title in ((axes[0], "accuracy", "Accuracy"), (axes[1], "loss", "Loss")):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in history:
                epochs = range(1, len(history[key]) + 1)
                ax.plot(epochs, history[key], marker="o", label=label)
        if kept_epoch >= 0:
            ax.axvline(kept_epoch + 1, color="grey", linestyle="--", label="kept epoch")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.savefig(path, dpi=100)
    return figure


def plot_confusion(classes: Sequence[str], path: Path, *, songs, song_accuracy: float, chunks=None,
                   chunk_accuracy: Optional[float] = None):
    """Confusion matrices of the test set, per chunk (when given) and per song, side by side.

    Parameters
    ----------
    classes : sequence of str
    path : Path
        PNG to write.
    songs : array-like
        Song confusion matrix (rows: true genre, columns: predicted, in ``classes`` order).
    song_accuracy : float
        Its accuracy, for the title.
    chunks : array-like, optional
        Chunk confusion matrix (a whole-song model like the baseline has none).
    chunk_accuracy : float, optional
        Its accuracy, for the title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    panels = [(songs, "songs", song_accuracy)]
    if chunks is not None:
        panels.insert(0, (chunks, "chunks", chunk_accuracy))
    size = 4 + 0.4 * len(classes)
    figure = _figure(figsize=(len(panels) * size + 1, size))
    axes = np.atleast_1d(figure.subplots(1, len(panels)))
    for ax, (matrix, what, accuracy) in zip(axes, panels):
        display = ConfusionMatrixDisplay(np.array(matrix), display_labels=list(classes))
        display.plot(ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45)
        ax.set_title(f"Test {what}: accuracy {accuracy:.1%}")
    figure.savefig(path, dpi=100)
    return figure


def plot_reliability(metrics, path: Path):
    """Reliability diagram of the test songs: accuracy against confidence, before and after calibration.

    A calibrated model's bars reach the diagonal: of the songs it gives a top probability near 0.8,
    80 % are right.

    Parameters
    ----------
    metrics : genre_cnn.models.store.Metrics
        A model's test metrics, with ``reliability``, ``ece``, ``ece_uncalibrated`` and ``temperature``.
    path : Path
        PNG to write.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure = _figure(figsize=(10, 4.5))
    axes = figure.subplots(1, 2, sharey=True)
    panels = (("uncalibrated", f"the network's own (ECE {metrics.ece_uncalibrated:.3f})"),
              ("calibrated", f"temperature {metrics.temperature:.2f} (ECE {metrics.ece:.3f})"))
    for ax, (key, title) in zip(axes, panels):
        bins = metrics.reliability[key]
        n_bins = len(bins["songs"])
        centres = (np.arange(n_bins) + 0.5) / n_bins
        accuracy = np.array([np.nan if a is None else a for a in bins["accuracy"]], dtype=float)
        confidence = np.array([np.nan if c is None else c for c in bins["confidence"]], dtype=float)
        ax.bar(centres, np.nan_to_num(accuracy), width=1 / n_bins, edgecolor="black", alpha=0.7, label="accuracy")
        ax.plot(confidence, accuracy, "o", color="tab:red", label="mean confidence")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        for x, count in zip(centres, bins["songs"]):
            if count:
                ax.annotate(str(count), (x, 0.02), ha="center", fontsize=7)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("top probability (songs per bin at the bottom)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of songs right")
    axes[0].legend(loc="upper left")
    figure.savefig(path, dpi=100)
    return figure


def plot_song_views(
    y: np.ndarray,
    *,
    sr: int,
    title: str,
    cnn_input: np.ndarray,
    cnn_config,
    chunk_label: str,
    offset: float = 0.0,
    n_mfcc: int = 20,
    path: Path | None = None,
):
    """One figure with every classic view of a piece of audio, plus what the CNN sees.

    Panels: waveform, FFT magnitude spectrum (log frequency), STFT spectrogram in dB (log
    frequency), mel spectrogram in dB, MFCCs, and the log-mel chunk fed to the CNN.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio at ``sr``.
    sr : int
    title : str
        Figure title (usually the file name).
    cnn_input : np.ndarray [shape=(n_mels, n_frames)]
        The chunk's log-mel spectrogram from :func:`genre_cnn.signal.logmel.log_mel`.
    cnn_config : FeatureConfig
        The config that made ``cnn_input`` (for its axes).
    chunk_label : str
        Which chunk ``cnn_input`` is, for its panel title.
    offset : float
        Start of ``y`` in the file, in seconds (time axes show file time).
    n_mfcc : int
        Number of MFCCs.
    path : Path, optional
        PNG to write.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import librosa
    import librosa.display

    figure = _figure(figsize=(13, 15))
    axes = figure.subplots(6, 1)
    figure.suptitle(title)

    librosa.display.waveshow(y, sr=sr, ax=axes[0], offset=offset)
    axes[0].set(title="Waveform", xlabel="Time (s)", ylabel="Amplitude")

    spectrum = np.abs(np.fft.rfft(y))
    frequencies = np.fft.rfftfreq(len(y), 1 / sr)
    axes[1].plot(frequencies[1:], 20 * np.log10(np.maximum(spectrum[1:], 1e-10)), linewidth=0.5)
    axes[1].set_xscale("log")
    axes[1].set(title="Magnitude spectrum (FFT)", xlabel="Frequency (Hz)", ylabel="Magnitude (dB)",
                xlim=(20, sr / 2))
    axes[1].grid(alpha=0.3)

    stft_db = librosa.amplitude_to_db(np.abs(librosa.stft(y)), ref=np.max)
    image = librosa.display.specshow(stft_db, sr=sr, x_axis="time", y_axis="log", ax=axes[2])
    _shift_time(axes[2], offset)
    axes[2].set(title="STFT spectrogram (dB, log frequency)", xlabel="Time (s)", ylabel="Frequency (Hz)")
    figure.colorbar(image, ax=axes[2], format="%+2.0f dB")

    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr), ref=np.max)
    image = librosa.display.specshow(mel_db, sr=sr, x_axis="time", y_axis="mel", ax=axes[3])
    _shift_time(axes[3], offset)
    axes[3].set(title="Mel spectrogram (dB)", xlabel="Time (s)", ylabel="Frequency (Hz, mel scale)")
    figure.colorbar(image, ax=axes[3], format="%+2.0f dB")

    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc)
    image = librosa.display.specshow(mfcc, sr=sr, x_axis="time", ax=axes[4])
    _shift_time(axes[4], offset)
    axes[4].set(title=f"MFCC (first {n_mfcc})", xlabel="Time (s)", ylabel="MFCC")
    figure.colorbar(image, ax=axes[4])

    image = librosa.display.specshow(
        cnn_input, sr=cnn_config.sr, hop_length=cnn_config.hop_length, x_axis="time", y_axis="mel",
        fmin=cnn_config.fmin, fmax=cnn_config.fmax or cnn_config.sr / 2, ax=axes[5],
    )
    axes[5].set(title=f"What the CNN sees: log-mel of {chunk_label}", xlabel="Time in chunk (s)",
                ylabel="Frequency (Hz, mel scale)")
    figure.colorbar(image, ax=axes[5], format="%+2.0f dB")
    if path is not None:
        figure.savefig(path, dpi=90)
    return figure


def _shift_time(ax, offset: float) -> None:
    """Label a specshow time axis in file time when the excerpt starts at ``offset`` seconds."""
    if offset:
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value + offset:g}"))


def plot_class_balance(genres: Sequence[str], path: Path):
    """Bar chart of songs per genre."""
    names, counts = np.unique(np.asarray(genres), return_counts=True)
    figure = _figure(figsize=(max(5, 0.8 * len(names) + 2), 4))
    ax = figure.subplots()
    bars = ax.bar(names, counts, color="tab:blue")
    ax.bar_label(bars)
    ax.set(title="Songs per genre", xlabel="genre", ylabel="songs")
    figure.savefig(path, dpi=90)
    return figure


def plot_feature_histograms(values: np.ndarray, genres: Sequence[str], columns: Sequence[str], path: Path,
                            *, per_row: int = 6):
    """One histogram per feature, one colour per genre."""
    genres = np.asarray(genres)
    names = sorted(set(genres.tolist()))
    rows = int(np.ceil(len(columns) / per_row))
    figure = _figure(figsize=(3 * per_row, 2.4 * rows))
    axes = np.atleast_1d(figure.subplots(rows, per_row)).ravel()
    for ax, index in zip(axes, range(len(columns))):
        column = values[:, index]
        finite = column[np.isfinite(column)]
        bins = np.histogram_bin_edges(finite, bins=15) if len(finite) else 10
        for name in names:
            ax.hist(column[(genres == name) & np.isfinite(column)], bins=bins, alpha=0.5, label=name)
        ax.set_title(columns[index], fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes[len(columns):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    figure.savefig(path, dpi=70)
    return figure


def plot_correlation(values: np.ndarray, columns: Sequence[str], path: Path):
    """Heat map of the Pearson correlation between features (NaN-safe: pairwise complete)."""
    import numpy.ma as ma

    matrix = ma.corrcoef(ma.masked_invalid(values), rowvar=False).filled(np.nan)
    size = 4 + 0.18 * len(columns)
    figure = _figure(figsize=(size + 1, size))
    ax = figure.subplots()
    image = ax.imshow(matrix, cmap="coolwarm", vmin=-1, vmax=1)
    ax.set_xticks(range(len(columns)), columns, rotation=90, fontsize=6)
    ax.set_yticks(range(len(columns)), columns, fontsize=6)
    ax.set_title("Feature correlation (Pearson)")
    figure.colorbar(image, ax=ax, shrink=0.6)
    figure.savefig(path, dpi=80)
    return figure


def plot_pca(points: np.ndarray, genres: Sequence[str], explained: Sequence[float], path: Path):
    """2-D PCA scatter, one colour per genre."""
    genres = np.asarray(genres)
    figure = _figure(figsize=(6.5, 5))
    ax = figure.subplots()
    for name in sorted(set(genres.tolist())):
        chosen = genres == name
        ax.scatter(points[chosen, 0], points[chosen, 1], label=name, alpha=0.8)
    ax.set(title="Songs in the first two principal components",
           xlabel=f"PC1 ({explained[0]:.0%} of variance)", ylabel=f"PC2 ({explained[1]:.0%} of variance)")
    ax.legend()
    ax.grid(alpha=0.3)
    figure.savefig(path, dpi=90)
    return figure


def plot_timeline(timeline, path):
    """Stacked genre probabilities over time (one step per window), silent windows left blank.

    Parameters
    ----------
    timeline : genre_cnn.inference.timeline.Timeline
    path : Path or binary file
        PNG to write.

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure = _figure(figsize=(max(8.0, min(24.0, 0.15 * len(timeline.starts) + 6)), 3.5))
    ax = figure.subplots()
    probabilities = np.nan_to_num(timeline.probabilities, nan=0.0)
    # each window drawn as a step from its start to the next window's start (or its own end)
    edges = np.append(timeline.starts, timeline.ends[-1])
    x = np.repeat(edges, 2)[1:-1]
    layers = np.repeat(probabilities.T, 2, axis=1)
    scale, unit = (60.0, "minutes") if x[-1] >= 120 else (1.0, "seconds")
    ax.stackplot(x / scale, layers, labels=list(timeline.classes), alpha=0.9)
    ax.set_xlim(x[0] / scale, x[-1] / scale)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("genre probability")
    ax.set_title(f"{Path(timeline.path).name}: genre over time")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.savefig(path, dpi=100, format="png")
    return figure


def plot_recipe_comparison(recipes: Mapping[str, Mapping], path: Path) -> None:
    """Song accuracy (mean ± std over the folds) of each recipe, with its CPU time, as a bar chart.

    Parameters
    ----------
    recipes : mapping
        Recipe name -> ``{"song_accuracy": {"mean", "std"}, "cpu_seconds"}`` (see
        :func:`genre_cnn.training.cv.compare_recipes`).
    path : Path
        PNG to write.
    """
    names = list(recipes)
    means = [recipes[n]["song_accuracy"]["mean"] for n in names]
    stds = [recipes[n]["song_accuracy"]["std"] for n in names]
    figure = _figure(figsize=(1.6 + 1.3 * len(names), 3.6))
    axes = figure.add_subplot()
    bars = axes.bar(names, means, yerr=stds, capsize=5, color="#4c72b0")
    for bar, name, mean in zip(bars, names, means):
        axes.annotate(f"{mean:.2f}\n{recipes[name]['cpu_seconds']:.0f} s CPU",
                      (bar.get_x() + bar.get_width() / 2, 0.02),
                      ha="center", va="bottom", color="white", fontsize=8)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("song accuracy (mean ± std over folds)")
    axes.set_title("Recipes compared on the same folds")
    figure.savefig(path, dpi=90)


def plot_explanation(explanation, path) -> None:
    """A song's log-mel with the regions that pushed it towards its genre, above its genre per chunk.

    Parameters
    ----------
    explanation : genre_cnn.inference.occlusion.Explanation
    path : Path or binary file
        PNG to write.
    """
    log_mel, saliency = explanation.song_map()
    seconds = log_mel.shape[1] * explanation.seconds_per_frame
    figure = _figure(figsize=(max(8.0, min(20.0, 0.25 * seconds + 5)), 6.5))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.4]})
    extent = (0, seconds, 0, log_mel.shape[0])
    top.imshow(log_mel, origin="lower", aspect="auto", cmap="gray", extent=extent)
    pushed = np.clip(np.nan_to_num(saliency), 0, None)
    if pushed.max() > 0:
        overlay = top.imshow(np.ma.masked_less_equal(pushed, 0.25 * pushed.max()), origin="lower", aspect="auto",
                             cmap="autumn_r", alpha=0.6, extent=extent, vmin=0, vmax=pushed.max())
        figure.colorbar(overlay, ax=top, label=f"drop of P({explanation.genre}) when hidden", pad=0.01)
    ticks = np.linspace(0, log_mel.shape[0], 5).astype(int)
    top.set_yticks(ticks, [f"{explanation.band_edges_hz[t]:.0f}" for t in ticks])
    top.set_ylabel("frequency (Hz, mel scale)")
    top.set_title(f"{Path(explanation.path).name}: {explanation.genre} {explanation.probability:.2f} "
                  f"- what pushed it there ({explanation.method})")
    ends = explanation.starts + explanation.inputs.shape[2] * explanation.seconds_per_frame
    for index, genre in enumerate(explanation.classes):
        bottom.hlines(explanation.chunk_probabilities[:, index], explanation.starts, ends, linewidth=3,
                      label=genre, color=f"C{index % 10}")
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("P per chunk")
    bottom.set_xlabel("time (seconds)")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.savefig(path, dpi=100, format="png")


def plot_descriptor_explanation(explanation, path, *, top_k: int = 12) -> None:
    """A baseline's verdict: the descriptors whose loss lowers (or raises) the genre's probability most.

    Parameters
    ----------
    explanation : genre_cnn.inference.occlusion.DescriptorExplanation
    path : Path or binary file
    top_k : int
        Descriptors shown.
    """
    ranked = sorted(explanation.drops.items(), key=lambda item: -abs(item[1]))[:top_k][::-1]
    figure = _figure(figsize=(8.0, 0.35 * len(ranked) + 1.5))
    ax = figure.subplots()
    ax.barh([name for name, _ in ranked], [drop for _, drop in ranked],
            color=["C3" if drop > 0 else "C0" for _, drop in ranked])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"drop of P({explanation.genre}) when the descriptor is set to the training mean")
    ax.set_title(f"{Path(explanation.path).name}: {explanation.genre} {explanation.probability:.2f} "
                 f"({explanation.method})")
    figure.savefig(path, dpi=100, format="png")
