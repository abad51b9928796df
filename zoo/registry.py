"""The model registry: architecture specs, weight tags, release records, plugins and listing.

Names follow timm: ``arch`` or ``arch.tag`` (``resnet34.fmnist``). A bare ``arch`` means its
default tag when it has one. Architectures register themselves with :func:`register_model`;
other installed packages add theirs through the ``zoo.models`` entry-point group, e.g. in
their ``pyproject.toml``::

    [project.entry-points."zoo.models"]
    my_models = "my_package.models"   # a module whose import calls @zoo.register_model
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.resources
import inspect
import json
import re
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

from zoo.listing import name_patterns, names_tags, plugin_entry_points
from zoo.recipe import TASKS, Recipe

#: The built-in architectures, imported on the registry's first lookup like plugins are.
BUILTIN_MODULES = ("zoo.models",)
_RELEASE_PACKAGE = "zoo.released"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


@dataclass(frozen=True)
class FileRecord:
    """One released file: its name, sha256 and size in bytes."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Release:
    """What exists of a weight tag: files with hashes, measured metrics, where to get them.

    Written by ``scripts/release.py`` / ``scripts/publish.py --register`` into
    ``zoo/released/<arch>.<tag>.json``; never edited by hand.
    """

    files: tuple[FileRecord, ...]
    metrics: Mapping[str, float]
    train_command: str
    seed: int | None = None
    backend: str | None = None
    trained_on: str | None = None
    storage_dtype: str = "float32"
    local_dir: str | None = None
    hub_repo_id: str | None = None
    hub_revision: str | None = None
    notes: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Release":
        """A release record as read from ``zoo/released/<name>.json`` (unknown fields ignored)."""
        files = tuple(FileRecord(**f) for f in data["files"])
        known = {k: v for k, v in data.items() if k != "files" and k in cls.__dataclass_fields__}
        return cls(files=files, **known)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``zoo/released/<name>.json``; :meth:`from_dict` reads it back."""
        return {
            "files": [vars(f) for f in self.files],
            "metrics": dict(self.metrics),
            "train_command": self.train_command,
            "seed": self.seed,
            "backend": self.backend,
            "trained_on": self.trained_on,
            "storage_dtype": self.storage_dtype,
            "local_dir": self.local_dir,
            "hub_repo_id": self.hub_repo_id,
            "hub_revision": self.hub_revision,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class WeightSpec:
    """A weight tag: the one record of what its weights are and how they were made.

    Architecture ``overrides``, dataset, label names, preprocessing, target metrics, the
    ``release_floor`` (test metrics below which the weights are not released), license, the Hub
    repo, the training ``recipe`` (``zoo.recipe.Recipe``) and the command that runs it.
    ``release`` (files with sha256, measured metrics, pinned Hub revision) is filled from the
    release record when the weights exist; a tag without one is listed as planned, never as
    available.
    """

    tag: str
    dataset: str
    description: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    label_names: tuple[str, ...] = ()
    preprocessing: Mapping[str, Any] = field(default_factory=dict)
    targets: Mapping[str, float] = field(default_factory=dict)
    release_floor: Mapping[str, float] = field(default_factory=dict)
    license: str = "apache-2.0"
    hub_repo_id: str | None = None
    train_command: str = ""
    recipe: Recipe | None = None
    release: Release | None = None

    @property
    def available(self) -> bool:
        return self.release is not None


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: its builder, default config and weight tags."""

    name: str
    builder: Callable[..., Any]
    default_config: Mapping[str, Any]
    description: str
    weights: Mapping[str, WeightSpec]
    default_tag: str | None
    head: tuple[str, ...]
    module: str
    task: str = "classification"
    #: The module whose code called ``register_model`` (a plugin may register a built-in's builder).
    registered_by: str = ""

    def weight(self, tag: str | None) -> WeightSpec | None:
        """The weight spec for ``tag`` (``None`` means the default tag)."""
        tag = tag or self.default_tag
        if tag is None:
            return None
        if tag not in self.weights:
            raise ValueError(
                f"Unknown weight tag {tag!r} for {self.name!r}. "
                f"Known tags: {sorted(self.weights) or 'none'}. Received: name='{self.name}.{tag}'"
            )
        return self.weights[tag]

    def config_for(self, tag: str | None, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Default config, then the tag's overrides, then the caller's (checked) overrides."""
        unknown = sorted(set(overrides) - set(self.default_config))
        if unknown:
            raise ValueError(
                f"Unknown argument(s) {unknown} for {self.name!r}. "
                f"Accepted: {sorted(self.default_config)}. Received: {dict(overrides)!r}"
            )
        spec = self.weight(tag)
        return {**self.default_config, **(spec.overrides if spec else {}), **overrides}


_REGISTRY: dict[str, ModelSpec] = {}
_plugins_loaded = False


def _signature_defaults(builder: Callable[..., Any]) -> dict[str, Any]:
    defaults = {}
    for param in inspect.signature(builder).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is inspect.Parameter.empty:
            raise TypeError(
                f"Builder {builder.__name__!r} must give every argument a default. "
                f"Received: parameter {param.name!r} without one"
            )
        defaults[param.name] = param.default
    return defaults


def _check_json_defaults(builder: Callable[..., Any], defaults: Mapping[str, Any]) -> None:
    """A builder's defaults are its config.json: each must be a JSON value (numbers, strings, lists)."""
    for key, value in defaults.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(
                f"Builder {builder.__name__!r}: every default is written to config.json, so it must be a JSON "
                "value (a number, string, bool, None, or a list/tuple/dict of them; an activation by its "
                f"name, e.g. 'gelu'). Received: {key}={value!r}"
            ) from None


def read_release(name: str) -> Release | None:
    """The release record of ``arch.tag`` shipped in ``zoo/released/``, or ``None``.

    Example:
        >>> read_release("cnn.fmnist").metrics["accuracy"]
        0.9397
        >>> read_release("resnet18.fmnist") is None
        True
    """
    try:
        text = importlib.resources.files(_RELEASE_PACKAGE).joinpath(f"{name}.json").read_text()
    except (FileNotFoundError, ModuleNotFoundError):
        return None
    return Release.from_dict(json.loads(text))


def register_model(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    weights: Iterable[WeightSpec] = (),
    default_tag: str | None = None,
    head: Iterable[str] = (),
    task: str = "classification",
    overwrite: bool = False,
) -> Any:
    """Register a model builder under ``name`` (default: the function's name).

    The builder must take keyword arguments only, each with a default; those defaults are the
    architecture's default config. ``head`` names the layers re-initialised when weights
    trained with another ``num_classes`` are loaded. ``task`` (``zoo.recipe.TASKS``) says what
    the outputs mean: it picks losses, metrics, evaluation and card tags (``zoo.tasks``).

    Example:
        >>> @register_model(head=("predictions",))                      # doctest: +SKIP
        ... def tiny_mlp(input_shape=(4,), num_classes=2):
        ...     inputs = keras.Input(input_shape)
        ...     return keras.Model(inputs, keras.layers.Dense(num_classes, name="predictions")(inputs))
    """
    caller = inspect.currentframe().f_back  # the decorated module, or the code that registers
    registered_by = caller.f_globals.get("__name__", "") if caller is not None else ""
    head = head if isinstance(head, str) else tuple(head)
    if isinstance(head, str) or not all(isinstance(layer, str) for layer in head):
        raise TypeError(f"`head` is a sequence of layer names, e.g. head=('predictions',). Received: head={head!r}")

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        if not is_builtin(builder.__module__):
            # The built-ins first: a later registration may replace one (overwrite=True). A built-in
            # never loads the plugins itself: they would register while its module is half imported.
            _load_plugins()
        arch = name or builder.__name__
        if not _NAME_RE.match(arch):
            raise ValueError(
                "Model names are lower-case letters, digits and underscores, starting with a "
                f"letter (dots separate tags). Received: name={arch!r}"
            )
        if arch in _REGISTRY and not overwrite and _REGISTRY[arch].builder is not builder:
            raise ValueError(
                f"A model named {arch!r} is already registered by {_REGISTRY[arch].module}. "
                "Pass overwrite=True to replace it."
            )
        if task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}. Received: task={task!r}")
        default_config = _signature_defaults(builder)
        _check_json_defaults(builder, default_config)
        tags: dict[str, WeightSpec] = {}
        for spec in weights:
            if not _TAG_RE.match(spec.tag):
                raise ValueError(f"Invalid weight tag. Received: tag={spec.tag!r}")
            if spec.tag in tags:
                raise ValueError(f"Each weight tag of {arch!r} must be given once. Received: tag={spec.tag!r} twice")
            unknown = sorted(set(spec.overrides) - set(default_config))
            if unknown:
                raise ValueError(
                    f"The overrides of {arch}.{spec.tag} must be arguments of its builder {builder.__name__!r} "
                    f"({sorted(default_config)}). Received: unknown {unknown}"
                )
            if spec.recipe is not None and spec.recipe.task != task:
                raise ValueError(
                    f"The recipe of {arch}.{spec.tag} is for task {spec.recipe.task!r}, the architecture's "
                    f"is {task!r}. Received: recipe.task={spec.recipe.task!r}"
                )
            # zoo's own release records belong to zoo's own builders: a plugin (or a user's model
            # registered over a built-in name) gives its WeightSpec.release itself.
            release = spec.release or (read_release(f"{arch}.{spec.tag}") if is_builtin(builder.__module__) else None)
            tags[spec.tag] = replace(spec, release=release)
        chosen = default_tag or (next(iter(tags)) if tags else None)
        if chosen is not None and chosen not in tags:
            raise ValueError(f"default_tag must be one of {sorted(tags)}. Received: {chosen!r}")
        doc = inspect.getdoc(builder) or ""
        spec = ModelSpec(
            name=arch,
            builder=builder,
            default_config=default_config,
            description=doc.split("\n\n")[0].replace("\n", " "),
            weights=tags,
            default_tag=chosen,
            head=tuple(head),
            module=builder.__module__,
            task=task,
            registered_by=registered_by,
        )
        existing = _REGISTRY.get(arch)
        if existing is not None and replace(existing, registered_by=registered_by) == spec:
            return builder  # the same registration again (e.g. an entry point its decorator ran): a no-op
        if existing is not None and not overwrite:
            raise ValueError(
                f"{arch!r} is already registered (by {existing.registered_by}) with other weight tags, head or "
                f"task. Pass overwrite=True to replace it. Received: tags {sorted(tags)}, registered "
                f"ones {sorted(existing.weights)}"
            )
        _REGISTRY[arch] = spec
        return builder

    return decorate(fn) if fn is not None else decorate


def set_release(name: str, release: Release | None) -> None:
    """Attach ``release`` to the registered weight tag ``arch.tag`` of this process.

    Called when a release record is written, so that listings and ``registry.json`` rendered
    afterwards in the same process see it.

    Example:
        >>> set_release("cnn.fmnist", read_release("cnn.fmnist"))
    """
    spec = get_spec(name)
    arch, tag = split_name(name)
    weight = spec.weight(tag)
    if weight is None:
        raise ValueError(f"{name!r} has no weight tag. Received: name={name!r}")
    weights = {**spec.weights, weight.tag: replace(weight, release=release)}
    _REGISTRY[arch] = replace(spec, weights=weights)


def is_builtin(module: str) -> bool:
    """Whether ``module`` (a builder's ``__module__``) is one of zoo's own architectures.

    Example:
        >>> is_builtin("zoo.models.resnet"), is_builtin("my_plugin.models")
        (True, False)
    """
    return any(module == package or module.startswith(f"{package}.") for package in BUILTIN_MODULES)


def _load_plugins() -> None:
    """Import the built-in architectures and every ``zoo.models`` entry point, once.

    The registry has no static import of any model: the built-ins (``BUILTIN_MODULES``) are
    imported by name here, on the first lookup, the same way other packages' models are.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True  # set first: the modules imported below register through here
    try:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
    except BaseException:
        _plugins_loaded = False
        raise
    for entry_point in plugin_entry_points():
        try:  # a broken plugin (import error, bad name or builder) must not break the zoo
            loaded = entry_point.load()
            if callable(loaded) and not inspect.isclass(loaded) and not inspect.ismodule(loaded):
                # Registered by its own decorator (under any name): done. A name another model holds: warned below.
                if not any(spec.builder is loaded for spec in _REGISTRY.values()):
                    register_model(loaded)
        except Exception as error:
            warnings.warn(f"zoo plugin {entry_point.name!r} failed to load: {error!r}")


def plugin_packages() -> tuple[str, ...]:
    """The top-level packages of the installed ``zoo.models`` plugins (trusted: the user installed them).

    Example:
        >>> isinstance(plugin_packages(), tuple)
        True
    """
    return tuple(sorted({point.value.split(":")[0].split(".")[0] for point in plugin_entry_points()}))


def split_name(name: str) -> tuple[str, str | None]:
    """Split ``"arch.tag"`` into ``("arch", "tag")``; a bare name gives ``("arch", None)``.

    Example:
        >>> split_name("resnet34.fmnist")
        ('resnet34', 'fmnist')
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A model name must be a non-empty string. Received: name={name!r}")
    arch, _, tag = name.partition(".")
    return arch, (tag or None)


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name`` (``arch`` or ``arch.tag``).

    Unknown names raise ``ValueError`` naming the closest registered names.

    Example:
        >>> get_spec("resnet34.fmnist").task
        'classification'
    """
    _load_plugins()
    arch, tag = split_name(name)
    if arch not in _REGISTRY:
        candidates = list(_REGISTRY) + [f"{a}.{t}" for a, s in _REGISTRY.items() for t in s.weights]
        close = difflib.get_close_matches(name.lower(), candidates, n=3, cutoff=0.4)  # names are lower-case
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"Unknown model {name!r}.{hint} Registered: {sorted(_REGISTRY)}. "
            f"Received: name={name!r}"
        )
    spec = _REGISTRY[arch]
    spec.weight(tag)  # validates the tag
    return spec


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def list_models(pattern: str | Iterable[str] = "*", pretrained: bool = False) -> list[str]:
    """Registered names matching ``pattern`` (fnmatch wildcards, one or a list), naturally sorted.

    Each pattern matches on its own: one with a dot (``"*.fmnist"``) matches ``arch.tag`` names,
    planned tags included, any other matches architectures. With ``pretrained=True`` only
    ``arch.tag`` names whose weights exist are returned (a pattern without a dot matches their
    architecture). timm lists tags only with ``include_tags``; here the dot asks for them.

    Example:
        >>> list_models("resnet*")
        ['resnet18', 'resnet34']
        >>> list_models(["cnn", "resnet*.fmnist"]), list_models("resnet*", pretrained=True)
        (['cnn', 'resnet18.fmnist', 'resnet34.fmnist'], ['resnet34.fmnist'])
    """
    patterns = name_patterns(pattern)
    _load_plugins()
    tagged = [
        f"{arch}.{tag}" for arch, spec in _REGISTRY.items() for tag, weight in spec.weights.items()
        if weight.available or not pretrained
    ]
    selected = set()
    for one in patterns:
        if pretrained:
            selected.update(n for n in tagged if fnmatch.fnmatchcase(n, one) or fnmatch.fnmatchcase(n.split(".")[0], one))
        elif names_tags([one]):
            selected.update(n for n in tagged if fnmatch.fnmatchcase(n, one))
        else:
            selected.update(n for n in _REGISTRY if fnmatch.fnmatchcase(n, one))
    return sorted(selected, key=_natural_key)


def all_specs() -> list[ModelSpec]:
    """Every registered :class:`ModelSpec`, naturally sorted by name.

    Example:
        >>> [spec.name for spec in all_specs()]
        ['cnn', 'resnet18', 'resnet34', 'xception_localizer']
    """
    _load_plugins()
    return [_REGISTRY[name] for name in sorted(_REGISTRY, key=_natural_key)]
