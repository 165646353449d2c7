"""fit and classify through the Python API: files written, honest metrics, reproducible results."""

import json

import numpy as np
import pytest

from genre_cnn.config import TrainConfig
from genre_cnn.data.dataset import load_dataset
from genre_cnn.errors import DatasetError, ModelError
from genre_cnn.inference.classifier import classify, load_classifier
from genre_cnn.inference.prediction import song_probabilities
from genre_cnn.training.fit import fit
from genre_cnn.training.metrics import evaluate_chunks
from genre_cnn.training.scratch import band_statistics


def test_fit_saves_every_artefact(trained):
    model_dir = trained["result"].model_dir
    assert model_dir == trained["models"] / "tiny"
    assert {p.name for p in model_dir.iterdir()} == {
        "model.keras", "model.tflite", "mel_filterbank.npy", "config.json", "history.png", "history.json",
        "history.csv", "confusion.png", "reliability.png", "metrics.json", "profile.npz"}
    config = json.loads((model_dir / "config.json").read_text())
    assert config["classes"] == ["chirps", "noise", "tones"]
    assert config["train_config"] == {  # the options every kind shares, the kind, and all of its own options
        "epochs": 2, "batch_size": 8, "learning_rate": 0.001, "seed": 0, "optimizer": "rmsprop", "class_weight": "none",
        "patience": None, "reduce_lr": False, "keep_epoch": "last", "refit": True, "kind": "cnn",
        "options": {"augment": [], "noise_snr_db": 20.0, "gain_db": 6.0, "stretch": 0.1, "pitch_semitones": 2.0,
                    "mixup_alpha": 0.2, "random_crop": True, "crops_per_chunk": 1, "teacher": None, "temperature": 2.0,
                    "distill_weight": 0.5, "head": "wide", "mixed_precision": False}}
    assert config["kind"] == "cnn"
    assert config["calibration"]["fitted_on"] == "validation songs" and config["calibration"]["songs"] == 3
    assert config["feature_config"]["n_mels"] == 16
    assert config["dataset"]["fingerprint"] == load_dataset(trained["dataset"]).fingerprint
    assert (trained["models"] / "latest").read_text().strip() == "tiny"


def test_metrics_are_measured_on_the_test_songs_only(trained):
    metrics = json.loads((trained["result"].model_dir / "metrics.json").read_text())
    dataset = load_dataset(trained["dataset"])
    test_songs = set(dataset.songs[dataset.indices("test")])
    assert {entry["song"] for entry in metrics["songs"]} == test_songs
    assert metrics["test_songs"] == 3 and metrics["test_chunks"] == 9
    assert 0 <= metrics["chunk_accuracy"] <= 1 and 0 <= metrics["song_accuracy"] <= 1
    assert np.array(metrics["confusion_songs"]).sum() == 3


def test_classify_follows_latest_and_gives_probabilities_per_song(trained):
    predictions = classify([trained["tracks"] / "tones"], models_root=trained["models"])
    assert [p.path.rsplit("/", 1)[-1] for p in predictions] == [f"tones_{i}.mp3" for i in range(5)]
    for prediction in predictions:
        assert prediction.ok and prediction.n_chunks == 3
        assert set(prediction.probabilities) == {"chirps", "noise", "tones"}
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction.genre == max(prediction.probabilities, key=prediction.probabilities.get)


def test_classify_combines_the_dataset_chunks_as_fit_scores_them(trained):
    """classify recomputes the very features build-dataset stored, and combines their chunks with the
    one function that fit's and cv's song accuracy use: same numbers, same verdict."""
    classifier = load_classifier(trained["result"].model_dir)
    dataset = load_dataset(trained["dataset"])
    rows = np.flatnonzero(dataset.songs == "noise/noise_2.mp3")
    expected = song_probabilities(classifier.predict_chunks(np.asarray(dataset.features[rows])))
    prediction = classifier.classify_file(trained["tracks"] / "noise" / "noise_2.mp3")
    np.testing.assert_allclose(list(prediction.probabilities.values()), expected, rtol=1e-6)


def test_unreadable_file_gives_an_error_entry_and_the_rest_is_classified(trained, tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"not audio at all")
    good = trained["tracks"] / "chirps" / "chirps_0.mp3"
    first, second = classify([bad, good], model=trained["result"].model_dir)
    assert not first.ok and "bad.mp3: cannot decode audio" in first.error
    assert second.ok


def test_song_shorter_than_a_chunk_is_padded(trained, tmp_path):
    import soundfile
    from conftest import synth_song

    soundfile.write(tmp_path / "short.wav", synth_song("tones", 0, seconds=0.6), 8000)
    [prediction] = classify([tmp_path / "short.wav"], model=trained["result"].model_dir)
    assert prediction.ok and prediction.n_chunks == 1


def test_same_seed_same_model(trained, tmp_path):
    again = fit(trained["dataset"], config=TrainConfig(epochs=2, batch_size=8), model_dir=tmp_path / "again",
                models_root=tmp_path / "models", verbose=0, log=lambda m: None)
    first = load_classifier(trained["result"].model_dir, backend="keras").runner.model.get_weights()
    second = load_classifier(again.model_dir, backend="keras").runner.model.get_weights()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert again.metrics.song_accuracy == trained["result"].metrics.song_accuracy


def test_missing_model(tmp_path):
    with pytest.raises(ModelError, match=r"No model at .*models. Run 'genre-cnn fit' first, or pass model=DIR"):
        load_classifier(models_root=tmp_path / "models")


def test_model_folder_without_model_file(tmp_path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelError, match=r"m: model.keras is missing; refit with 'genre-cnn fit'"):
        load_classifier(tmp_path / "m")


def test_model_with_a_feature_config_this_version_cannot_reproduce(trained, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained["result"].model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["feature_config"]["version"] = 99
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="cannot reproduce this model's features .*refit it"):
        load_classifier(copy)
    config["feature_config"]["version"] = 1
    config["feature_config"]["n_mels"] = 32
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="the folder mixes two models, refit it"):
        load_classifier(copy)


def test_fit_needs_training_songs_of_every_genre(trained, tmp_path):
    import shutil

    copy = tmp_path / "ds"
    shutil.copytree(trained["dataset"], copy)
    manifest = (copy / "manifest.csv").read_text().splitlines()
    lines = [manifest[0]] + [
        line.replace(",train", ",val") if line.startswith("tones/") else line for line in manifest[1:]]
    (copy / "manifest.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"no training songs for genre\(s\) \['tones'\]"):
        fit(copy, models_root=tmp_path / "models", verbose=0, log=lambda m: None)


def test_band_statistics_match_numpy(rng):
    features = rng.normal(size=(50, 4, 7))
    rows = np.array([3, 1, 40, 7, 22])
    mean, variance = band_statistics(features, rows, block=2)
    np.testing.assert_allclose(mean, features[rows].mean(axis=(0, 2)))
    np.testing.assert_allclose(variance, features[rows].var(axis=(0, 2)))


def test_song_accuracy_combines_each_songs_chunk_probabilities():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    result = evaluate_chunks(probabilities, labels=np.array([0, 0, 1, 1]), songs=["a", "a", "b", "b"],
                             classes=["x", "y"])
    assert result["chunk_accuracy"] == 0.5
    assert result["song_accuracy"] == 1.0  # a: geometric means (0.42, 0.28) -> x; b: (0.42, 0.53) -> y
    assert result["confusion_songs"] == [[1, 0], [0, 1]]
    assert result["songs"][0]["probabilities"] == pytest.approx({"x": 0.6, "y": 0.4}, abs=1e-6)


def test_litert_and_keras_give_the_same_probabilities(trained):
    song = trained["tracks"] / "chirps" / "chirps_3.mp3"
    fast = load_classifier(trained["result"].model_dir, backend="litert")
    reference = load_classifier(trained["result"].model_dir, backend="keras")
    assert (fast.backend, reference.backend) == ("litert", "keras")
    a, b = fast.classify_file(song), reference.classify_file(song)
    np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-4)
    assert a.genre == b.genre and a.n_chunks == b.n_chunks


def test_the_fast_route_imports_neither_tensorflow_nor_librosa(trained):
    import subprocess
    import sys

    code = (
        "import sys; from genre_cnn.inference.classifier import classify; "
        f"[p] = classify([{str(trained['tracks'] / 'noise' / 'noise_1.mp3')!r}], "
        f"model={str(trained['result'].model_dir)!r}); "
        "print(p.ok, 'tensorflow' in sys.modules, 'librosa' in sys.modules, 'keras' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["True", "False", "False", "False"], result.stderr


def test_unknown_backend(trained):
    with pytest.raises(ModelError, match="backend='onnx' must be one of auto, litert, keras"):
        load_classifier(trained["result"].model_dir, backend="onnx")


def test_mixed_precision_trains_and_exports(trained, tmp_path):
    result = fit(trained["dataset"], config=TrainConfig(epochs=1, batch_size=8, options={"mixed_precision": True}),
                 model_dir=tmp_path / "mixed", models_root=tmp_path / "models", verbose=0, log=lambda m: None)
    saved = json.loads((result.model_dir / "config.json").read_text())
    assert saved["train_config"]["options"]["mixed_precision"] is True
    fast = load_classifier(result.model_dir, backend="litert")
    reference = load_classifier(result.model_dir, backend="keras")
    song = trained["tracks"] / "tones" / "tones_2.mp3"
    np.testing.assert_allclose(list(fast.classify_file(song).probabilities.values()),
                               list(reference.classify_file(song).probabilities.values()), atol=1e-4)
    from genre_cnn.runtime.backend import import_keras

    assert import_keras().mixed_precision.global_policy().name == "float32"  # restored after fit


def test_balanced_class_weights():
    from genre_cnn.training.weights import class_weights

    np.testing.assert_allclose(class_weights(np.array([0, 0, 0, 1]), 2), [4 / 6, 4 / 2])


def test_training_options_are_used_and_recorded(trained, tmp_path):
    import csv

    config = TrainConfig(epochs=3, batch_size=8, optimizer="adam", class_weight="balanced", patience=1,
                         reduce_lr=True)
    result = fit(trained["dataset"], config=config, model_dir=tmp_path / "m", models_root=tmp_path / "models",
                 tensorboard=tmp_path / "tb", checkpoint=tmp_path / "ckpt" / "best.keras", verbose=0,
                 log=lambda m: None)
    saved = json.loads((result.model_dir / "config.json").read_text())["train_config"]
    assert (saved["optimizer"], saved["class_weight"], saved["patience"], saved["reduce_lr"]) == (
        "adam", "balanced", 1, True)
    metrics = result.metrics
    assert 1 <= metrics.epochs_run <= 3
    assert set(metrics.per_class) == {"chirps", "noise", "tones"}
    assert 0 <= metrics.song_macro_f1 <= 1 and 0 <= metrics.chunk_macro_f1 <= 1
    with open(result.model_dir / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == metrics.epochs_run and {"loss", "val_loss", "seconds"} <= set(rows[0])
    assert any((tmp_path / "tb").rglob("*tfevents*"))
    import keras

    checkpointed = keras.saving.load_model(tmp_path / "ckpt" / "best.keras")  # the best epoch, as kept
    kept = keras.saving.load_model(result.model_dir / "model.keras")
    for a, b in zip(checkpointed.get_weights(), kept.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["best.keras"]


def test_bad_training_options():
    from genre_cnn.errors import ConfigError

    with pytest.raises(ConfigError, match="optimizer='sgd' must be one of 'rmsprop', 'adam'"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ConfigError, match="patience=0 must be a positive integer"):
        TrainConfig(patience=0)


def test_every_model_kind_is_a_type_opened_by_one_factory(trained, tmp_path):
    import shutil

    from genre_cnn.inference.classifier import open_classifier
    from genre_cnn.inference.prediction import Classifier
    from genre_cnn.kinds.cnn import CnnClassifier

    model_dir = trained["result"].model_dir
    assert json.loads((model_dir / "config.json").read_text())["kind"] == "cnn"
    classifier = open_classifier(model_dir)
    assert isinstance(classifier, CnnClassifier) and isinstance(classifier, Classifier)
    assert (classifier.kind, classifier.makes_timelines) == ("cnn", True)

    older = tmp_path / "older"  # fitted before config.json named its kind
    shutil.copytree(model_dir, older)
    saved = json.loads((older / "config.json").read_text())
    del saved["kind"]
    (older / "config.json").write_text(json.dumps(saved))
    assert isinstance(open_classifier(older), CnnClassifier)

    saved["kind"] = "transformer"
    (older / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ModelError, match="kind 'transformer' is not one this version opens"):
        open_classifier(older)
