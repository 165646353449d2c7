"""Figures (the only module that imports matplotlib): history, confusion matrices, audio views."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["plot_history", "plot_confusion", "plot_song_views"]


def _figure(**options):
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    return Figure(layout="constrained", **options)


def plot_history(history: Mapping[str, Sequence[float]], path: Path, *, best_epoch: int = -1):
    """Accuracy and loss per epoch, train and validation, with the kept epoch marked.

    Parameters
    ----------
    history : mapping
        Keras ``History.history``: ``loss``, ``accuracy`` and optionally ``val_loss``,
        ``val_accuracy``.
    path : Path
        PNG to write.
    best_epoch : int
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
        if best_epoch >= 0:
            ax.axvline(best_epoch + 1, color="grey", linestyle="--", label="kept epoch")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.savefig(path, dpi=100)
    return figure


def plot_confusion(metrics: Mapping, classes: Sequence[str], path: Path):
    """Confusion matrices of the test set, per chunk and per song, side by side.

    Parameters
    ----------
    metrics : mapping
        Output of :func:`genre_cnn.metrics.evaluate_chunks`.
    classes : sequence of str
    path : Path
        PNG to write.
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    size = 4 + 0.4 * len(classes)
    figure = _figure(figsize=(2 * size + 1, size))
    axes = figure.subplots(1, 2)
    for ax, key, what, accuracy in (
        (axes[0], "confusion_chunks", "chunks", metrics["chunk_accuracy"]),
        (axes[1], "confusion_songs", "songs", metrics["song_accuracy"]),
    ):
        display = ConfusionMatrixDisplay(np.array(metrics[key]), display_labels=list(classes))
        display.plot(ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45)
        ax.set_title(f"Test {what}: accuracy {accuracy:.1%}")
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
        The chunk's log-mel spectrogram from :func:`genre_cnn.features.log_mel`.
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
