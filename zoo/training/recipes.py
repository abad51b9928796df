"""Training recipes, found from the weight tag they trained.

A weight tag's record (``zoo.registry.WeightSpec``) carries the :class:`zoo.recipe.Recipe` that
made its weights: ``get_recipe("resnet34")`` is the recipe of ``resnet34``'s default tag,
``get_recipe("cnn.fmnist")`` that of ``cnn.fmnist``. Architectures whose tags have none (a
plugin's, a new one) get one with :func:`register_recipe`; an explicitly registered recipe
wins over a tag's. Command-line flags and notebook arguments override single fields with
``get_recipe(name, **overrides)``.

The measured figures behind each built-in recipe are written next to it, in the model's own
module (``zoo/models/cnn.py``, ``resnet.py``, ``xception.py``).

Example:
    >>> recipe = get_recipe("resnet34", epochs=35)
    >>> recipe.epochs, recipe.optimizer, recipe.lr
    (35, 'sgd', 0.1)
"""

from __future__ import annotations

from typing import Any

from zoo.recipe import Recipe
from zoo.registry import all_specs, get_spec, split_name

__all__ = ["Recipe", "RECIPES", "get_recipe", "list_recipes", "register_recipe"]

#: Recipes registered explicitly, by architecture or ``arch.tag`` (they win over a tag's own).
RECIPES: dict[str, Recipe] = {}


def register_recipe(recipe: Recipe, *, name: str | None = None, overwrite: bool = False) -> Recipe:
    """Register ``recipe`` for ``name`` (default: ``recipe.arch``), e.g. a plugin architecture's.

    Example:
        >>> register_recipe(Recipe(arch="my_net", lr=0.01), overwrite=True).arch
        'my_net'
        >>> del RECIPES["my_net"]  # (the example leaves the registry as it found it)
    """
    key = name or recipe.arch
    if key in RECIPES and not overwrite:
        raise ValueError(f"A recipe for {key!r} is registered; pass overwrite=True to replace it.")
    RECIPES[key] = recipe
    return recipe


def _tag_recipe(name: str) -> Recipe | None:
    try:
        spec = get_spec(name)
    except ValueError:
        return None
    weight = spec.weight(split_name(name)[1])
    return weight.recipe if weight is not None else None


def list_recipes() -> list[str]:
    """Names that have a recipe: architectures whose default tag has one, and registered names.

    Example:
        >>> [name for name in list_recipes() if not name.startswith("my_")]
        ['cnn', 'resnet18', 'resnet34', 'xception_localizer']
    """
    tagged = {spec.name for spec in all_specs() if _tag_recipe(spec.name) is not None}
    return sorted(tagged | set(RECIPES))


def get_recipe(name: str, **overrides: Any) -> Recipe:
    """The recipe of ``name`` (``"arch"`` or ``"arch.tag"``), with field overrides.

    Example:
        >>> get_recipe("resnet34.fmnist", batch_size=128).batch_size
        128
    """
    arch = split_name(name)[0]
    recipe = RECIPES.get(name) or RECIPES.get(arch) or _tag_recipe(name)
    if recipe is None:
        raise ValueError(
            f"No training recipe for {name!r}. Recipes: {list_recipes()}. Add one with "
            f"zoo.training.register_recipe(Recipe(arch={arch!r}, ...))."
        )
    return recipe.replace(**overrides) if overrides else recipe
