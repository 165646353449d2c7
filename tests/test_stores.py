"""Model and dataset folders: DatasetDir and ModelDir are the only code that knows their files."""

import ast
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import genre_cnn
from genre_cnn.data.dataset import load_dataset, read_summary
from genre_cnn.data.store import DatasetDir
from genre_cnn.errors import DatasetError, ModelError
from genre_cnn.models.store import Metrics, ModelDir

PACKAGE = Path(genre_cnn.__file__).parent
STORES = {PACKAGE / "data" / "store.py", PACKAGE / "models" / "store.py"}
FILE_NAMES = {value for store in (DatasetDir, ModelDir) for name, value in vars(store).items()
              if name.isupper() and isinstance(value, str) and "." in value}  # file names, not folders
FILE_NAMES -= {"confusion.png"}  # cv and evaluate name their own plots so too


def spelled_file_names(path: Path) -> list[str]:
    """``line name`` of every string constant in ``path`` that is a dataset or model file name (docstrings aside)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [f"{node.lineno} {node.value}" for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in FILE_NAMES and id(node) not in docstrings]


@pytest.mark.parametrize("module", sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                                          if p not in STORES))
def test_no_module_but_the_stores_spells_a_dataset_or_model_file_name(module):
    assert spelled_file_names(PACKAGE / module) == []


def test_metrics_round_trip_through_json_without_the_fields_a_kind_does_not_measure():
    metrics = Metrics(test_songs=3, test_chunks=9, song_accuracy=2 / 3, chunk_accuracy=0.5, best_epoch=2)
    saved = json.loads(json.dumps(metrics.to_dict()))
    assert set(saved) == {"test_songs", "test_chunks", "song_accuracy", "chunk_accuracy", "best_epoch"}
    assert Metrics.from_dict({**saved, "from_a_newer_version": 1}) == metrics
    assert metrics.song_accuracy == 2 / 3 and metrics.cv_accuracy is None
    assert not hasattr(metrics, "get") and not hasattr(metrics, "__getitem__")  # read by attribute, one way
    with pytest.raises(ModelError, match="m.json: is damaged"):
        Metrics.from_dict([1, 2], where="m.json")


def test_a_fit_writes_its_kind_and_metrics_through_the_model_folder(trained):
    folder = ModelDir(trained["result"].model_dir)
    assert folder.kind() == "cnn"
    assert folder.read_metrics() == trained["result"].metrics
    assert folder.read_classes() == ("chirps", "noise", "tones")
    assert folder.read_filterbank(folder.read_feature_config()).shape == (16, 129)
    for name in (folder.KERAS, folder.LITERT, folder.HISTORY_PLOT, folder.PROFILE):
        assert (folder / name).is_file()


def test_models_fitted_before_kind_was_written_are_still_recognised(tmp_path):
    folder = ModelDir(tmp_path)
    (tmp_path / folder.CONFIG).write_text(json.dumps({"classes": ["a", "b"], "train_config": {"backbone": None}}))
    assert folder.kind() == "cnn"
    (tmp_path / folder.CONFIG).write_text(json.dumps({"classes": ["a", "b"], "train_config": {"backbone": "musicnn"}}))
    assert folder.kind() == "musicnn"
    assert folder.read_metrics() is None  # no metrics.json


def test_a_model_folder_refuses_an_unknown_kind_and_names_damaged_files(tmp_path):
    folder = ModelDir(tmp_path)
    with pytest.raises(ModelError, match="kind='svm' must be one of cnn, musicnn, baseline"):
        folder.write_config(kind="svm", classes=["a", "b"], package_version="0")
    (tmp_path / folder.CONFIG).write_text("{")
    with pytest.raises(ModelError, match=r"config.json: the model config is not valid JSON .*; refit the model"):
        folder.kind()
    (tmp_path / folder.FILTERBANK).write_bytes(b"garbage")
    with pytest.raises(ModelError, match="mel_filterbank.npy: is damaged"):
        folder.read_filterbank(None)


def test_a_dataset_folder_reads_back_what_the_build_wrote(trained):
    folder = DatasetDir(trained["dataset"])
    dataset = load_dataset(trained["dataset"])
    assert folder.read_summary() == read_summary(trained["dataset"])
    assert folder.read_summary().chunks == len(dataset.features) == len(folder.read_manifest())
    assert folder.read_feature_config() == dataset.feature_config
    assert tuple(folder.read_classes()) == dataset.classes
    assert folder.fingerprint() == dataset.fingerprint
    np.testing.assert_array_equal(folder.open_features()[:3], dataset.features[:3])


def test_a_damaged_manifest_is_named_with_the_fix(trained, tmp_path):
    folder = DatasetDir(tmp_path)
    (tmp_path / folder.MANIFEST).write_text("song,label,offset_seconds,split\na.mp3,rock,0.0,holdout\n")
    with pytest.raises(DatasetError, match=r"manifest.csv: is damaged \(unknown split 'holdout'\); rebuild"):
        folder.read_manifest()
    (tmp_path / folder.MANIFEST).write_text("name,genre\n")
    with pytest.raises(DatasetError, match="its header is not song,label,chunk"):
        folder.read_manifest()


def test_concatenated_tables_keep_one_header_and_every_row(tmp_path):
    parts = []
    for i in range(3):
        part = DatasetDir(tmp_path / f"part{i}")
        part.path.mkdir()
        part.write_skipped([(f"song{i}.mp3", "too short")])
        parts.append(part)
    merged = DatasetDir(tmp_path)
    merged.write_concatenated(merged.SKIPPED, parts)
    assert (tmp_path / merged.SKIPPED).read_text().splitlines() == [
        "song,reason", "song0.mp3,too short", "song1.mp3,too short", "song2.mp3,too short"]


def test_a_latest_pointer_can_be_named_as_the_model_but_never_leads_to_a_pickle(trained, tmp_path):
    import shutil

    from genre_cnn.errors import ModelError
    from genre_cnn.models.registry import resolve_model_dir

    models = tmp_path / "models"
    shutil.copytree(trained["result"].model_dir, models / "net")
    (models / "latest").write_text("net\n")
    assert resolve_model_dir(models / "latest") == models / "net"

    baseline = models / "baseline"
    baseline.mkdir()
    (baseline / "config.json").write_text('{"kind": "baseline"}')
    (baseline / "model.joblib").write_bytes(b"a pickle")
    assert resolve_model_dir(baseline) == baseline  # named directly: the user chose to load it
    (models / "latest").write_text("baseline\n")
    with pytest.raises(ModelError, match="a baseline model is opened only from its folder named directly"):
        resolve_model_dir(models / "latest")
    with pytest.raises(ModelError, match="a baseline model is opened only from its folder named directly"):
        resolve_model_dir(models_root=models)


def test_a_model_without_a_network_is_not_exported_and_the_message_names_its_kind(tmp_path):
    from genre_cnn.errors import ModelError
    from genre_cnn.inference.export import export_model

    folder = tmp_path / "baseline"
    folder.mkdir()
    (folder / "config.json").write_text('{"kind": "baseline"}')
    (folder / "model.joblib").write_bytes(b"a pickle")
    with pytest.raises(ModelError, match=r"baseline: a baseline model has no network \(model.keras\) to export; it "
                                         r"runs where genre-cnn is installed"):
        export_model(folder, fmt="onnx")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=12).map(os.fsdecode),  # what the file system can hand us
                          st.lists(st.sampled_from(["\\", "\\x", "\\xe9", "\n", "\r", "\u2028", "\x85", '"', ",",
                                                    "é", "日"]), max_size=6).map("".join)),
                min_size=1, max_size=5))
def test_any_file_name_round_trips_through_a_valid_utf8_csv(tmp_path_factory, names):
    from genre_cnn.runtime.csvfiles import read_csv, write_csv

    path = tmp_path_factory.mktemp("csv") / "names.csv"
    write_csv(path, ["song", "number"], [[name, i] for i, name in enumerate(names)])
    path.read_bytes().decode("utf-8")  # strict
    assert [row["song"] for row in read_csv(path)[1]] == names
