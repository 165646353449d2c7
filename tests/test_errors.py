"""Errors name what is wrong in the caller's own words: parameters from Python, options on the command line."""

import pytest
from click.testing import CliRunner

from genre_cnn.cli import command_line_message, main
from genre_cnn.config import TrainConfig
from genre_cnn.data.split import split_songs
from genre_cnn.errors import ConfigError
from genre_cnn.kinds import configured


def test_a_library_error_names_the_python_parameter_and_carries_it():
    with pytest.raises(ConfigError, match=r"^val_fraction=1.2 must be in \[0, 1\)$") as caught:
        split_songs(["a", "b"], val_fraction=1.2)
    assert caught.value.parameter == "val_fraction"
    with pytest.raises(ConfigError, match=r"^fine_tune=True is an option of the musicnn kind, not of the cnn kind "
                                          r"this trains; leave it out$") as caught:
        configured(TrainConfig(options={"fine_tune": True}))
    assert caught.value.parameter == "fine_tune"


def test_the_command_line_spells_the_same_error_with_its_options(tmp_path):
    (tmp_path / "tracks").mkdir()
    result = CliRunner().invoke(main, ["build-dataset", str(tmp_path / "tracks"), "--val-fraction", "0.6",
                                       "--test-fraction", "0.5", "--out", str(tmp_path / "ds")])
    assert result.exit_code != 0
    assert "--val-fraction 0.6 + --test-fraction 0.5 must be below 1" in result.output
    assert "val_fraction" not in result.output


@pytest.mark.parametrize("message, expected", [
    ("val_fraction=1.2 must be in [0, 1)", "--val-fraction 1.2 must be in [0, 1)"),
    ("fine_tune=True needs backbone='musicnn'", "--fine-tune needs --backbone musicnn"),
    ("augment=gain,mixup does not apply", "--augment gain,mixup does not apply"),
    ("checkpoint=/tmp/best.h5: the file name must end in .keras",
     "--checkpoint /tmp/best.h5: the file name must end in .keras"),
    ("learning_rate=-1 must be a positive number", "--lr -1 must be a positive number"),
    ("amin=0 must be > 0", "amin=0 must be > 0"),  # not an option of this command: left as it is
])
def test_parameters_are_mapped_to_options_in_one_place(message, expected):
    options = {"val_fraction": "--val-fraction", "fine_tune": "--fine-tune", "backbone": "--backbone",
               "augment": "--augment", "checkpoint": "--checkpoint", "learning_rate": "--lr"}
    assert command_line_message(message, options) == expected


def test_every_public_exception_and_warning_is_defined_in_errors_py():
    """One module to read for what a caller may catch (a module's private control-flow exceptions aside)."""
    import ast
    from pathlib import Path

    import genre_cnn

    package = Path(genre_cnn.__file__).parent
    elsewhere = []
    for module in package.rglob("*.py"):
        if module.name == "errors.py" and module.parent == package:
            continue
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            bases = [getattr(base, "id", getattr(base, "attr", "")) for base in node.bases]
            if any(base.endswith(("Error", "Exception", "Warning")) for base in bases):
                elsewhere.append(f"{module.relative_to(package)}: {node.name}")
    assert not elsewhere, f"define them in genre_cnn/errors.py: {elsewhere}"
