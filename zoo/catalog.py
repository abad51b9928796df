"""``registry.json``: the registry exported from code, and a staleness check.

Example:
    >>> import tempfile
    >>> path = write_catalog(Path(tempfile.mkdtemp()) / "registry.json")   # regenerate
    >>> check_catalog(path)        # raises CatalogStaleError when out of date
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from zoo.api import info
from zoo.atomic import atomic_write_text
from zoo.listing import plugin_entry_points
from zoo.registry import all_specs, is_builtin

CATALOG_VERSION = 1
#: What a weight tag's ``build`` holds in the catalog when its overrides build another model than
#: the default tag's (the architecture's own fields describe the default tag).
TAG_BUILD_FIELDS = ("config", "input_spec", "outputs", "parameters")


class CatalogStaleError(RuntimeError):
    """``registry.json`` does not match what the code generates."""


def catalog() -> dict[str, Any]:
    """Every architecture and weight tag, as written to ``registry.json``.

    Example:
        >>> sorted(catalog()["models"])                                    # doctest: +SKIP
        ['cnn', 'resnet18', 'resnet34', 'xception_localizer']
    """
    models = {}
    for spec in all_specs():
        try:
            details = info(spec.name)
        except Exception as error:
            if is_builtin(spec.module):
                raise
            # A plugin's model that does not build (or describe itself) must not break the listing
            # of every other model: it is left out, with a warning that says why.
            warnings.warn(f"{spec.name} (registered by {spec.module}) could not be built for the catalog and is "
                          f"left out: {error!r}", stacklevel=2)
            continue
        details.pop("name")
        details.pop("tag")
        default = spec.weight(spec.default_tag)
        for tag, weight in details["weights"].items():  # a tag whose overrides build another model
            if default is None or dict(spec.weights[tag].overrides) == dict(default.overrides):
                continue
            try:
                tagged = info(f"{spec.name}.{tag}")
            except Exception as error:  # a plugin's broken tag must not break the listing of every model
                warnings.warn(f"{spec.name}.{tag} could not be built for the catalog: {error!r}")
                continue
            build = {key: tagged[key] for key in TAG_BUILD_FIELDS}
            if build != {key: details[key] for key in TAG_BUILD_FIELDS}:
                weight["build"] = build
        models[spec.name] = details
    return {
        "catalog_version": CATALOG_VERSION,
        "generated_by": "python scripts/update_registry.py",
        "models": models,
    }


def check_no_plugins() -> None:
    """Raise ``ValueError`` when plugins are installed or registered: ``registry.json`` lists zoo's
    own models (``zoo list`` adds plugins' live), so it is generated without them.

    Example:
        >>> check_no_plugins()  # nothing installed here
    """
    installed = sorted(point.value for point in plugin_entry_points())
    foreign = sorted(
        f"{spec.name} ({spec.registered_by})"
        for spec in all_specs()
        if not (is_builtin(spec.module) and is_builtin(spec.registered_by))
    )
    if installed or foreign:
        raise ValueError(
            "registry.json lists zoo's own architectures, but `zoo.models` plugins are installed or registered: "
            f"regenerate it in an environment without them. Received: entry points {installed}, plugin models {foreign}"
        )


def render_catalog() -> str:
    """``registry.json``'s exact text.

    Example:
        >>> json.loads(render_catalog())["generated_by"]                   # doctest: +SKIP
        'python scripts/update_registry.py'
    """
    check_no_plugins()
    return json.dumps(catalog(), indent=2, sort_keys=True) + "\n"


def write_catalog(path: str | os.PathLike) -> Path:
    """Regenerate ``registry.json`` at ``path`` (through a symbolic link: the checkout's top-level
    ``registry.json`` links to the packaged ``zoo/registry.json``, which ``zoo list`` reads).

    Example:
        >>> write_catalog("registry.json")                                  # doctest: +SKIP
        PosixPath('/.../zoo/registry.json')
    """
    target = Path(path).resolve()
    if not target.parent.is_dir():  # a mistyped folder is not created
        raise FileNotFoundError(f"No folder {str(target.parent)!r} to write {target.name!r} into. Received: path={str(path)!r}")
    return atomic_write_text(target, render_catalog())


def check_catalog(path: str | os.PathLike) -> None:
    """Raise :class:`CatalogStaleError` naming the differing entries if ``path`` is stale.

    Example:
        >>> check_catalog("registry.json")                                  # doctest: +SKIP
    """
    path = Path(path)
    expected = render_catalog()
    if not path.exists():
        raise CatalogStaleError(f"{str(path)!r} does not exist; run `python scripts/update_registry.py`.")
    actual = path.read_text()
    if actual != expected:
        try:
            old = json.loads(actual) if actual.strip() else {}
        except ValueError as error:
            raise CatalogStaleError(
                f"{str(path)!r} is not valid JSON ({error}); run `python scripts/update_registry.py`."
            ) from None
        old = old.get("models", {}) if isinstance(old, dict) else {}
        old = old if isinstance(old, dict) else {}
        new = json.loads(expected)["models"]
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise CatalogStaleError(
            f"{str(path)!r} is stale (entries differ: {changed or 'format'}); "
            "run `python scripts/update_registry.py` and commit the result."
        )
