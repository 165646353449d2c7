"""Model kinds as plug-ins: the one place that knows which kinds exist.

A *kind* is what a model folder's ``config.json`` records as ``"kind"`` and what ``classify``
opens it as: ``cnn`` (the CNN trained from scratch, with or without a teacher), ``musicnn`` (a head
on the pretrained musicnn backbone) and ``baseline`` (scikit-learn on handcrafted descriptors).
Each lives in one module of this package (:mod:`genre_cnn.kinds.cnn`, ...) that holds its
:class:`~genre_cnn.inference.prediction.Classifier`, its trainer (how ``fit`` trains it), its recipes (what
``cv`` compares) and its registration,
a :class:`Kind` named ``KIND``. ``open_classifier``, ``fit``, ``cv``, ``monitor`` and ``serve``
ask this registry and never name a kind (``tests/test_kinds.py`` fails if one does).

Adding a kind is one new module and one line in :data:`BUILT_IN`, or, from another package, an
entry point in the group ``genre_cnn.kinds`` naming its ``KIND``::

    [options.entry_points]
    genre_cnn.kinds =
        mykind = mypackage.genre_kind:KIND

The registry looks kinds up by module name when first asked, so the layers below (``inference``,
``training``), which the kinds' modules are built from, can reach them without importing upwards.
"""

from __future__ import annotations

import dataclasses
import importlib
import warnings
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping, Optional

from genre_cnn.errors import ConfigError, GenreCnnWarning, ModelError

__all__ = ["Kind", "BUILT_IN", "ENTRY_POINTS", "kind_names", "kind_named", "kind_for_options", "recipe_names",
           "recipe_named", "trainer_for"]

#: The kinds this package ships: name -> the module whose ``KIND`` registers it.
BUILT_IN = {
    "cnn": "genre_cnn.kinds.cnn",
    "musicnn": "genre_cnn.kinds.musicnn",
    "baseline": "genre_cnn.kinds.baseline",
}
#: The entry-point group where other packages register kinds.
ENTRY_POINTS = "genre_cnn.kinds"


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of model: how a folder of it is opened, and how it is trained.

    Attributes
    ----------
    name : str
        Written as ``"kind"`` in the model's ``config.json``.
    classifier : type
        Its :class:`~genre_cnn.inference.prediction.Classifier`: ``classifier.open(model_dir, *,
        backend="auto")`` opens a folder of this kind; its class attributes say what it can do
        (``makes_timelines``, ``inputs_are_log_mel``, ``combines_chunks``...).
    recipes : mapping of str to recipe
        What ``cv --recipes`` compares, by name: each recipe has ``run_folds`` (cross-validation on
        given folds) and ``challenge`` (trained on a dataset's training songs, scored on its test
        songs, for ``fit``'s comparison).
    trainer : genre_cnn.training.recipes.Trainer, optional
        How ``fit`` trains this kind; None when ``fit`` never does (the baseline has its own command).
    trains : callable, optional
        ``trains(options) -> bool`` for a fit's :meth:`TrainConfig.to_dict` (or an old model's saved
        ``train_config``): whether ``fit`` with those options trains this kind.
    pickled : bool
        Opening a folder unpickles a file: only ever from a folder the user names directly, never
        through ``models/latest`` or a link.
    """

    name: str
    classifier: type
    recipes: Mapping[str, Any]
    trainer: Any = None
    trains: Optional[Callable[[Mapping], bool]] = None
    pickled: bool = False


_kinds: Optional[dict[str, Kind]] = None


def _registry() -> dict[str, Kind]:
    global _kinds
    if _kinds is None:
        kinds = {name: importlib.import_module(module).KIND for name, module in BUILT_IN.items()}
        for point in entry_points(group=ENTRY_POINTS):
            if point.name in kinds:
                continue
            try:
                kinds[point.name] = point.load()
            except Exception as exc:  # a broken plug-in must not stop the kinds that work
                warnings.warn(f"the model kind {point.name!r} ({point.value}) could not be loaded ({exc}); "
                              "models of that kind will not open", GenreCnnWarning, stacklevel=2)
        for name, kind in kinds.items():
            if kind.name != name:
                raise ModelError(f"the kind registered as {name!r} calls itself {kind.name!r}")
        _kinds = kinds
    return _kinds


def kind_names() -> tuple[str, ...]:
    """Every kind this installation opens, built-in kinds first."""
    return tuple(_registry())


def kind_named(name: str, *, where: str = "kind") -> Kind:
    """The kind called ``name``.

    Parameters
    ----------
    where : str
        What to name in the error (a config file, an option).

    Raises
    ------
    ModelError
        No such kind here (a model of a newer version, or of a plug-in not installed).
    """
    kinds = _registry()
    if name not in kinds:
        raise ModelError(f"{where}: kind {name!r} is not one this version opens ({', '.join(kinds)}); "
                         "refit the model, or install the package that provides that kind")
    return kinds[name]


def kind_for_options(options: Mapping) -> Kind:
    """The kind that ``fit`` trains with ``options`` (a :meth:`TrainConfig.to_dict`, or an old model's
    saved ``train_config``): the first registered kind whose ``trains`` accepts them."""
    for kind in _registry().values():
        if kind.trainer is not None and kind.trains is not None and kind.trains(options):
            return kind
    raise ConfigError(f"no model kind trains these options ({dict(options)!r})")


def recipe_names() -> tuple[str, ...]:
    """The names ``cv --recipes`` accepts: every recipe of every kind, in the kinds' order."""
    return tuple(name for kind in _registry().values() for name in kind.recipes)


def recipe_named(name: str):
    """The recipe called ``name`` (one of :func:`recipe_names`).

    Raises
    ------
    ConfigError
    """
    for kind in _registry().values():
        if name in kind.recipes:
            return kind.recipes[name]
    raise ConfigError(f"recipes={name!r}: choose one or more of {','.join(recipe_names())}")


def trainer_for(config) -> Any:
    """How ``fit`` trains ``config`` (a :class:`~genre_cnn.config.TrainConfig`): the trainer of
    :func:`kind_for_options` (a :class:`genre_cnn.training.recipes.Trainer`)."""
    return kind_for_options(config.to_dict()).trainer
