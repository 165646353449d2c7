"""Model kinds as plug-ins: the one place that knows which kinds exist.

A *kind* is what a model folder's ``config.json`` records as ``"kind"``, what ``classify``
opens it as, and what a :class:`~genre_cnn.config.TrainConfig` names for ``fit`` to train:
``cnn`` (the CNN trained from scratch, with or without a teacher), ``musicnn`` (a head
on the pretrained musicnn backbone) and ``baseline`` (scikit-learn on handcrafted descriptors).
Each lives in one module of this package (:mod:`genre_cnn.kinds.cnn`, ...) that holds its
:class:`~genre_cnn.inference.prediction.Classifier`, its options (a frozen dataclass: what ``fit`` may
set for this kind alone), its trainer (how ``fit`` trains it), its recipes (what ``cv`` compares) and its
registration,
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

from genre_cnn.config import SHARED_TRAIN_OPTIONS, TrainConfig
from genre_cnn.errors import ConfigError, GenreCnnWarning, ModelError

__all__ = ["Kind", "NoOptions", "BUILT_IN", "ENTRY_POINTS", "kind_names", "kind_named", "kind_of_flat_train_config",
           "kind_taking", "configured", "options_of", "train_config_from_dict", "recipe_names", "recipe_named",
           "trainer_for"]

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
    options : type, optional
        Its options: a frozen dataclass whose fields have defaults and whose ``__post_init__`` checks
        them (raising :class:`~genre_cnn.errors.ConfigError` that names the field), what
        :attr:`TrainConfig.options <genre_cnn.config.TrainConfig>` holds for this kind (None: it has none,
        :class:`NoOptions`). Optionally a classmethod ``from_flat_train_config(saved)`` that picks them out of
        a config saved before kinds had their own options (see :func:`train_config_from_dict`).
    trainer : genre_cnn.training.recipes.Trainer, optional
        How ``fit`` trains this kind; None when ``fit`` never does (the baseline has its own command).
    claims_flat_train_config : callable, optional
        ``claims_flat_train_config(saved) -> bool``: whether a model folder written before ``config.json``
        recorded the kind, whose ``train_config`` (all kinds' options in one flat object) is ``saved``, is of
        this kind.
    pickled : bool
        Opening a folder unpickles a file: only ever from a folder the user names directly, never
        through ``models/latest`` or a link.
    """

    name: str
    classifier: type
    recipes: Mapping[str, Any]
    options: Optional[type] = None
    trainer: Any = None
    claims_flat_train_config: Optional[Callable[[Mapping], bool]] = None
    pickled: bool = False

    def __post_init__(self) -> None:
        if self.options is None:
            object.__setattr__(self, "options", NoOptions)


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a kind that has none of its own."""


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


def kind_of_flat_train_config(saved: Mapping) -> Kind:
    """The kind of a model folder written before ``config.json`` recorded its kind.

    Parameters
    ----------
    saved : mapping
        Its saved ``train_config``: all kinds' options in one flat object.

    Returns
    -------
    Kind
        The first kind whose ``claims_flat_train_config`` accepts it.
    """
    for kind in _registry().values():
        if kind.claims_flat_train_config is not None and kind.claims_flat_train_config(saved):
            return kind
    raise ModelError(f"no model kind trained with {dict(saved)!r}; refit the model")


def kind_taking(option: str) -> Optional[Kind]:
    """The first kind whose options include ``option`` (a field name), or None."""
    for kind in _registry().values():
        if option in {field.name for field in dataclasses.fields(kind.options)}:
            return kind
    return None


def configured(config: TrainConfig) -> TrainConfig:
    """``config`` with its options as its kind's options object, checked.

    Parameters
    ----------
    config : TrainConfig
        Its ``options`` by name (missing ones: the kind's defaults) or already its kind's options object.

    Returns
    -------
    TrainConfig
        ``config`` itself when its options are already the kind's object, else a copy whose ``options`` are.

    Raises
    ------
    ConfigError
        No kind of that name trains here, an option the kind does not take (named: the kind that takes it,
        or the ones this kind takes), or a bad value (named by the options' own check).
    """
    if config.kind not in _registry() or _registry()[config.kind].trainer is None:
        trained = [name for name, kind in _registry().items() if kind.trainer is not None]
        raise ConfigError(f"kind={config.kind!r} is not a model kind fit trains; choose one of "
                          f"{', '.join(trained)}", parameter="kind")
    kind = _registry()[config.kind]
    if isinstance(config.options, kind.options):
        return config
    if not isinstance(config.options, dict):
        raise ConfigError(f"options={type(config.options).__name__}(...) are not the {kind.name} kind's: give a "
                          f"{kind.options.__name__}, or the options by name", parameter="options")
    takes = [field.name for field in dataclasses.fields(kind.options)]
    for name, value in config.options.items():
        if name in takes:
            continue
        owner = kind_taking(name)
        if owner is not None:
            raise ConfigError(f"{name}={value!r} is an option of the {owner.name} kind, not of the {kind.name} kind "
                              "this trains; leave it out", parameter=name)
        raise ConfigError(f"{name}={value!r} is not an option of the {kind.name} kind (its options: "
                          f"{', '.join(takes) or 'none'})", parameter=name)
    return dataclasses.replace(config, options=kind.options(**config.options))


def options_of(config: TrainConfig):
    """The options object of ``config``'s kind: ``configured(config).options``."""
    return configured(config).options


def train_config_from_dict(saved: Mapping) -> TrainConfig:
    """A model's saved ``train_config`` as a checked :class:`TrainConfig`.

    Parameters
    ----------
    saved : mapping
        What :meth:`TrainConfig.to_dict` wrote, or what a release before kinds had their own options wrote (all
        kinds' options in one flat object; read as that release did: without ``refit``, not refitted).

    Returns
    -------
    TrainConfig

    Raises
    ------
    ModelError
        The kind is not one this installation has (a newer version's, or a plug-in's not installed).
    ConfigError
        The config is not an object, or holds options its kind does not take.
    """
    if not isinstance(saved, Mapping):
        raise ConfigError(f"the training config must be a JSON object, got {type(saved).__name__}")
    if "kind" in saved:
        kind_named(saved["kind"], where="the training config")
        return configured(TrainConfig.from_dict(dict(saved)))
    kind = kind_of_flat_train_config(saved)
    shared = {"refit": False, **{name: saved[name] for name in SHARED_TRAIN_OPTIONS if name in saved}}
    read_old = getattr(kind.options, "from_flat_train_config", None)
    options = read_old(saved) if read_old is not None else {}
    return configured(TrainConfig(**shared, kind=kind.name, options=options))


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


def trainer_for(config: TrainConfig) -> Any:
    """How ``fit`` trains ``config``: its kind's trainer (a :class:`genre_cnn.training.recipes.Trainer`).

    Raises
    ------
    ConfigError
        ``fit`` trains no kind of that name (:func:`configured`).
    """
    return _registry()[configured(config).kind].trainer
