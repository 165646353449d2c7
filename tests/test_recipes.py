"""The training recipes: the default CNN learns, random crops, distillation from musicnn, recipes compared."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_CLI_OPTIONS, write_tracks

from genre_cnn.cli import main
from genre_cnn.config import TrainConfig
from genre_cnn.data.build import build_dataset
from genre_cnn.data.dataset import load_dataset
from genre_cnn.errors import ConfigError
from genre_cnn.kinds import configured
from genre_cnn.kinds.cnn import CnnOptions
from genre_cnn.training.distill import chunk_teacher_probabilities, cross_fitted_probabilities, tempered
from genre_cnn.training.fit import fit
from genre_cnn.training.scratch import evaluation_batches, training_batches


@pytest.fixture(scope="module")
def separable(tmp_path_factory):
    """Three clearly different generated genres, 6 songs of 4 s each, 1 s chunks."""
    from genre_cnn.config import FeatureConfig

    root = tmp_path_factory.mktemp("separable")
    tracks = write_tracks(root / "tracks", songs=6, seconds=4.0, fmt="WAV")
    config = FeatureConfig(sr=8000, chunk_samples=8000, hop_samples=8000, n_fft=256, hop_length=128, n_mels=16)
    build_dataset(tracks, out=root / "dataset", config=config, workers=1, val_fraction=0.17, test_fraction=0.17)
    return root


def test_the_default_recipe_learns_a_separable_problem_in_a_few_epochs(separable):
    result = fit(separable / "dataset", config=TrainConfig(epochs=6, batch_size=8), model_dir=separable / "model",
                 verbose=0, log=lambda message: None)
    history = json.loads((result.model_dir / "history.json").read_text())
    assert history["accuracy"][-1] >= 0.9, history["accuracy"]
    assert result.metrics.song_accuracy == 1.0


def test_refit_trains_the_saved_model_on_the_training_and_validation_songs(separable):
    from genre_cnn.training.fit import train_model

    dataset = load_dataset(separable / "dataset")
    train, val = dataset.indices("train"), dataset.indices("val")
    quiet = dict(verbose=0, log=lambda message: None)
    refit = train_model(dataset, train_rows=train, val_rows=val, config=TrainConfig(epochs=2, batch_size=8), **quiet)
    on_both = train_model(dataset, train_rows=np.sort(np.concatenate([train, val])), val_rows=val[:0],
                          config=TrainConfig(epochs=2, batch_size=8, refit=False), **quiet)
    once = train_model(dataset, train_rows=train, val_rows=val, config=TrainConfig(epochs=2, batch_size=8, refit=False),
                       **quiet)
    assert refit.refit and not once.refit
    for a, b in zip(refit.model.get_weights(), on_both.model.get_weights()):  # the same network, seed for seed
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(refit.model.get_weights(), once.model.get_weights()))
    # the history and the calibration come from the first run, which had the validation songs (3 here: too few
    # to calibrate, tests/test_calibration.py covers that)
    assert "val_loss" in refit.history and refit.calibration == once.calibration


def test_refit_is_true_or_false():  # a model saved before refit existed reads as not refit: tests/test_kinds.py
    with pytest.raises(ConfigError, match="refit='yes' must be True or False"):
        TrainConfig(refit="yes")


def test_the_default_network_is_small_with_batch_norm_in_every_block(separable):
    from genre_cnn.models.cnn import build_model

    model = build_model((128, 196), 10, mel_mean=np.zeros(128), mel_variance=np.ones(128))
    names = [layer.name for layer in model.layers]
    assert [n for n in names if n.endswith("_bn")] == ["block1_bn", "block2_bn", "block3_bn", "block4_bn"]
    assert "wide_logits" in names  # the default head: see the next test
    assert model.count_params() <= 300_000
    summary = build_model((128, 196), 10, mel_mean=np.zeros(128), mel_variance=np.ones(128), head="summary")
    assert "band_summary" in [layer.name for layer in summary.layers]  # each band's mean and spread reach the head
    assert summary.get_layer("head_input").output.shape[-1] == 128 + 2 * 128
    assert summary.count_params() <= 300_000


def test_the_wide_head_adds_a_linear_path_from_the_spectral_summary(separable):
    from genre_cnn.models.cnn import build_model

    model = build_model((128, 196), 10, mel_mean=np.zeros(128), mel_variance=np.ones(128), head="wide")
    names = [layer.name for layer in model.layers]
    # 6 statistics a band, rhythm (8 groups x 12 ranges), co-movement (16 groups), standardised, to the logits
    assert {"spectral_summary", "standardise_summary", "wide_logits", "deep_logits", "logits"} <= set(names)
    assert model.get_layer("wide_logits").input.shape[-1] == 6 * 128 + 8 * 12 + 16 * 15 // 2
    assert not model.get_layer("deep_logits").get_weights()[0].any(), "the convolutions' path starts at zero"
    assert model.count_params() <= 300_000


def test_training_starts_where_a_logistic_regression_on_the_spectral_summaries_ends(separable):
    from sklearn.linear_model import LogisticRegression

    from genre_cnn.models.cnn import build_model, summary_network
    from genre_cnn.training.scratch import WIDE_C, band_statistics, fit_wide_path

    dataset = load_dataset(separable / "dataset")
    rows = dataset.indices("train")
    mean, variance = band_statistics(dataset.features, rows)
    model = build_model(dataset.feature_config.input_shape, 3, mel_mean=mean, mel_variance=variance, head="wide")
    fit_wide_path(model, dataset, rows, log=lambda message: None)

    chunks = np.asarray(dataset.features[np.sort(rows)])
    summaries = summary_network(model).predict(chunks, verbose=0).astype(np.float64)
    standardised = (summaries - summaries.mean(0)) / np.sqrt(summaries.var(0) + 1e-6)
    regression = LogisticRegression(C=WIDE_C, max_iter=1000).fit(standardised, dataset.labels[np.sort(rows)])
    np.testing.assert_allclose(model.predict(chunks, verbose=0), regression.predict_proba(standardised), atol=1e-4)


def test_random_crops_are_windows_of_the_song_and_held_out_chunks_are_served_as_stored(separable):
    dataset = load_dataset(separable / "dataset")
    rows = dataset.indices("train")
    config = TrainConfig(batch_size=len(rows), seed=3)
    crops, _ = training_batches(dataset, rows, config)[0]
    picked = training_batches(dataset, rows, config)._order
    following = dataset.next_rows()
    frames = dataset.features.shape[2]
    hop = round(dataset.feature_config.hop_samples / dataset.feature_config.hop_length)
    moved = 0
    for crop, row in zip(crops, picked):
        strip = np.asarray(dataset.features[row])
        if following[row] >= 0:
            strip = np.concatenate([strip, dataset.features[following[row]][:, frames - hop :]], axis=1)
        starts = [s for s in range(strip.shape[1] - frames + 1) if np.array_equal(strip[:, s : s + frames], crop)]
        assert starts, "every crop is a window of its own chunk and the next one of the same song"
        moved += starts[0] > 0
    assert moved > len(picked) // 2, "most crops start somewhere else than the stored chunk"
    plain, _ = training_batches(dataset, rows, TrainConfig(batch_size=len(rows), seed=3,
                                                                     options={"random_crop": False}))[0]
    assert np.array_equal(np.sort(plain.ravel()), np.sort(dataset.features[np.sort(rows)].ravel()))
    val_rows = dataset.indices("val")
    served, labels = evaluation_batches(dataset, val_rows, batch_size=len(val_rows))[0]
    assert np.array_equal(served, dataset.features[val_rows]) and np.array_equal(labels, dataset.labels[val_rows])


def test_several_crops_per_chunk_serve_every_training_chunk_that_many_times_each_epoch(separable):
    dataset = load_dataset(separable / "dataset")
    rows = dataset.indices("train")
    batches = training_batches(dataset, rows, TrainConfig(batch_size=4, options={"crops_per_chunk": 3}))
    assert len(batches) == int(np.ceil(3 * len(rows) / 4))
    assert sorted(batches._order.tolist()) == sorted(np.repeat(rows, 3).tolist())
    crops = np.concatenate([batches[i][0] for i in range(len(batches))])
    first = [i for i, row in enumerate(batches._order) if row == rows[0]]
    assert len({crops[i].tobytes() for i in first}) > 1, "the copies of a chunk are cropped differently"
    plain = training_batches(dataset, rows, TrainConfig(batch_size=4, options=CnnOptions(crops_per_chunk=3,
                                                                                            random_crop=False)))
    assert len(plain._order) == len(rows), "without crops, repeats would only repeat"
    with pytest.raises(ConfigError, match="crops_per_chunk=0 must be a positive integer"):
        CnnOptions(crops_per_chunk=0)


def test_the_teacher_never_learns_from_the_song_it_labels():
    rng = np.random.default_rng(0)
    songs = np.repeat([f"song{i}" for i in range(10)], 3)
    labels = np.repeat(np.arange(10) % 2, 3)
    embeddings = rng.normal(size=(len(songs), 4))
    trained_on = []

    def train_head(x, y, seed):
        trained_on.append({songs[np.flatnonzero((embeddings == row).all(axis=1))[0]] for row in x})
        seen = set(trained_on[-1])
        return lambda rows: np.array([[0.0, 1.0] if songs[np.flatnonzero((embeddings == r).all(axis=1))[0]] in seen
                                      else [1.0, 0.0] for r in rows])

    probabilities = cross_fitted_probabilities(embeddings, labels, songs, n_classes=2, seed=0, train_head=train_head)
    assert len(trained_on) == 4
    assert (probabilities == [1.0, 0.0]).all(), "every patch was labelled by a head that never saw its song"


def test_distillation_trains_the_teacher_on_training_songs_only(trained, monkeypatch, tmp_path):
    from genre_cnn.training import distill

    dataset = load_dataset(shutil.copytree(trained["dataset"], tmp_path / "dataset"))  # the teacher caches patches
    train_rows = dataset.indices("train")
    taught = []
    real = distill.cross_fitted_probabilities

    def spy(embeddings, labels, songs, **options):
        taught.extend(songs.tolist())
        return real(embeddings, labels, songs, **options)

    monkeypatch.setattr(distill, "cross_fitted_probabilities", spy)
    targets = distill.teacher_targets(dataset, train_rows, temperature=2.0, seed=0, log=lambda m: None)
    assert set(taught) == set(dataset.songs[train_rows].tolist())
    held_out = np.flatnonzero(dataset.splits != "train")
    assert np.array_equal(targets[held_out], np.eye(len(dataset.classes))[dataset.labels[held_out]])
    assert np.allclose(targets.sum(axis=1), 1.0)


@pytest.mark.slow
def test_a_distilled_model_is_the_small_cnn_and_classifies_through_litert(trained, tmp_path):
    from genre_cnn.inference.classifier import classify, load_classifier

    dataset = shutil.copytree(trained["dataset"], tmp_path / "dataset")  # the teacher caches patches there
    result = fit(dataset, config=TrainConfig(epochs=2, batch_size=8, options={"teacher": "musicnn"}),
                 model_dir=tmp_path / "distilled", verbose=0, log=lambda message: None)
    saved = json.loads((result.model_dir / "config.json").read_text())
    assert saved["train_config"]["options"]["teacher"] == "musicnn"
    classifier = load_classifier(result.model_dir)
    assert classifier.backend == "litert"
    assert classifier.runner.input_shape == tuple(load_dataset(trained["dataset"]).feature_config.input_shape)
    import keras

    model = keras.saving.load_model(result.model_dir / "model.keras", compile=False)
    assert not [layer.name for layer in model.layers
                if "musicnn" in layer.name or layer.name.startswith(("front", "mid"))]
    plain = keras.saving.load_model(trained["result"].model_dir / "model.keras", compile=False)
    assert model.count_params() == plain.count_params()
    assert all(song.ok for song in classify([trained["tracks"] / "tones"], model=result.model_dir))


def test_teacher_options_are_checked():
    with pytest.raises(ConfigError, match="teacher='bert' must be one of 'musicnn'"):
        CnnOptions(teacher="bert")
    with pytest.raises(ConfigError, match="teacher='musicnn' is an option of the cnn kind, not of the musicnn"):
        configured(TrainConfig(kind="musicnn", options={"teacher": "musicnn"}))  # the network already is musicnn
    with pytest.raises(ConfigError, match="temperature=0.5 must be >= 1"):
        CnnOptions(temperature=0.5)


def test_tempering_flattens_and_keeps_the_order():
    p = np.array([[0.7, 0.2, 0.1]])
    soft = tempered(p, 3.0)
    assert np.allclose(tempered(p, 1.0), p) and np.allclose(soft.sum(), 1.0)
    assert soft[0, 0] < 0.7 and list(np.argsort(soft[0])) == [2, 1, 0]


def test_chunk_teacher_probabilities_weigh_patches_by_overlap():
    patches = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    probabilities, covered = chunk_teacher_probabilities(
        np.array(["a", "b"]), np.array([0.0, 0.0]), 4.5,
        np.array(["a", "a", "x"]), np.array([0.0, 3.0, 0.0]), 3.0, patches)
    assert np.allclose(probabilities[0], [3 / 4.5, 1.5 / 4.5]) and covered.tolist() == [True, False]


def test_cv_compares_recipes_on_the_same_folds(tmp_path):
    tracks = write_tracks(tmp_path / "tracks", songs=4, seconds=2.0, fmt="WAV")
    runner = CliRunner()
    built = runner.invoke(main, ["build-dataset", str(tracks), "--out", str(tmp_path / "ds"), *TINY_CLI_OPTIONS,
                                 "--test-fraction", "0"])
    assert built.exit_code == 0, built.output
    result = runner.invoke(main, ["cv", "--data", str(tmp_path / "ds"), "--folds", "2", "--epochs", "1",
                                  "--batch-size", "8", "--recipes", "scratch,baseline", "--out", str(tmp_path / "cv"),
                                  "-q"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "2-fold cross-validation (stratified by song), 12 songs, every recipe on the same folds:"
    assert lines[1].split() == ["recipe", "song", "accuracy", "song", "macro-F1", "chunk", "accuracy", "CPU", "time"]
    assert [line.split()[0] for line in lines[3:5]] == ["scratch", "baseline"]
    saved = json.loads((tmp_path / "cv" / "cv.json").read_text())
    folds = saved["folds"]
    assert [f["test_songs"] for f in folds["scratch"]] == [f["test_songs"] for f in folds["baseline"]]
    assert (tmp_path / "cv" / "recipes.png").is_file()
    bad = runner.invoke(main, ["cv", "--data", str(tmp_path / "ds"), "--recipes", "scratch,magic",
                               "--out", str(tmp_path / "cv2")])
    assert bad.exit_code == 1 and "--recipes scratch,magic: choose one or more of scratch,teacher,musicnn,baseline" \
        in bad.output


def test_one_trainer_per_network_kind_chosen_from_the_config():
    from genre_cnn.kinds import kind_named, trainer_for
    from genre_cnn.kinds.cnn import ScratchCnn
    from genre_cnn.kinds.musicnn import MusicnnHead

    assert isinstance(trainer_for(TrainConfig()), ScratchCnn)
    assert isinstance(trainer_for(TrainConfig(kind="musicnn")), MusicnnHead)
    for trainer in (ScratchCnn, MusicnnHead):  # classify opens what fit trains
        assert kind_named(trainer.kind).classifier.kind == trainer.kind
    mixup = configured(TrainConfig(options={"augment": ("mixup",)}))
    assert trainer_for(mixup).describe(mixup).startswith(", augmented with mixup")


@pytest.mark.parametrize("genres", [2, 3])
def test_the_wide_path_starts_as_the_regression_with_two_genres_and_with_a_genre_missing(separable, genres):
    import dataclasses

    from genre_cnn.models.cnn import build_model
    from genre_cnn.training.scratch import band_statistics, fit_wide_path

    dataset = load_dataset(separable / "dataset")
    rows = np.flatnonzero(dataset.labels < 2)  # two genres train; with three classes the third has no chunk
    dataset = dataclasses.replace(dataset, classes=dataset.classes[:genres])
    mean, variance = band_statistics(dataset.features, rows)
    model = build_model(dataset.feature_config.input_shape, genres, mel_mean=mean, mel_variance=variance,
                        head="wide")
    accuracy = fit_wide_path(model, dataset, rows, log=lambda message: None)

    probabilities = model.predict(np.asarray(dataset.features[np.sort(rows)]), verbose=0)
    assert accuracy == 1.0
    assert np.array_equal(probabilities.argmax(axis=1), dataset.labels[np.sort(rows)])
    assert (probabilities[:, 2:] < 1e-3).all(), "a genre without training chunks is never predicted"


def test_the_wide_head_trains_under_mixed_precision_on_chunks_that_fade_in(separable, tmp_path):
    import shutil

    from genre_cnn.data.store import DatasetDir

    copy = tmp_path / "dataset"
    shutil.copytree(separable / "dataset", copy)
    features = np.load(copy / DatasetDir.FEATURES)
    features[:, :, : features.shape[2] // 2] = -100.0  # silence, then sound: large slow modulations
    np.save(copy / DatasetDir.FEATURES, features)
    result = fit(copy, config=TrainConfig(epochs=2, batch_size=8, options={"mixed_precision": True, "head": "wide"}),
                 model_dir=tmp_path / "m", verbose=0, log=lambda message: None)
    history = json.loads((result.model_dir / "history.json").read_text())
    assert np.isfinite(history["loss"]).all()


def test_training_leaves_the_wide_path_where_the_regression_set_it(separable, tmp_path):
    from genre_cnn.inference.runners import KerasRunner
    from genre_cnn.models.cnn import WIDE_LAYER, build_model
    from genre_cnn.training.scratch import band_statistics, fit_wide_path

    result = fit(separable / "dataset", config=TrainConfig(epochs=2, batch_size=8, options={"head": "wide"}),
                 model_dir=tmp_path / "m", verbose=0, log=lambda message: None)
    trained = KerasRunner(result.model_dir / "model.keras").model
    dataset = load_dataset(separable / "dataset")
    rows = np.sort(np.concatenate([dataset.indices("train"), dataset.indices("val")]))  # refit: the saved one saw both
    mean, variance = band_statistics(dataset.features, rows)
    fresh = build_model(dataset.feature_config.input_shape, 3, mel_mean=mean, mel_variance=variance, head="wide")
    fit_wide_path(fresh, dataset, rows, log=lambda message: None)
    for before, after in zip(fresh.get_layer(WIDE_LAYER).get_weights(), trained.get_layer(WIDE_LAYER).get_weights()):
        np.testing.assert_allclose(after, before, atol=1e-6)
    assert trained.get_layer("deep_logits").get_weights()[0].any(), "the convolutions' path learnt"


def test_the_default_head_is_the_wide_one():
    assert CnnOptions().head == "wide"  # the default since it held on real-genres, dev-music and the demo
    with pytest.raises(ConfigError, match="head='deep'"):
        CnnOptions(head="deep")  # a config saved before the option existed: tests/test_kinds.py


def test_fit_can_say_whether_the_musicnn_backbone_does_better_on_the_same_songs(separable, tmp_path):
    config = TrainConfig(epochs=2, batch_size=8)
    result = fit(separable / "dataset", config=config, model_dir=tmp_path / "cnn", compare=True, verbose=0,
                 log=lambda message: None)
    compared = result.metrics.compared["musicnn"]
    backbone = fit(separable / "dataset", config=TrainConfig(epochs=2, batch_size=8, kind="musicnn"),
                   model_dir=tmp_path / "musicnn", verbose=0, log=lambda message: None)
    assert compared["song_accuracy"] == backbone.metrics.song_accuracy  # the same recipe as fit --backbone musicnn
    assert compared["test_songs"] == result.metrics.test_songs
    assert compared["command"] == f"genre-cnn fit --backbone musicnn --data {separable / 'dataset'} --epochs 2"
    baseline = result.metrics.compared["baseline"]  # tuned on the training and validation songs, like the refit
    assert baseline["test_songs"] == result.metrics.test_songs and 0 <= baseline["song_accuracy"] <= 1
    assert baseline["command"].startswith("genre-cnn features ") and "genre-cnn baseline features.csv" in baseline["command"]
    saved = json.loads((tmp_path / "cnn" / "metrics.json").read_text())
    assert saved["compared"] == {"musicnn": compared, "baseline": baseline}


def test_a_comparison_that_fails_does_not_lose_the_fitted_cnn(separable, tmp_path, monkeypatch):
    from genre_cnn.errors import DatasetError
    from genre_cnn.kinds.musicnn import MusicnnHead

    def audio_gone(self, dataset, *, log=print):
        raise DatasetError(f"{dataset.path}: the songs' audio files are gone")

    monkeypatch.setattr(MusicnnHead, "training_data", audio_gone)
    result = fit(separable / "dataset", config=TrainConfig(epochs=1, batch_size=8), model_dir=tmp_path / "cnn",
                 compare=True, verbose=0, log=lambda message: None)
    assert result.metrics.compared["musicnn"] == {"error": f"{separable / 'dataset'}: the songs' audio files are gone"}
    assert (tmp_path / "cnn" / "model.keras").is_file()


def test_fit_output_names_the_better_recipe_and_the_command_to_fit_it():
    from genre_cnn.models.store import Metrics
    from genre_cnn.report import format_comparison

    cnn = Metrics(test_songs=10, song_accuracy=0.7)
    better = {"song_accuracy": 0.9, "test_songs": 10, "command": "genre-cnn fit --backbone musicnn --data d"}
    assert format_comparison("musicnn", better, cnn) == (
        "  musicnn on the same songs: 9 of 10 test songs right (90.0%), this model 7 (70.0%).\n"
        "Note: the pretrained musicnn backbone did better on your songs; fit it with: "
        "genre-cnn fit --backbone musicnn --data d")
    worse = {**better, "song_accuracy": 0.7}
    assert format_comparison("musicnn", worse, cnn).endswith("this model 7 (70.0%): this model is as good or better")
    assert "\nNote: the scikit-learn baseline did better on your songs; fit it with: " in format_comparison(
        "baseline", better, cnn)
    assert format_comparison("musicnn", {"error": "d: the songs' audio is gone"}, cnn) == (
        "  musicnn: could not be compared (d: the songs' audio is gone)")
