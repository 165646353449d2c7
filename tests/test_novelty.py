"""Unfamiliar songs: a model says when a song is unlike everything it learned from.

Every model saves the songs it learned from as points in its embedding space (the CNN's standardised
spectral summary, a baseline's standardised descriptors); a song's *novelty* is its distance to the
nearest of them in units of their own spacing, and above a threshold chosen on held-out songs the
verdict is flagged *unfamiliar*: "jazz" for a podcast or a sine sweep is not to be trusted.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import SR, synth_song, write_audio

from genre_cnn.cli import main
from genre_cnn.errors import AudioDecodeError, ModelError
from genre_cnn.inference.classifier import classify, load_classifier, open_classifier
from genre_cnn.models.novelty import NOVELTY_QUANTILE, Novelty, nearest_distances
from genre_cnn.models.store import ModelDir
from genre_cnn.training.novelty import MIN_NOVELTY_SONGS, fit_novelty


def foreign_sounds(folder):
    """Audio that is none of the tiny model's genres (tones, chirps, noise): a click train and a square wave."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(3 * SR) / SR
    clicks = np.zeros_like(t)
    clicks[:: SR // 7] = 1.0
    square = np.sign(np.sin(2 * np.pi * 55 * t)) * 0.5
    return [write_audio(folder / "clicks.wav", clicks.astype(np.float32)),
            write_audio(folder / "square.wav", square.astype(np.float32))]


def test_novelty_is_about_one_for_points_like_the_reference_and_large_far_from_it():
    rng = np.random.default_rng(0)
    novelty = fit_novelty(rng.normal(size=(200, 8)), layer="test")
    assert (novelty.fitted_on, novelty.songs) == ("training songs, each against the others", 200)
    like = novelty.score(rng.normal(size=(100, 8)))
    far = novelty.score(rng.normal(loc=6.0, size=(20, 8)))
    assert 0.7 < np.median(like) < 1.4
    assert far.min() > 3 * novelty.threshold
    assert np.mean(like > novelty.threshold) < 0.15  # about 1 - NOVELTY_QUANTILE of songs like the known ones


def test_too_few_songs_give_no_novelty_reference():
    rng = np.random.default_rng(1)
    assert fit_novelty(rng.normal(size=(MIN_NOVELTY_SONGS - 1, 4)), layer="test") is None
    assert fit_novelty(np.ones((40, 4)), layer="test") is None  # all alike: no spacing to measure in
    assert fit_novelty(rng.normal(size=(MIN_NOVELTY_SONGS, 4)), layer="test") is not None


def test_a_big_dataset_keeps_a_subset_of_its_songs_as_the_reference(monkeypatch):
    from genre_cnn.training import novelty as training_novelty

    monkeypatch.setattr(training_novelty, "MAX_REFERENCE_SONGS", 50)
    rng = np.random.default_rng(2)
    songs = rng.normal(size=(400, 3))
    novelty = fit_novelty(songs, layer="test")
    assert len(novelty.reference) == 50
    assert 0.5 < np.median(novelty.score(rng.normal(size=(100, 3)))) < 2.0  # still in units of its spacing


def test_a_saved_reference_keeps_its_number_of_neighbours(familiar_model, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(familiar_model, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["novelty"]["k"] == 5
    config["novelty"]["k"] = 1
    (model_dir / "config.json").write_text(json.dumps(config))
    assert ModelDir(model_dir).read_novelty().k == 1


def test_kinds_whose_training_shapes_the_embedding_get_no_reference():
    from genre_cnn.config import TrainConfig
    from genre_cnn.kinds.musicnn import MusicnnHead, MusicnnOptions

    fine_tuned = TrainConfig(kind="musicnn", options=MusicnnOptions(fine_tune=True))
    assert MusicnnHead().embedding_layer(None, fine_tuned) is None
    assert MusicnnHead().embedding_layer(None, TrainConfig(kind="musicnn", options=MusicnnOptions())) == "musicnn"


def test_nearest_distances_leave_each_point_out_of_its_own_neighbours():
    points = np.array([[0.0], [1.0], [3.0]])
    np.testing.assert_allclose(nearest_distances(points, points, k=1, leave_one_out=True), [1, 1, 2])
    np.testing.assert_allclose(nearest_distances(np.array([[10.0]]), points, k=2), [(7 + 9) / 2])


def test_a_fit_saves_the_training_songs_and_classify_flags_foreign_audio(familiar_model, tmp_path):
    folder = ModelDir(familiar_model)
    novelty = folder.read_novelty()
    assert novelty.layer == "standardise_summary" and len(novelty.reference) == 24  # training + validation songs
    assert folder.read_config()["novelty"]["training_songs"] == 24
    assert novelty.fitted_on == "training songs, each against the others"
    new_songs = [write_audio(tmp_path / f"{genre}_new.mp3", synth_song(genre, 9, seconds=3.0))  # unseen songs
                 for genre in ("tones", "chirps", "noise")]
    verdicts = classify([*new_songs, *foreign_sounds(tmp_path)], model=folder.path)
    known, foreign = verdicts[:3], verdicts[3:]
    assert all(v.novelty is not None and v.unfamiliar is not None for v in verdicts)
    assert max(v.novelty for v in known) < min(v.novelty for v in foreign)
    assert all(v.unfamiliar for v in foreign)


def test_keras_and_litert_give_the_same_novelty(familiar_model, trained):
    song = trained["tracks"] / "chirps" / "chirps_1.mp3"
    keras = load_classifier(familiar_model, backend="keras").classify_file(song)
    litert = load_classifier(familiar_model, backend="litert").classify_file(song)
    # the folder's model.tflite has int8 weights (the CNN's): within 2 %, the flag the same
    assert keras.novelty == pytest.approx(litert.novelty, rel=0.02)
    assert keras.unfamiliar == litert.unfamiliar


def test_classify_prints_the_flag_and_json_carries_the_novelty(familiar_model, tmp_path):
    clicks = foreign_sounds(tmp_path)[0]
    model = str(familiar_model)
    text = CliRunner().invoke(main, ["classify", str(clicks), "--model", model])
    assert text.exit_code == 0, text.output
    assert "unfamiliar: not like the songs the model learned from (novelty" in text.output
    answer = json.loads(CliRunner().invoke(main, ["classify", str(clicks), "--model", model, "--json"]).stdout)
    assert answer[0]["unfamiliar"] is True and answer[0]["novelty"] > 1


def test_evaluate_counts_the_unfamiliar_songs_and_how_many_were_wrong(familiar_model, trained, tmp_path):
    from genre_cnn.analysis.evaluate import evaluate_model

    songs = tmp_path / "songs"
    shutil.copytree(trained["tracks"] / "tones", songs / "tones")
    foreign_sounds(songs / "clicks")  # a genre the model does not know: always wrong
    result = evaluate_model(familiar_model, songs)
    flagged = result["unfamiliar"]
    assert flagged["unknown_genre"] == 2 and flagged["songs"] >= 2 and flagged["wrong"] >= 2
    assert flagged["share"] == pytest.approx(flagged["songs"] / 7)
    assert flagged["max_novelty"] == pytest.approx(ModelDir(familiar_model).read_novelty().threshold, rel=1e-5)
    assert evaluate_model(trained["result"].model_dir, songs)["unfamiliar"] is None  # a model without novelty


def test_a_model_fitted_before_novelty_still_classifies_and_never_flags(familiar_model, trained, tmp_path):
    model_dir = tmp_path / "old"
    shutil.copytree(familiar_model, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    del config["novelty"]
    (model_dir / "config.json").write_text(json.dumps(config))
    (model_dir / "novelty.npz").unlink()
    (model_dir / "model.tflite").unlink()  # an old export gives the genres only
    from genre_cnn.inference.export import export_model

    export_model(model_dir, fmt="litert")
    verdict = classify([trained["tracks"] / "tones" / "tones_0.mp3"], model=model_dir)[0]
    assert verdict.ok and verdict.novelty is None and verdict.unfamiliar is None


def test_a_damaged_novelty_reference_is_refused_with_the_fix(familiar_model, tmp_path):
    model_dir = tmp_path / "damaged"
    shutil.copytree(familiar_model, model_dir)
    (model_dir / "novelty.npz").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match=r"novelty reference \(novelty.npz\) is missing or damaged; refit"):
        load_classifier(model_dir)


def test_the_folders_own_litert_file_gives_genres_then_the_embedding_and_a_re_export_keeps_it(familiar_model, tmp_path,
                                                                                              trained):
    from genre_cnn.inference.export import export_model
    from genre_cnn.inference.runners import LiteRTRunner

    model_dir = tmp_path / "model"
    shutil.copytree(familiar_model, model_dir)
    song = trained["tracks"] / "noise" / "noise_2.mp3"
    chunks = np.concatenate(list(load_classifier(model_dir).network_inputs(song)))
    raw = LiteRTRunner(model_dir / "model.tflite").predict(chunks)
    assert raw.shape[1] == 3 + ModelDir(model_dir).read_novelty().dim
    assert export_model(model_dir, fmt="litert") == model_dir / "model.tflite"  # re-export in place
    np.testing.assert_allclose(LiteRTRunner(model_dir / "model.tflite").predict(chunks), raw, atol=1e-5)
    deploy = export_model(model_dir, fmt="litert", out=tmp_path / "deploy.tflite")  # elsewhere: the genres alone
    assert LiteRTRunner(deploy).predict(chunks).shape[1] == 3


def test_a_litert_file_without_the_embedding_is_refused_as_a_mixed_folder(familiar_model, tmp_path):
    from genre_cnn.inference.export import export_model

    model_dir = tmp_path / "mixed"
    shutil.copytree(familiar_model, model_dir)
    export_model(model_dir, fmt="litert", out=tmp_path / "genres-only.tflite")
    shutil.copy(tmp_path / "genres-only.tflite", model_dir / "model.tflite")
    with pytest.raises(ModelError, match="mixes two models"):
        load_classifier(model_dir, backend="litert")


def test_a_reference_without_spacing_is_refused_as_damaged():
    assert 0.9 <= NOVELTY_QUANTILE < 1.0
    with pytest.raises(ModelError, match="refit the model"):
        Novelty(layer="x", center=np.zeros(2), scale=np.ones(2), reference=np.zeros((3, 2)), spacing=0.0,
                threshold=1.0)


# --- embed_file: a song's verdict and embedding, what monitor profiles songs by ------------------------

def test_every_kind_embeds_a_song_with_the_verdict_classify_gives_it(familiar_model, trained, tmp_path):
    """A network with a novelty reference (its own runner gives the embedding in the same pass), one without
    (its Keras network, with the embedding layer as a second output) and a baseline (its standardised
    descriptors) each give the song the probabilities classify gives it, and a finite embedding."""
    from genre_cnn.data.descriptor_table import write_descriptor_table
    from genre_cnn.kinds.baseline import fit_baseline

    table, _, _ = write_descriptor_table(trained["tracks"], out=tmp_path / "features.csv", workers=1)
    fit_baseline(table, out=tmp_path / "baseline", folds=2, log=lambda message: None)
    song = trained["tracks"] / "chirps" / "chirps_0.mp3"
    dims = {}
    for name, model in (("novelty", familiar_model), ("keras", trained["result"].model_dir),
                        ("baseline", tmp_path / "baseline")):
        classifier = open_classifier(model)
        seen, prediction = classifier.embed_file(song), classifier.classify_file(song)
        np.testing.assert_allclose(seen.probabilities, [prediction.probabilities[c] for c in classifier.classes],
                                   atol=1e-5)
        assert seen.n_chunks == prediction.n_chunks and np.isfinite(seen.embedding).all()
        dims[name] = seen.embedding.shape
        if classifier.novelty is not None:  # the point the unfamiliar flag measures
            assert classifier.novelty.score(seen.embedding)[0] == pytest.approx(prediction.novelty, rel=1e-4)
    assert open_classifier(familiar_model).novelty is not None
    assert open_classifier(trained["result"].model_dir).novelty is None
    assert dims["novelty"] == dims["keras"]  # both the wide head's spectral summary
    with pytest.raises(AudioDecodeError):
        open_classifier(familiar_model).embed_file(tmp_path / "features.csv")
    with pytest.raises(AudioDecodeError, match="no chunk to embed"):
        open_classifier(familiar_model).embed_inputs([])


def test_a_network_without_the_embedding_layer_is_refused_with_the_fix(trained, monkeypatch):
    from genre_cnn.kinds.cnn import CnnClassifier

    classifier = open_classifier(trained["result"].model_dir)  # no novelty reference: embeds through Keras
    monkeypatch.setattr(CnnClassifier, "embedding_layer", ("no_such_layer",))
    song = trained["tracks"] / "chirps" / "chirps_0.mp3"
    with pytest.raises(ModelError, match=r"the network has none of the layers no_such_layer to embed songs with; "
                                         r"refit the model"):
        classifier.embed_file(song)
    monkeypatch.setattr(CnnClassifier, "embedding_layer", "")  # a kind without one: the verdict, no embedding
    seen = classifier.embed_file(song)
    assert seen.embedding.shape == (0,) and seen.probabilities.argmax() == classifier.classes.index(
        classifier.classify_file(song).genre)
