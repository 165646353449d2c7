"""Why a song got its genre: genre-cnn explain SONG --out why.png.

A CNN's explanation is an occlusion map (each patch of the log-mel covered in turn, the drop of the
genre's probability measured); a baseline's, the descriptors whose loss lowers it most.
"""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from genre_cnn.analysis.explain import explain
from genre_cnn.cli import main
from genre_cnn.errors import ConfigError
from genre_cnn.inference.classifier import open_classifier
from genre_cnn.inference.occlusion import deletion_check, explain_song


@pytest.fixture(scope="module")
def classifier(trained):
    return open_classifier(trained["result"].model_dir)


def test_the_map_covers_the_song_and_explains_the_chosen_genre(classifier, trained):
    song = trained["tracks"] / "chirps" / "chirps_2.mp3"
    explanation = explain_song(classifier, song)
    verdict = classifier.classify_file(song)
    assert explanation.genre == verdict.genre
    assert explanation.probability == pytest.approx(verdict.probabilities[verdict.genre], abs=1e-5)
    assert explanation.saliency.shape == explanation.inputs.shape == (3, 16, explanation.inputs.shape[2])
    log_mel, saliency = explanation.song_map()
    assert log_mel.shape == saliency.shape and log_mel.shape[1] >= 3 * explanation.inputs.shape[2] - 1
    regions = explanation.top_regions(3)
    assert [r["drop"] for r in regions] == sorted([r["drop"] for r in regions], reverse=True)
    assert all(0 <= r["start"] < r["end"] <= 3.01 and r["low_hz"] < r["high_hz"] for r in regions)


def test_hiding_the_most_salient_cells_costs_more_than_hiding_random_ones(classifier, trained):
    """The map means something: on most songs, covering its top 10 % of cells lowers the genre's
    probability more than covering 10 % random cells."""
    wins = []
    for genre in ("tones", "chirps", "noise"):
        for index in range(5):
            explanation = explain_song(classifier, trained["tracks"] / genre / f"{genre}_{index}.mp3")
            salient, random = deletion_check(classifier, explanation, fraction=0.1)
            wins.append(salient > random)
    assert sum(wins) > len(wins) / 2, wins


def test_explain_writes_the_picture_and_prints_the_telling_regions(trained, tmp_path):
    out = tmp_path / "why.png"
    song = trained["tracks"] / "noise" / "noise_4.mp3"
    result = CliRunner().invoke(main, ["explain", str(song), "--model", str(trained["result"].model_dir),
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "(occlusion)" in result.output and "most telling regions" in result.output
    assert " Hz " in result.output and f"picture: {out}" in result.output
    assert out.stat().st_size > 10_000 and out.read_bytes()[:4] == b"\x89PNG"


def test_another_genre_can_be_explained_and_an_unknown_one_is_refused(classifier, trained, tmp_path):
    song = trained["tracks"] / "tones" / "tones_1.mp3"
    assert explain(song, model=classifier, out=tmp_path / "noise.png", genre="noise").genre == "noise"
    with pytest.raises(ConfigError, match=r"genre='jazz' is not one of the model's genres \(chirps, noise, tones\)"):
        explain(song, model=classifier, out=tmp_path / "jazz.png", genre="jazz")
    assert not (tmp_path / "jazz.png").exists()


def test_bad_input_gets_one_line_and_writes_nothing(trained, tmp_path):
    model = str(trained["result"].model_dir)
    missing = CliRunner().invoke(main, ["explain", str(tmp_path / "nope.mp3"), "--model", model,
                                        "--out", str(tmp_path / "a.png")])
    assert missing.exit_code != 0 and "nope.mp3: no such file" in missing.output
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"\xff\xfb" + bytes(300))
    result = CliRunner().invoke(main, ["explain", str(broken), "--model", model, "--out", str(tmp_path / "b.png")])
    assert result.exit_code != 0 and "broken.mp3" in result.output
    song = str(trained["tracks"] / "tones" / "tones_1.mp3")
    not_png = CliRunner().invoke(main, ["explain", song, "--model", model, "--out", str(tmp_path / "c.jpg")])
    assert not_png.exit_code != 0 and "ending in .png" in not_png.output
    folder = CliRunner().invoke(main, ["explain", str(trained["tracks"]), "--model", model, "--out",
                                       str(tmp_path / "d.png")])
    assert folder.exit_code != 0 and "is a folder; name one song" in folder.output
    (tmp_path / "a-file").write_text("")
    unwritable = CliRunner().invoke(main, ["explain", song, "--model", model, "--out",
                                           str(tmp_path / "a-file" / "e.png")])
    assert unwritable.exit_code != 0 and "cannot be written" in unwritable.output
    assert "Traceback" not in unwritable.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "broken.mp3"]


def test_a_verdict_no_region_moves_says_so(classifier, trained):
    from genre_cnn.report import format_explanation

    explanation = explain_song(classifier, trained["tracks"] / "tones" / "tones_1.mp3")
    flat = type(explanation)(**{**explanation.__dict__, "saliency": np.zeros_like(explanation.saliency)})
    text = format_explanation(flat, out="why.png")
    assert "no region's loss moves tones by 0.001 or more" in text and " Hz " not in text


def test_classify_explain_names_songs_of_one_name_apart(trained, tmp_path):
    import shutil

    songs = tmp_path / "songs"
    for folder, name in (("a", "song.mp3"), ("b", "song.mp3"), ("c", "song-1.mp3")):
        (songs / folder).mkdir(parents=True)
        shutil.copy(trained["tracks"] / "tones" / "tones_1.mp3", songs / folder / name)
    result = CliRunner().invoke(main, ["classify", str(songs), "--model", str(trained["result"].model_dir),
                                       "--explain", str(tmp_path / "why")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "why").iterdir())) == 3


def test_classify_explain_draws_one_picture_per_song(trained, tmp_path):
    folder = tmp_path / "why"
    result = CliRunner().invoke(main, ["classify", str(trained["tracks"] / "noise"), "--model",
                                       str(trained["result"].model_dir), "--explain", str(folder)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == [f"noise_{i}.why.png" for i in range(5)]
    assert result.output.count("  why: ") == 5


def test_a_baseline_is_explained_by_its_descriptors(trained, tmp_path):
    from genre_cnn.data.descriptor_table import write_descriptor_table
    from genre_cnn.kinds.baseline import fit_baseline

    table, _, _ = write_descriptor_table(trained["tracks"], out=tmp_path / "features.csv", workers=1)
    fit_baseline(table, out=tmp_path / "baseline", folds=2, log=lambda message: None)
    out = tmp_path / "why.png"
    explanation = explain(trained["tracks"] / "chirps" / "chirps_0.mp3", model=tmp_path / "baseline", out=out)
    assert explanation.method == "descriptor occlusion" and len(explanation.drops) > 10
    drops = list(explanation.drops.values())
    assert drops == sorted(drops, reverse=True) and np.isfinite(drops).all()
    assert out.read_bytes()[:4] == b"\x89PNG"
    result = CliRunner().invoke(main, ["explain", str(trained["tracks"] / "chirps" / "chirps_0.mp3"), "--model",
                                       str(tmp_path / "baseline"), "--out", str(out)])
    assert result.exit_code == 0 and "most telling descriptors" in result.output
