"""Where models live, and the ``latest`` pointer that ``classify`` follows by default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from genre_cnn.data.store import DatasetDir
from genre_cnn.errors import ModelError
from genre_cnn.kinds import kind_named
from genre_cnn.models.store import MODEL_FOLDER, ModelDir

__all__ = ["DEFAULT_MODELS_DIR", "MODEL_FOLDER", "set_latest", "resolve_model_dir", "names_a_folder"]

DEFAULT_MODELS_DIR = Path("models")
LATEST = "latest"


def set_latest(model_dir: Path, *, models_root: str | os.PathLike = DEFAULT_MODELS_DIR) -> None:
    """Record ``model_dir`` in the text file ``models_root/latest`` (written atomically)."""
    root = Path(models_root)
    root.mkdir(parents=True, exist_ok=True)
    target = Path(model_dir).resolve()
    try:
        text = target.relative_to(root.resolve()).as_posix()
    except ValueError:
        text = str(target)
    temporary = root / f".{LATEST}.tmp-{os.getpid()}"
    temporary.write_text(text + "\n", encoding="utf-8")
    os.replace(temporary, root / LATEST)


def names_a_folder(model: Optional[str | os.PathLike]) -> bool:
    """Whether ``model`` names a model folder itself: not the default, a ``latest`` pointer or a symbolic link.

    Only such a folder may hand over a pickle (a kind whose folder holds one, the baseline's
    ``model.joblib``): nothing reached indirectly is ever unpickled.
    """
    return model is not None and Path(model).is_dir() and not Path(model).is_symlink()


def resolve_model_dir(
    model: Optional[str | os.PathLike] = None, *, models_root: str | os.PathLike = DEFAULT_MODELS_DIR
) -> Path:
    """The model folder to use: ``model`` if given, else the one ``models_root/latest`` names.

    ``model`` may also be a ``latest`` pointer itself (``models/latest``): the folder it names. A
    model folder has a ``config.json`` (whose ``"kind"`` says what opens it: :mod:`genre_cnn.kinds`)
    or, fitted before it had one, a network (``model.keras``). A kind whose folder holds a pickle
    (the baseline) is accepted only from a folder named directly, never through a pointer. Whether
    the kind's own files are all there is for the kind to say when it opens the folder.

    Raises
    ------
    ModelError
        No model given and no ``latest`` pointer, not a model folder, or a pickled kind reached
        through a pointer or a link.
    """
    named_directly = names_a_folder(model)
    if model is None:
        pointer = Path(models_root) / LATEST
        if not pointer.is_file():
            raise ModelError(f"No model at {Path(models_root)}. Run 'genre-cnn fit' first, or pass model=DIR")
        model_dir = Path(models_root) / pointer.read_text(encoding="utf-8").strip()
    elif Path(model).name == LATEST and Path(model).is_file():
        model_dir = Path(model).parent / Path(model).read_text(encoding="utf-8").strip()
    else:
        model_dir = Path(model)
    if not model_dir.is_dir():
        raise ModelError(f"No model at {model_dir}. Run 'genre-cnn fit' first, or pass model=DIR")
    if DatasetDir(model_dir).exists():
        raise ModelError(f"{model_dir}: is a dataset folder, not a model; train one on it with "
                         f"'genre-cnn fit --data {model_dir}' and pass the model folder it writes (models/NAME)")
    folder = ModelDir(model_dir)
    if not (folder / folder.CONFIG).is_file():
        if not (folder / folder.KERAS).is_file():
            raise ModelError(f"{model_dir}: {ModelDir.KERAS} is missing; refit with 'genre-cnn fit'")
        return model_dir  # a network without its config.json: opening it says that it is missing
    kind = kind_named(folder.kind(), where=str(folder / folder.CONFIG))
    if kind.pickled and not named_directly:
        raise ModelError(f"{model_dir}: a {kind.name} model is opened only from its folder named directly "
                         f"(model={model_dir}), never through models/latest or a link: its file is a pickle")
    return model_dir
