"""Action recipes as plugins: built-ins here, others through the ``automodel.recipes`` entry point group.

Which recipes run is configuration: AUTOMODEL_RECIPES (names to run; empty means every recipe found),
AUTOMODEL_RECIPES_DISABLED (names to skip) and ENABLE_AGENT_ACTIONS (all of them on or off).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from automodel.errors import AutomodelError
from recipes.base import ActionContext, ActionOutcome, Recipe
from recipes.builtin import AnomalyAlertRecipe, DriftAlertRecipe, ReorderRecipe, RoleReviewRecipe

ENTRY_POINT_GROUP = "automodel.recipes"
BUILTIN: dict[str, type[Recipe]] = {cls.name: cls for cls in (RoleReviewRecipe, AnomalyAlertRecipe, ReorderRecipe, DriftAlertRecipe)}


def available_recipes() -> dict[str, type[Recipe]]:
    found = dict(BUILTIN)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry.load()
        except Exception as exc:  # a broken plugin must not stop the built-in recipes
            raise AutomodelError(f"Recipe plugin {entry.name!r} ({entry.value}) could not be loaded: {exc}; fix or uninstall it.") from exc
        if isinstance(cls, type) and issubclass(cls, Recipe):
            found.setdefault(cls.name, cls)
    return found


def _names(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item and item.strip()]


def select_recipes(enabled: str | list[str] | None = None, disabled: str | list[str] | None = None) -> list[str]:
    """The recipe names to run, in order: ``enabled`` (all found when empty) minus ``disabled``. Unknown names are an error."""
    found = available_recipes()
    chosen, skipped = _names(enabled) or list(found), set(_names(disabled))
    unknown = [n for n in [*chosen, *skipped] if n not in found]
    if unknown:
        raise AutomodelError(f"Unknown recipe(s) {', '.join(map(repr, unknown))} in AUTOMODEL_RECIPES/AUTOMODEL_RECIPES_DISABLED; "
                             f"known recipes: {', '.join(found)}.")
    return [n for n in chosen if n not in skipped]


__all__ = ["ActionContext", "ActionOutcome", "Recipe", "available_recipes", "select_recipes", "parse_recipe_options", "BUILTIN", "ENTRY_POINT_GROUP"]


def parse_recipe_options(text: str | dict | None) -> dict[str, dict]:
    """AUTOMODEL_RECIPE_OPTIONS: a JSON object of recipe name -> keyword options, e.g. {"reorder": {"threshold": 10}}."""
    import json

    if not text:
        return {}
    if isinstance(text, dict):
        options = text
    else:
        try:
            options = json.loads(text)
        except ValueError as exc:
            raise AutomodelError(f"AUTOMODEL_RECIPE_OPTIONS is not valid JSON ({exc.msg}); write e.g. {{\"reorder\": {{\"threshold\": 10}}}}.") from exc
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise AutomodelError("AUTOMODEL_RECIPE_OPTIONS must map recipe names to objects of options, e.g. {\"reorder\": {\"threshold\": 10}}.")
    return options
