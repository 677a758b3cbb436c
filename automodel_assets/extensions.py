"""Assets and checks that data engineers add without editing this package.

Two ways, both found by convention (README, "Compose an asset"):

- a package publishes a module in the ``automodel.assets`` entry point group
  (``[project.entry-points."automodel.assets"] team = "my_team.assets"``);
- ``AUTOMODEL_ASSET_MODULES`` names importable modules, comma-separated (``my_team.assets``).

Every asset they define on the ``run_id`` partitions joins the ``automodel_run`` job, so
``automodel run``, ``automodel rerun --from`` and the drop-folder sensors build it with the rest.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from types import ModuleType

import dagster as dg

from automodel.errors import AutomodelError
from resources.settings import current

ENTRY_POINT_GROUP = "automodel.assets"
MODULES_VARIABLE = "AUTOMODEL_ASSET_MODULES"


def extension_modules() -> list[ModuleType]:
    modules: list[ModuleType] = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as exc:  # a broken plug-in is named, not a traceback
            raise AutomodelError(f"The {ENTRY_POINT_GROUP} entry point {entry.name!r} ({entry.value}) could not be loaded "
                                 f"({type(exc).__name__}: {_first_line(exc)}); fix or uninstall that package.") from exc
        if isinstance(loaded, ModuleType):
            modules.append(loaded)
    for name in (part.strip() for part in current().asset_modules.split(",")):
        if not name:
            continue
        try:
            modules.append(importlib.import_module(name))
        except Exception as exc:
            raise AutomodelError(f"{MODULES_VARIABLE} names {name!r}, which could not be imported ({type(exc).__name__}: {_first_line(exc)}); "
                                 "fix the module or put its folder on PYTHONPATH.") from exc
    return list({id(m): m for m in modules}.values())


def extension_definitions() -> tuple[list, list]:
    """(assets, asset checks) defined in the extension modules."""
    modules = extension_modules()
    if not modules:
        return [], []
    return list(dg.load_assets_from_modules(modules)), list(dg.load_asset_checks_from_modules(modules))


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
