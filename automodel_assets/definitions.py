"""The one Definitions object: assets, checks, jobs, sensors, schedules and resources, chosen by configuration."""

from __future__ import annotations

import os
import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from automodel_assets.assets import ALL_ASSETS, ASSET_CHECKS, semantic_index
from automodel_assets.extensions import extension_definitions
from automodel_assets.io_manager import RunStoreIOManager
from automodel_assets.partitions import is_run_partitioned, runs_partitions
from resources.dask import DaskResource
from resources.llm import LLMResource
from resources.notifier import NotifierResource
from resources.settings import AutomodelSettings
from resources.storage import StorageResource


def executor_from_env():
    """The executor is a deployment choice: in-process by default (~0.8 s per run), multiprocess or Celery by configuration."""
    choice = os.environ.get("AUTOMODEL_EXECUTOR", "in_process")
    if choice == "multiprocess":
        return dg.multiprocess_executor
    if choice == "celery":
        from dagster_celery import celery_executor

        # Broker and result backend come from the environment so workers and the run worker agree (README, Automation and deployment).
        broker = os.environ.get("AUTOMODEL_CELERY_BROKER", "redis://127.0.0.1:6379/0")
        return celery_executor.configured({"broker": broker, "backend": os.environ.get("AUTOMODEL_CELERY_BACKEND", broker)},
                                          name="automodel_celery")
    return dg.in_process_executor


def build_resources(settings: AutomodelSettings | None = None) -> dict:
    settings = settings or AutomodelSettings.from_env()
    base = os.environ.get("AUTOMODEL_ASSET_STORE") or str(settings.layout.asset_dir)
    return {"settings": settings, "storage": StorageResource(), "io_manager": RunStoreIOManager(base_path=base),
            "llm": LLMResource.from_settings(settings), "notifier": NotifierResource.from_settings(settings),
            "dask": DaskResource.from_settings(settings)}  # large tables' all-rows refit (automodel.large)


def _with_extensions() -> tuple[list, list]:
    extra_assets, extra_checks = extension_definitions()
    known = {id(a) for a in [*ALL_ASSETS, *ASSET_CHECKS]}  # an extension module that imports a built-in asset does not add it twice
    return ([*ALL_ASSETS, *(a for a in extra_assets if id(a) not in known)],
            [*ASSET_CHECKS, *(c for c in extra_checks if id(c) not in known)])


def run_selection(assets: list) -> dg.AssetSelection:
    """The run is a selection, not a list: every asset on the run_id partitions, built in or added (automodel_assets.extensions)."""
    return dg.AssetSelection.assets(*(a for a in assets if is_run_partitioned(a)))


def run_asset_keys(assets: list) -> list[dg.AssetKey]:
    return sorted({key for a in assets if is_run_partitioned(a) for key in a.keys}, key=lambda k: k.to_user_string())


def _sensors_schedules_and_jobs():
    from sensors import JOBS, SCHEDULES, SENSORS

    return SENSORS, SCHEDULES, JOBS


def build_definitions(settings: AutomodelSettings | None = None) -> dg.Definitions:
    """Every definition, with resources from ``settings`` (the environment by default) and the extension modules
    named now (AUTOMODEL_ASSET_MODULES, the ``automodel.assets`` entry points)."""
    assets, checks = _with_extensions()
    run_job = dg.define_asset_job(
        "automodel_run", selection=run_selection(assets), partitions_def=runs_partitions,
        description="Every asset of one run (each asset on the run_id partitions), for its run_id partition. "
                    "The command line, the drop-folder sensors and the UI all start this job.",
    )
    index_job = dg.define_asset_job("semantic_index_job", selection=dg.AssetSelection.assets(semantic_index),
                                    description="Rebuild the lake's semantic index.")
    sensors, schedules, automation_jobs = _sensors_schedules_and_jobs()
    return dg.Definitions(assets=assets, asset_checks=checks, jobs=[run_job, index_job, *automation_jobs], sensors=sensors,
                          schedules=schedules, resources=build_resources(settings), executor=executor_from_env())


_CURRENT: dict = {}


def current_definitions() -> dg.Definitions:
    """The definitions for the environment as it is now (the command line and tests change AUTOMODEL_HOME, --lake and
    AUTOMODEL_ASSET_MODULES within one process); built once per distinct environment."""
    key = (os.environ.get("AUTOMODEL_ASSET_MODULES", ""), os.environ.get("AUTOMODEL_ASSET_STORE", ""), os.environ.get("AUTOMODEL_EXECUTOR", ""),
           repr(AutomodelSettings.from_env()))
    if key not in _CURRENT:
        _CURRENT.clear()
        _CURRENT[key] = build_definitions()
    return _CURRENT[key]


defs = build_definitions()
DEFINED_ASSETS = list(defs.assets or [])
RUN_SELECTION = run_selection(DEFINED_ASSETS)
RUN_ASSET_KEYS = run_asset_keys(DEFINED_ASSETS)


def automodel_run_job() -> dg.JobDefinition:
    """The run job as a reconstructable target: the run worker and out-of-process executors' step processes load it again."""
    return current_definitions().resolve_job_def("automodel_run")


def semantic_index_job() -> dg.JobDefinition:
    """The index job as a reconstructable target (the command line builds the index through it)."""
    return current_definitions().resolve_job_def("semantic_index_job")
