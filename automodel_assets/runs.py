"""Launching runs: the one way the command line (and the HTTP service) execute a run of ``automodel_run``.

- ``submit_run(settings, instance, source, ...)`` creates a run from a file (automodel_assets.intake.create_run) and
  launches it; a failed run is marked failed with one sentence and its partial outputs removed.
- ``launch_run(settings, instance, run_id, ...)`` launches a recorded run: every asset of it, ``from_asset`` and
  everything downstream, or ``only`` the assets named (the others are loaded from storage).

The drop-folder sensors create runs the same way and hand the daemon a RunRequest for the same job; the UI launches
the same job too. This is the top of the wiring: it imports the definitions, nothing below imports it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import dagster as dg

# No public API launches a run of a reconstructable job with the code location of workspace.yaml recorded, so that
# the UI shows the run as one of its loaded job and can re-execute it: dg.execute_job creates the run without that
# origin. These three are the pieces dg.execute_job itself is made of.
from dagster._core.definitions.reconstruct import ReconstructableJob
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from automodel.atomic import file_lock
from automodel.errors import AutomodelError
from automodel.liveness import current_process
from automodel.sessions import SessionStore
from automodel_assets.definitions import automodel_run_job, current_definitions, run_asset_keys, run_selection, semantic_index_job
from automodel_assets.failures import RunOutcome, clear_run_outputs, failure_message
from automodel_assets.home import get_instance
from automodel_assets.intake import ORIGIN_TAG, RUN_ID_TAG, CreatedRun, create_run, run_tags
from automodel_assets.lake_state import index_matches_lake, record_lake_state
from automodel_assets.recovery import recover_dead_runs, worker_tags
from resources.settings import PROJECT_ROOT, AutomodelSettings

# Re-exported for callers that start runs: everything needed to create, launch and judge one comes from this module.
__all__ = ["CreatedRun", "RunOutcome", "SubmittedRun", "create_run", "get_instance", "launch_run", "submit_run", "materialize_run", "run_asset_names"]

LOCATION_NAME = "automodel"  # workspace.yaml and [tool.dagster] code_location_name
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class SubmittedRun:
    run_id: str
    outcome: RunOutcome


def submit_run(settings: AutomodelSettings, instance: dg.DagsterInstance, source: str, *, origin: str = "cli", **run: object) -> SubmittedRun:
    """Create a run from ``source`` (a local path or s3:// URI) and execute it in this process.

    ``run``: create_run's keywords (user_id, target, labels, category, model_run_id, options). Bad input raises
    AutomodelError before anything is recorded; a run that fails is marked failed in the session store with one
    sentence and its partial outputs removed. The session store then holds everything ``automodel run --json`` prints.
    """
    created = create_run(settings, instance, source, **run)
    outcome = launch_run(settings, instance, created.run_id, origin=origin)
    if not outcome.success:
        clear_run_outputs(settings, created.run_id)
        SessionStore(settings.layout.sessions_db).update(created.run_id, status="failed", error=outcome.error)
    return SubmittedRun(created.run_id, outcome)


def launch_run(settings: AutomodelSettings, instance: dg.DagsterInstance, run_id: str, from_asset: str | None = None, *,
               only: list[str] | None = None, origin: str = "cli") -> RunOutcome:
    """Execute the run's partition in this process: every asset of the run, ``from_asset`` and every run asset
    downstream of it, or ``only`` the named assets (their inputs loaded from the stored outputs of earlier runs).

    Dead runs are recovered first (their pool slots freed), the lake index is brought up to date, and the run
    executes with the job's executor, tagged like every run of ``automodel_run``.
    """
    asset_keys = _selected_keys(from_asset, only)
    # Runs killed earlier give back their pool slots first, or this run could wait for them for ever.
    recover_dead_runs(settings, instance)
    store = SessionStore(settings.layout.sessions_db)
    store.update(run_id, worker=current_process().encode())
    if not instance.has_dynamic_partition("run_id", run_id):
        instance.add_dynamic_partitions("run_id", [run_id])
    manifest = store.manifest(run_id)
    if not (manifest and manifest.model_run_id):  # a scoring run joins its model's lake tables: it searches no index
        ensure_index(settings, instance)
    tags = run_tags(manifest, origin) if manifest else {RUN_ID_TAG: run_id}
    result = execute_run_job(instance, run_id, tags, asset_keys)
    return RunOutcome(True, None) if result.success else RunOutcome(False, failure_message(result))


materialize_run = launch_run  # the name earlier callers (and tests) use


def run_asset_names() -> list[str]:
    """Every asset of a run (built in or added by an extension), as ``--from`` accepts them, in the order a run builds
    them (upstream first; the HTTP API lists a run's stages in it)."""
    definitions = current_definitions()
    wanted = set(run_asset_keys(list(definitions.assets or [])))
    return [key.to_user_string() for key in definitions.resolve_asset_graph().toposorted_asset_keys if key in wanted]


def _selected_keys(from_asset: str | None, only: list[str] | None) -> list[dg.AssetKey] | None:
    if not from_asset and not only:
        return None
    names = run_asset_names()
    for name in [from_asset] if from_asset else only:
        if name not in names:
            raise AutomodelError(f"Unknown asset {name!r}; choose one of {', '.join(names)}.")
    if only:
        return sorted(dg.AssetKey.from_user_string(name) for name in only)
    definitions = current_definitions()
    selection = dg.AssetSelection.assets(dg.AssetKey.from_user_string(from_asset)).downstream() & run_selection(list(definitions.assets or []))
    return sorted(selection.resolve(definitions.resolve_asset_graph()), key=lambda k: k.to_user_string())


def ensure_index(settings: AutomodelSettings, instance: dg.DagsterInstance) -> None:
    """Build the index when the lake changed since it was built, or when the instance has not recorded the lake it indexed."""
    if not settings.enable_semantic_merge or index_matches_lake(settings, instance):
        return
    with file_lock(settings.layout.catalog_db.with_suffix(".build.lock")):
        if not index_matches_lake(settings, instance):  # another process may have done it meanwhile
            record_lake_state(settings, instance, "The lake as the command line indexed it.")
            execute_run_job(instance, None, {ORIGIN_TAG: "cli"}, job_target=semantic_index_job)


def _remote_origin(job_name: str) -> RemoteJobOrigin:
    """Where the UI finds the job: the code location of workspace.yaml, so CLI runs match its job and can be re-executed."""
    location = ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name="automodel_assets.definitions", working_directory=str(PROJECT_ROOT)),
        LOCATION_NAME,
    )
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job_name)


def execute_run_job(instance: dg.DagsterInstance, partition_key: str | None, tags: dict[str, str],
                    asset_keys: list[dg.AssetKey] | None = None, job_target=None):
    """Run the real ``automodel_run`` job for one partition in this process's run worker, as the UI would launch it.

    The executor is the job's (in-process by default, AUTOMODEL_EXECUTOR otherwise); the run records the code
    location of workspace.yaml, so the UI shows it as a run of ``automodel_run`` and can re-execute it.
    """
    # Dagster keeps the last job definition per equal target; ours depends on the environment (AUTOMODEL_HOME, --lake),
    # which the command line and tests change within one process, so a cached one could run against another home.
    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()
    job = dg.reconstructable(job_target or automodel_run_job)
    load_data = job.repository.get_definition().repository_load_data
    job = job.with_repository_load_data(load_data)
    job_def = job.get_definition()
    # This process executes the run: its host, pid and start time let a later command tell whether it died (recovery).
    dagster_run = instance.create_run_for_job(
        job_def=job_def, run_config=QUIET_RUN_CONFIG,
        tags={**tags, **worker_tags(), **({"dagster/partition": partition_key} if partition_key else {})},
        asset_selection=frozenset(asset_keys) if asset_keys else None, remote_job_origin=_remote_origin(job_def.name),
        job_code_origin=job.get_python_origin(), repository_load_data=load_data,
    )
    return execute_run(job, dagster_run, instance, raise_on_error=False)
