"""Model kinds are plug-ins: one module each under genre_cnn/kinds/, found by name in one registry.

``open_classifier``, ``fit``, ``cv``, ``monitor`` and ``serve`` ask the registry
(:mod:`genre_cnn.kinds`) and never name a kind, so adding one is a module and a registry line
(or an entry point of another package), as the last test shows.
"""

import ast
import json
from pathlib import Path

import numpy as np
import pytest

import genre_cnn.kinds as kinds
from genre_cnn.config import TrainConfig
from genre_cnn.errors import ConfigError, ModelError
from genre_cnn.kinds import (
    Kind,
    configured,
    kind_named,
    kind_names,
    kind_of_flat_train_config,
    recipe_named,
    recipe_names,
    train_config_from_dict,
    trainer_for,
)
from genre_cnn.kinds.cnn import CnnOptions
from genre_cnn.kinds.musicnn import MusicnnOptions

PACKAGE = Path(kinds.__file__).resolve().parent.parent
KINDS_FOLDER = PACKAGE / "kinds"
#: Modules outside the kinds' folder that may import one kind's module, and why.
ALLOWED_IMPORTS = {
    "cli.py": "genre_cnn.kinds.baseline",  # the `genre-cnn baseline` command is that kind's own fit
}


def kind_vocabulary():
    """The names that identify a kind: kind and recipe names, and the classes its module defines."""
    names = set(kind_names()) | set(recipe_names())
    classes = {node.name for path in KINDS_FOLDER.glob("*.py") if path.name != "__init__.py"
               for node in ast.parse(path.read_text()).body if isinstance(node, ast.ClassDef)}
    return names, classes


def where_a_kind_is_named(path: Path, relative: str = ""):
    """Lines of ``path`` (the package's ``relative``) that compare something with a kind's name, name a
    kind's class or import its module."""
    names, classes = kind_vocabulary()
    tree = ast.parse(path.read_text())
    relative = relative or path.relative_to(PACKAGE).as_posix()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                strings = [operand] if isinstance(operand, ast.Constant) else \
                    list(operand.elts) if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else []
                if any(isinstance(s, ast.Constant) and s.value in names for s in strings):
                    yield f"{relative}:{node.lineno}: compares with a kind's name"
        elif isinstance(node, ast.Name) and node.id in classes:
            yield f"{relative}:{node.lineno}: names the class {node.id}"
        elif isinstance(node, ast.Attribute) and node.attr in classes:
            yield f"{relative}:{node.lineno}: names the class {node.attr}"
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for module in modules:
                if module in kinds.BUILT_IN.values() and ALLOWED_IMPORTS.get(relative) != module:
                    yield f"{relative}:{node.lineno}: imports {module}"


def test_no_module_outside_the_kinds_folder_names_a_kind():
    outside = [path for path in PACKAGE.rglob("*.py") if KINDS_FOLDER not in path.parents]
    assert len(outside) > 50
    found = [line for path in outside for line in where_a_kind_is_named(path)]
    assert found == []


def test_the_guard_sees_a_kind_named_in_a_comparison_a_class_or_an_import(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text('from genre_cnn.kinds.cnn import ScratchCnn\n\n\ndef f(folder):\n'
                      '    return folder.kind() in ("baseline", "x") or isinstance(folder, ScratchCnn)\n')
    found = [line.split(": ", 1)[1] for line in where_a_kind_is_named(sneaky, "training/sneaky.py")]
    assert sorted(found) == ["compares with a kind's name", "imports genre_cnn.kinds.cnn",
                             "names the class ScratchCnn"]


def test_each_built_in_kind_is_registered_once_under_its_name():
    assert kind_names() == ("cnn", "musicnn", "baseline")
    for name in kind_names():
        kind = kind_named(name)
        assert kind.name == name == kind.classifier.kind
        assert kind.trainer is None or kind.trainer.kind == name  # classify opens what fit trains
    assert recipe_names() == ("scratch", "teacher", "musicnn", "baseline")
    assert {recipe_named(name).name for name in recipe_names()} == set(recipe_names())


def test_each_kind_has_its_own_options_and_refuses_another_kinds_by_name():
    cnn = configured(TrainConfig(options={"teacher": "musicnn"}))  # the default kind: the CNN from scratch
    assert cnn.options == CnnOptions(teacher="musicnn") and cnn.options.head == "wide"
    assert trainer_for(cnn).kind == "cnn"
    musicnn = configured(TrainConfig(kind="musicnn", options={"fine_tune": True}))
    assert musicnn.options == MusicnnOptions(fine_tune=True) and trainer_for(musicnn).kind == "musicnn"
    assert configured(musicnn) is musicnn  # checking twice changes nothing
    with pytest.raises(ConfigError, match=r"^augment='gain' is an option of the cnn kind, not of the musicnn kind "
                                          r"this trains; leave it out$") as caught:
        configured(TrainConfig(kind="musicnn", options={"augment": "gain"}))
    assert caught.value.parameter == "augment"
    with pytest.raises(ConfigError, match=r"^dropout=0.5 is not an option of the cnn kind \(its options: augment, "):
        configured(TrainConfig(options={"dropout": 0.5}))
    with pytest.raises(ConfigError, match=r"options=CnnOptions\(...\) are not the musicnn kind's: give a "
                                          "MusicnnOptions, or the options by name"):
        configured(TrainConfig(kind="musicnn", options=CnnOptions()))
    for kind in ("transformer", "baseline"):  # the baseline has its own command
        with pytest.raises(ConfigError, match=f"kind='{kind}' is not a model kind fit trains; choose one of "
                                              "cnn, musicnn$"):
            trainer_for(TrainConfig(kind=kind))


def test_a_recipe_sets_its_kind_and_options_over_the_runs_own():
    run = TrainConfig(epochs=3, options={"augment": "gain", "teacher": "musicnn"})
    scratch = recipe_named("scratch").configure(run)
    assert (scratch.epochs, scratch.kind, scratch.options.augment) == (3, "cnn", ("gain",))
    assert scratch.options.teacher is None
    assert recipe_named("teacher").configure(TrainConfig()).options.teacher == "musicnn"
    musicnn = recipe_named("musicnn").configure(run)  # the CNN's options do not apply to another kind
    assert (musicnn.epochs, musicnn.kind, musicnn.options) == (3, "musicnn", MusicnnOptions())


#: A model's ``train_config`` as the release before kinds had their own options saved it: every kind's in one.
FLAT_TRAIN_CONFIG = {
    "epochs": 3, "batch_size": 8, "learning_rate": 0.001, "seed": 0, "mixed_precision": False, "optimizer": "rmsprop",
    "class_weight": "none", "patience": None, "reduce_lr": False, "augment": ["gain"], "noise_snr_db": 20.0,
    "gain_db": 6.0, "stretch": 0.1, "pitch_semitones": 2.0, "mixup_alpha": 0.2, "backbone": None, "fine_tune": False,
    "random_crop": True, "crops_per_chunk": 1, "teacher": None, "temperature": 2.0, "distill_weight": 0.5,
    "keep_epoch": "last", "head": "wide", "refit": True,
}


def test_a_training_config_saved_before_kinds_had_their_own_options_still_reads():
    old = train_config_from_dict(FLAT_TRAIN_CONFIG)
    assert (old.epochs, old.refit, old.kind, old.options) == (3, True, "cnn", CnnOptions(augment=("gain",)))
    backbone = train_config_from_dict({**FLAT_TRAIN_CONFIG, "backbone": "musicnn", "fine_tune": True})
    assert (backbone.kind, backbone.options) == ("musicnn", MusicnnOptions(fine_tune=True))
    older = {key: value for key, value in FLAT_TRAIN_CONFIG.items() if key not in ("head", "refit")}
    assert train_config_from_dict(older).options.head == "summary"  # saved before the wide head existed
    assert train_config_from_dict(older).refit is False  # ... and before refitting
    assert kind_of_flat_train_config({}).name == "cnn"  # saved before train_config recorded a backbone
    new = configured(TrainConfig(epochs=2, options={"head": "summary", "augment": "mixup"}))
    assert train_config_from_dict(json.loads(json.dumps(new.to_dict()))) == new
    with pytest.raises(ModelError, match="the training config: kind 'echo' is not one this version opens .* install "
                                         "the package that provides that kind"):
        train_config_from_dict({**new.to_dict(), "kind": "echo", "options": {}})


def test_unknown_kinds_and_recipes_are_refused_by_name():
    with pytest.raises(ModelError, match=r"models/x/config.json: kind 'transformer' is not one this version opens "
                                         r"\(cnn, musicnn, baseline\)"):
        kind_named("transformer", where="models/x/config.json")
    with pytest.raises(ConfigError, match="recipes='magic': choose one or more of scratch,teacher,musicnn,baseline"):
        recipe_named("magic")


class EchoClassifier:
    """A kind from another package: says every song is its first genre."""

    kind = "echo"
    backend = "python"
    makes_timelines = False
    inputs_are_log_mel = False
    profiles_from_dataset = False
    combines_chunks = False

    @classmethod
    def open(cls, model_dir, *, backend="auto"):
        from genre_cnn.models.store import ModelDir

        classifier = cls()
        classifier.model_dir = Path(model_dir)
        classifier.classes = ModelDir(model_dir).read_classes()
        classifier.min_confidence = None
        return classifier

    def classify_file(self, path):
        from genre_cnn.inference.prediction import SongPrediction

        return SongPrediction.of(path, self.classes, np.eye(len(self.classes))[0], n_chunks=1, min_confidence=None)


class FakeEntryPoint:
    name = "echo"

    def load(self):
        return Kind(name="echo", classifier=EchoClassifier, recipes={})


def test_a_kind_from_another_package_is_opened_by_the_same_factory(trained, tmp_path, monkeypatch):
    """What a plug-in needs: a Kind under an entry point; nothing in genre_cnn changes."""
    from genre_cnn.inference.classifier import classify

    monkeypatch.setattr(kinds, "entry_points", lambda group: [FakeEntryPoint()] if group == kinds.ENTRY_POINTS else [])
    monkeypatch.setattr(kinds, "_kinds", None)
    assert kind_names() == ("cnn", "musicnn", "baseline", "echo")

    folder = tmp_path / "echo-model"  # its own files only: no network, no pickle
    folder.mkdir()
    saved = json.loads((Path(trained["result"].model_dir) / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({"kind": "echo", "classes": saved["classes"]}))
    song = next(Path(trained["tracks"]).rglob("*.mp3"))
    [prediction] = classify([song], model=folder)
    assert prediction.genre == saved["classes"][0] and prediction.probabilities[saved["classes"][0]] == 1.0
    (tmp_path / "latest").write_text("echo-model\n")  # it is not a pickle: models/latest may name it
    [prediction] = classify([song], models_root=tmp_path)
    assert prediction.genre == saved["classes"][0]
    monkeypatch.setattr(kinds, "_kinds", None)  # the next test sees the built-in kinds again


def test_the_baseline_describes_a_datasets_songs_once_until_one_of_their_files_changes(tracks_dir, tiny_config,
                                                                                       tmp_path, monkeypatch):
    """cv and fit --compare on the same songs: the descriptors (seconds of CPU a song) are computed once."""
    import os

    from genre_cnn.data.build import build_dataset
    from genre_cnn.data.dataset import load_dataset
    from genre_cnn.kinds import baseline
    from genre_cnn.training.cv import song_folds

    build_dataset(tracks_dir, out=tmp_path / "dataset", config=tiny_config, workers=1, val_fraction=0,
                  test_fraction=0.2)
    described, describe = [], baseline.describe_songs
    monkeypatch.setattr(baseline, "describe_songs", lambda paths, **options: described.append(len(paths)) or
                        describe(paths, **options))
    dataset = load_dataset(tmp_path / "dataset")
    songs, folds = song_folds(dataset, folds=2)
    recipe, fold_of_song = recipe_named("baseline"), dict(zip(songs, folds.tolist()))

    def accuracies():
        results = recipe.run_folds(dataset, fold_of_song, config=TrainConfig(), val_fraction=0, log=lambda m: None)
        return [fold["song_accuracy"] for fold in results]

    assert accuracies() == accuracies() and described == [15]
    left_out = songs[0]  # a song without a fold takes no part (the networks' folds ignore it too)
    results = recipe.run_folds(dataset, {s: f for s, f in fold_of_song.items() if s != left_out}, config=TrainConfig(),
                               val_fraction=0, log=lambda m: None)
    assert all(left_out not in fold["train_songs"] + fold["test_songs"] for fold in results)
    changed = tracks_dir / songs[0]
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 1_000_000_000))
    accuracies()
    assert described == [15, 15]


def test_a_broken_plug_in_is_skipped_with_a_warning_and_the_other_kinds_still_open(monkeypatch):
    from genre_cnn.errors import GenreCnnWarning

    class Broken:
        name, value = "broken", "nowhere.genre_kind:KIND"

        def load(self):
            raise ImportError("No module named 'nowhere'")

    monkeypatch.setattr(kinds, "entry_points", lambda group: [Broken()])
    monkeypatch.setattr(kinds, "_kinds", None)
    with pytest.warns(GenreCnnWarning, match=r"the model kind 'broken' \(nowhere.genre_kind:KIND\) could not be "
                                             r"loaded \(No module named 'nowhere'\)"):
        assert kind_names() == ("cnn", "musicnn", "baseline")
    monkeypatch.setattr(kinds, "_kinds", None)


def test_the_command_line_offers_every_kinds_options_with_the_kinds_defaults():
    import dataclasses

    from genre_cnn.cli import main

    defaults = main.commands["fit"].make_context("fit", []).params  # what fit gets with no option given
    cnn = {field.name for field in dataclasses.fields(CnnOptions)}
    assert cnn <= set(defaults)
    assert CnnOptions(**{name: defaults[name] for name in cnn}) == CnnOptions()  # --help shows what fit does
    assert MusicnnOptions(fine_tune=not defaults["freeze"]) == MusicnnOptions()  # --freeze/--fine-tune


def test_a_model_folder_whose_training_config_is_the_previous_releases_still_opens(trained, tmp_path):
    import shutil

    from genre_cnn.inference.classifier import open_classifier

    old = shutil.copytree(trained["result"].model_dir, tmp_path / "old")
    config = json.loads((old / "config.json").read_text())
    config["train_config"] = FLAT_TRAIN_CONFIG
    (old / "config.json").write_text(json.dumps(config))
    song = trained["tracks"] / "tones" / "tones_0.mp3"
    then, now = (open_classifier(folder).classify_file(song) for folder in (old, trained["result"].model_dir))
    assert then.probabilities == now.probabilities
    assert train_config_from_dict(config["train_config"]).kind == config["kind"] == "cnn"
