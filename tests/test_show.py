"""genre-cnn show: one PNG with labelled panels, and the CNN panel is the real CNN input."""

import numpy as np
import pytest
import soundfile
from click.testing import CliRunner
from conftest import synth_song

from genre_cnn.analysis.views import show_song
from genre_cnn.cli import main
from genre_cnn.config import FeatureConfig
from genre_cnn.signal.logmel import song_features


@pytest.fixture
def song(tmp_path):
    path = tmp_path / "tone song.wav"
    soundfile.write(path, synth_song("tones", 0, seconds=12, sr=22050), 22050)
    return path


def test_figure_has_every_panel_with_its_labels(song, tmp_path):
    out, figure = show_song(song, out=tmp_path / "views.png", offset=2, duration=5, chunk=1, n_mfcc=13)
    assert out.stat().st_size > 20_000
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == [
        "Waveform", "Magnitude spectrum (FFT)", "STFT spectrogram (dB, log frequency)", "Mel spectrogram (dB)",
        "MFCC (first 13)", "What the CNN sees: log-mel of chunk 1 (4.5–9.1 s)"]
    assert [ax.get_xlabel() for ax in panels] == ["Time (s)", "Frequency (Hz)"] + ["Time (s)"] * 3 + [
        "Time in chunk (s)"]
    assert panels[1].get_xscale() == "log"
    assert len(figure.axes) == 6 + 4  # four colour bars
    assert figure._suptitle.get_text() == "tone song.wav (2–7 s)"
    waveform = panels[0]
    assert waveform.get_xlim()[0] > 1.5 and waveform.get_xlim()[1] > 6.5  # file time, not excerpt time


def test_cnn_panel_shows_the_features_of_that_chunk(song, tmp_path):
    _, figure = show_song(song, out=tmp_path / "v.png", chunk=1)
    cnn_panel = [ax for ax in figure.axes if ax.get_title().startswith("What the CNN sees")][0]
    drawn = np.asarray(cnn_panel.collections[0].get_array()).reshape(128, -1)
    features, _, _ = song_features(song, FeatureConfig())
    np.testing.assert_allclose(drawn, features[1], rtol=1e-5)


def test_cli_and_its_errors(song, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["show", str(song), "--out", str(tmp_path / "a.png"), "--duration", "3"])
    assert result.exit_code == 0 and result.output == f"Figure written to {tmp_path / 'a.png'}\n"
    result = runner.invoke(main, ["show", str(song), "--chunk", "7", "--out", str(tmp_path / "b.png")])
    assert result.exit_code == 1
    assert result.output == f"Error: --chunk 7: {song} has 2 chunk(s), numbered 0 to 1\n"
    result = runner.invoke(main, ["show", str(song), "--offset", "60"])
    assert result.exit_code == 1 and "--offset 60 s is past the end of the audio (12.00 s)" in result.output
    result = runner.invoke(main, ["show", str(tmp_path / "missing.mp3")])
    assert result.exit_code == 1 and result.output == f"Error: {tmp_path / 'missing.mp3'}: does not exist\n"
