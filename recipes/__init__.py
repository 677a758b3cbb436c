"""Action recipes as plugins: built-ins here, others through the ``automodel.recipes`` entry point group."""

from __future__ import annotations

from importlib.metadata import entry_points

from recipes.base import ActionContext, ActionOutcome, Recipe
from recipes.builtin import AnomalyAlertRecipe, ReorderRecipe, RoleReviewRecipe

ENTRY_POINT_GROUP = "automodel.recipes"
BUILTIN: dict[str, type[Recipe]] = {cls.name: cls for cls in (RoleReviewRecipe, AnomalyAlertRecipe, ReorderRecipe)}


def available_recipes() -> dict[str, type[Recipe]]:
    found = dict(BUILTIN)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        cls = entry.load()
        if isinstance(cls, type) and issubclass(cls, Recipe):
            found.setdefault(cls.name, cls)
    return found


__all__ = ["ActionContext", "ActionOutcome", "Recipe", "available_recipes", "BUILTIN"]
