"""The demo on the real music shipped in tracks/: the whole product, as a new user runs it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

TRACKS = Path(__file__).resolve().parents[1] / "tracks"


@pytest.mark.slow
def test_demo_trains_on_the_real_tracks_and_beats_chance(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "genre_cnn", "demo", str(TRACKS), "--workers", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[2].split() == ["chiptune", "6", "2", "2", "36", "12", "12"]
    assert f"  {TRACKS / 'licenses'}: no audio files, not a genre (skipped)" in result.stdout
    assert "Classifying the held-out test songs (never seen in training):" in result.stdout

    metrics = json.loads((tmp_path / "models" / "demo" / "metrics.json").read_text())
    assert metrics["test_songs"] == 6 and metrics["test_chunks"] == 36
    assert metrics["song_accuracy"] >= 0.5 > metrics["chance"]
    assert f"  song accuracy:  {metrics['song_accuracy']:.1%}" in result.stdout
    assert (tmp_path / "models" / "latest").read_text().strip() == "demo"
