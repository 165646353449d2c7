"""fit --backbone musicnn: a head on the pretrained backbone, frozen or fine-tuned; embed."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("tensorflow")

from genre_cnn.cli import main  # noqa: E402
from genre_cnn.config import TrainConfig  # noqa: E402
from genre_cnn.data.dataset import load_dataset  # noqa: E402
from genre_cnn.errors import ConfigError, DatasetError  # noqa: E402
from genre_cnn.inference.classifier import classify  # noqa: E402
from genre_cnn.kinds import configured  # noqa: E402
from genre_cnn.training.fit import fit  # noqa: E402

QUIET = dict(verbose=0, log=lambda message: None)


@pytest.fixture(scope="module")
def dataset(trained, tmp_path_factory):
    """A copy of the shared tiny dataset (the backbone caches its patches inside it)."""
    copy = tmp_path_factory.mktemp("transfer") / "dataset"
    shutil.copytree(trained["dataset"], copy, ignore=shutil.ignore_patterns("musicnn"))  # without another's cache
    return copy


@pytest.fixture(scope="module")
def frozen(dataset, tmp_path_factory):
    from genre_cnn.training import novelty

    out = tmp_path_factory.mktemp("frozen")
    messages = []
    shipped, novelty.MIN_NOVELTY_SONGS = novelty.MIN_NOVELTY_SONGS, 1
    try:  # a novelty reference of the tiny set's 12 songs (a real fit needs 20)
        result = fit(dataset, config=TrainConfig(epochs=3, batch_size=4, kind="musicnn"), model_dir=out / "m",
                     models_root=out / "models", verbose=0, log=messages.append)
    finally:
        novelty.MIN_NOVELTY_SONGS = shipped
    return result, messages


def test_frozen_backbone_trains_a_head_and_records_it(frozen, dataset, trained):
    result, messages = frozen
    assert any("Computing the musicnn input of 15 songs" in m for m in messages)
    config = json.loads((result.model_dir / "config.json").read_text())["train_config"]
    assert (config["kind"], config["options"]) == ("musicnn", {"fine_tune": False})
    original = load_dataset(dataset)
    assert {s["song"] for s in result.metrics.songs} == set(original.songs[original.indices("test")])
    assert (result.model_dir / "history.png").is_file() and (result.model_dir / "confusion.png").is_file()
    song = trained["tracks"] / "chirps" / "chirps_1.mp3"
    lite, keras_route = (classify([song], model=result.model_dir, backend=b)[0] for b in ("litert", "keras"))
    assert lite.n_chunks == 1 and lite.genre == keras_route.genre
    np.testing.assert_allclose(list(lite.probabilities.values()), list(keras_route.probabilities.values()),
                               atol=1e-4)


def test_a_backbone_model_flags_unfamiliar_songs_in_the_backbones_embedding_space(frozen, trained, tmp_path):
    from test_novelty import foreign_sounds

    from genre_cnn.models.store import ModelDir

    result, _ = frozen
    novelty = ModelDir(result.model_dir).read_novelty()
    assert (novelty.layer, novelty.dim, len(novelty.reference)) == ("musicnn", 200, 12)
    song = trained["tracks"] / "chirps" / "chirps_1.mp3"
    lite, keras_route = (classify([song], model=result.model_dir, backend=b)[0] for b in ("litert", "keras"))
    assert lite.novelty == pytest.approx(keras_route.novelty, rel=1e-3) and lite.unfamiliar == keras_route.unfamiliar
    known = classify([trained["tracks"]], model=result.model_dir)
    foreign = classify(foreign_sounds(tmp_path), model=result.model_dir)
    assert min(v.novelty for v in foreign) > np.median([v.novelty for v in known])


def test_a_backbone_model_is_explained_through_its_own_front_end(frozen, trained, tmp_path):
    from genre_cnn.analysis.explain import explain
    from genre_cnn.inference.classifier import open_classifier
    from genre_cnn.inference.occlusion import deletion_check

    result, _ = frozen
    classifier = open_classifier(result.model_dir)
    song = trained["tracks"] / "chirps" / "chirps_1.mp3"
    explanation = explain(song, model=classifier, out=tmp_path / "why.png")
    assert explanation.inputs.shape[1:] == (96, 187)  # musicnn's bands by its patch's frames
    assert explanation.genre == classifier.classify_file(song).genre
    assert np.isfinite(deletion_check(classifier, explanation)).all()
    assert (tmp_path / "why.png").read_bytes()[:4] == b"\x89PNG"


def test_the_factory_opens_a_backbone_model_as_a_musicnn_classifier(frozen):
    from genre_cnn.inference.classifier import open_classifier
    from genre_cnn.inference.prediction import Classifier
    from genre_cnn.kinds.musicnn import MusicnnClassifier

    result, _ = frozen
    assert json.loads((result.model_dir / "config.json").read_text())["kind"] == "musicnn"
    classifier = open_classifier(result.model_dir)
    assert isinstance(classifier, MusicnnClassifier) and isinstance(classifier, Classifier)
    assert (classifier.kind, classifier.makes_timelines, classifier.input_shape(classifier.feature_config)) == \
        ("musicnn", False, (187, 96))


def test_patches_and_embeddings_are_computed_once(frozen, dataset, tmp_path):
    source = dataset / "musicnn" / "source.json"
    before = source.stat().st_mtime_ns
    messages = []
    fit(dataset, config=TrainConfig(epochs=1, batch_size=4, kind="musicnn"), model_dir=tmp_path / "m",
        models_root=tmp_path / "models", verbose=0, log=messages.append)
    assert source.stat().st_mtime_ns == before and not any("Computing" in m for m in messages)
    assert json.loads(source.read_text())["patches"] == 15


def test_fine_tuning_changes_only_the_top_layers(frozen, dataset, tmp_path):
    import keras

    from genre_cnn.models.musicnn import load_musicnn

    result = fit(dataset, config=TrainConfig(epochs=1, batch_size=4, kind="musicnn", options={"fine_tune": True}),
                 model_dir=tmp_path / "m", models_root=tmp_path / "models", **QUIET)
    tuned = keras.saving.load_model(result.model_dir / "model.keras").get_layer("musicnn")
    original = load_musicnn()
    for name, should_change in (("mid3_conv", True), ("penultimate_dense", True), ("timbral_74_conv", False),
                                ("input_bn", False), ("penultimate_bn", False)):
        changed = any(not np.array_equal(a, b) for a, b in zip(tuned.get_layer(name).get_weights(),
                                                                original.get_layer(name).get_weights()))
        assert changed == should_change, name


def test_cross_validation_with_the_backbone(frozen, dataset, tmp_path):
    from genre_cnn.training.cv import cross_validate

    result = cross_validate(dataset, config=TrainConfig(epochs=2, batch_size=4, kind="musicnn"), folds=3,
                            val_fraction=0.2, out=tmp_path / "cv", log=lambda m: None)
    tested = sorted(song for fold in result.folds for song in fold["test_songs"])
    assert tested == sorted(set(load_dataset(dataset).songs))
    assert json.loads((tmp_path / "cv" / "cv.json").read_text())["summary"]["train_config"]["kind"] == "musicnn"


def test_embed_writes_song_and_patch_embeddings(trained, tmp_path):
    broken = tmp_path / "broken.mp3"
    broken.write_text("not audio")
    runner = CliRunner()
    result = runner.invoke(main, ["embed", str(trained["tracks"] / "tones"), str(broken), "--out",
                                  str(tmp_path / "e.npz"), "--patches"])
    assert result.exit_code == 1 and "broken.mp3" in result.stderr
    assert result.stdout.startswith("5 song(s), 5 patch(es) embedded")
    saved = np.load(tmp_path / "e.npz")
    assert saved["embeddings"].shape == (5, 200) and saved["paths"][0].endswith("tones_0.mp3")
    first = saved["patch_song"] == 0
    np.testing.assert_allclose(saved["embeddings"][0], saved["patch_embeddings"][first].mean(axis=0), rtol=1e-5)


def test_backbone_option_mistakes(tmp_path):
    with pytest.raises(ConfigError, match="fine_tune=True is an option of the musicnn kind, not of the cnn kind"):
        configured(TrainConfig(options={"fine_tune": True}))
    with pytest.raises(ConfigError, match="augment='mixup' is an option of the cnn kind, not of the musicnn kind"):
        configured(TrainConfig(kind="musicnn", options={"augment": "mixup"}))
    with pytest.raises(ConfigError, match="kind='vggish' is not a model kind fit trains; choose one of cnn, musicnn"):
        configured(TrainConfig(kind="vggish"))
    runner = CliRunner()  # the command line refuses them before reading the dataset, in its own words
    cnn_only = "only applies without --backbone"
    for options, message in ((["--fine-tune"], "--freeze/--fine-tune only applies with --backbone musicnn"),
                             (["--backbone", "musicnn", "--augment", "mixup"], f"--augment {cnn_only}"),
                             (["--backbone", "musicnn", "--no-crop"], f"--crop/--no-crop {cnn_only}"),
                             (["--backbone", "musicnn", "--mixed-precision"], f"--mixed-precision {cnn_only}")):
        result = runner.invoke(main, ["fit", "--data", str(tmp_path / "nothing"), *options])
        assert result.exit_code == 2 and message in result.output, result.output
    for options in (["--freeze"], ["--backbone", "musicnn", "--freeze"], ["--backbone", "musicnn", "--fine-tune"]):
        result = runner.invoke(main, ["fit", "--data", str(tmp_path / "nothing"), *options])
        assert result.exit_code == 1 and "nothing" in result.output, result.output  # accepted: the dataset is missing
    assert not (tmp_path / "nothing").exists()


def test_backbone_needs_the_songs_audio(trained, tmp_path):
    shutil.copytree(trained["dataset"], tmp_path / "ds", ignore=shutil.ignore_patterns("musicnn"))
    summary = json.loads((tmp_path / "ds" / "summary.json").read_text())
    summary["tracks_dir"] = str(tmp_path / "gone")
    (tmp_path / "ds" / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(DatasetError, match="computes its own input from the songs' audio, but 15 of them are gone"):
        fit(tmp_path / "ds", config=TrainConfig(epochs=1, kind="musicnn"), model_dir=tmp_path / "m", **QUIET)


def test_timeline_refuses_a_backbone_model(frozen, tmp_path, trained):
    result, _ = frozen
    runner = CliRunner()
    out = runner.invoke(main, ["classify", str(trained["tracks"] / "tones" / "tones_0.mp3"), "--model",
                               str(result.model_dir), "--timeline", "--out", str(tmp_path)])
    assert out.exit_code == 1 and "timelines work with CNN models trained from scratch" in out.output


def test_backbone_model_exports_give_the_same_probabilities(frozen, dataset, tmp_path):
    import tensorflow as tf

    from genre_cnn.inference.classifier import load_classifier
    from genre_cnn.inference.export import export_model
    from genre_cnn.inference.runners import LiteRTRunner

    result, _ = frozen
    patches = np.load(dataset / "musicnn" / "patches.npy")[:4]
    expected = load_classifier(result.model_dir, backend="keras").predict_chunks(patches)
    served = tf.saved_model.load(str(export_model(result.model_dir, fmt="saved_model", out=tmp_path / "sm")))
    np.testing.assert_allclose(served.serve(tf.constant(patches)).numpy(), expected, atol=1e-5)
    lite = export_model(result.model_dir, fmt="litert", out=tmp_path / "m.tflite")
    np.testing.assert_allclose(LiteRTRunner(lite).predict(patches), expected, atol=1e-4)
