"""The one Definitions object: assets, checks, jobs, sensors, schedules and resources, chosen by configuration."""

from __future__ import annotations

import os
import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.BetaWarning)

from automodel_assets.assets import ALL_ASSETS, ASSET_CHECKS, RUN_ASSETS, semantic_index
from automodel_assets.io_manager import RunStoreIOManager
from automodel_assets.partitions import runs_partitions
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
            "llm": LLMResource.from_settings(settings), "notifier": NotifierResource.from_settings(settings)}


run_job = dg.define_asset_job(
    "automodel_run", selection=dg.AssetSelection.assets(*RUN_ASSETS), partitions_def=runs_partitions,
    description="Every stage of one run, for its run_id partition.",
)
index_job = dg.define_asset_job("semantic_index_job", selection=dg.AssetSelection.assets(semantic_index),
                                description="Rebuild the lake's semantic index.")


def _sensors_schedules_and_jobs():
    from sensors import JOBS, SCHEDULES, SENSORS

    return SENSORS, SCHEDULES, JOBS


_sensors, _schedules, _automation_jobs = _sensors_schedules_and_jobs()

defs = dg.Definitions(
    assets=ALL_ASSETS,
    asset_checks=ASSET_CHECKS,
    jobs=[run_job, index_job, *_automation_jobs],
    sensors=_sensors,
    schedules=_schedules,
    resources=build_resources(),
    executor=executor_from_env(),
)


def automodel_run_job() -> dg.JobDefinition:
    """The run job as a reconstructable target: out-of-process executors load it again in each step's process."""
    return defs.resolve_job_def("automodel_run")
