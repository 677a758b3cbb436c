"""The one adapter between the HTTP service and the code that creates and launches runs.

Every call the service makes into the command line's and the sensors' run code goes through here, so that
code can move (a launch module shared by the CLI, the sensors and the service) by editing this file only.
What the service uses today:

- ``automodel_assets.intake``: ``create_run`` (validation, quotas, staging of the upload, manifest), ``parse_labels``,
  ``run_tags`` and the tag names; ``automodel_assets.home``: ``get_instance``; ``automodel_assets.failures``:
  ``failure_message``, ``clear_run_outputs``; ``automodel_assets.runs``: ``ensure_index``, ``run_asset_names``,
  ``_remote_origin``, ``QUIET_RUN_CONFIG``;
- ``automodel_assets.recovery.recover_dead_runs`` (a killed run is failed, its slots freed);
- ``automodel_assets.run_views``: ``run_result`` (the ``--json`` fields) and ``ask_run`` (``automodel ask``);
- ``automodel.drop_options``: ``column_choices`` (``--keep``/``--drop``) and the sidecar's validators (``budget_s``).

Unlike the command line, which executes a run in its own process, the service only *submits* a run of
``automodel_run`` to the instance's run queue (QueuedRunCoordinator): the daemon dequeues and launches it, with
the instance's concurrency limits, exactly like a drop sensor's run request.
"""

from __future__ import annotations

import threading
import types
from pathlib import Path

import dagster as dg

from analyzers.validation import parse_validate
from automodel.errors import AutomodelError, InputFileError
from automodel_assets import failures as _failures
from automodel_assets import home as _home
from automodel_assets import intake as _intake
from automodel_assets import runs as _runs
from resources.settings import AutomodelSettings
from resources.settings import current as current_settings

ORIGIN = "api"
PARTITION_TAG = "dagster/partition"
RUN_ID_TAG = _intake.RUN_ID_TAG
JOB_NAME = "automodel_run"

get_instance = _home.get_instance
parse_labels = _intake.parse_labels
run_asset_names = _runs.run_asset_names
failure_message = _failures.failure_message


def run_options(keep: list[str], drop: list[str], validate: str | None, budget: str | None) -> dict:
    """The run options the command line's flags and a drop's sidecar give, from form fields (one sentence when one is wrong)."""
    from automodel.drop_options import OPTION_VALIDATORS, column_choices

    options: dict = dict(column_choices("keep/drop", keep, drop))
    if budget not in (None, ""):
        try:
            seconds = float(budget)
        except ValueError:
            raise InputFileError(f"budget {budget!r} is not a number; give the search budget in seconds, e.g. 30.") from None
        options["budget_s"] = OPTION_VALIDATORS["budget_s"]("budget", "budget_s", seconds)
    if validate not in (None, ""):
        try:
            parse_validate(validate)  # as `automodel run --validate` checks it
        except ValueError:
            raise InputFileError(f"validate {validate!r} is not a scheme; use random, time:COLUMN or group:COLUMN.") from None
        options["validate"] = validate.strip()
    return options


def create_run(settings: AutomodelSettings, instance: dg.DagsterInstance, source: str, *, user_id: str, target: str | None = None,
               labels: dict | None = None, options: dict | None = None, model_run_id: str | None = None) -> str:
    """Validate and record a run whose input is ``source`` (a local file the service wrote, or an s3:// URI); its id.

    Quotas apply as for a tenant's drop (``from_drop``): the service's users are tenants, never the person at the
    command line. The partition is added by the submitter, as the daemon adds a sensor's.
    """
    created = _intake.create_run(settings, instance, source, user_id=user_id, target=target, labels=labels, options=options,
                               model_run_id=model_run_id, add_partition=False, from_drop=True)
    return created.run_id


def asset_keys_from(from_asset: str | None) -> list[dg.AssetKey] | None:
    """``rerun --from ASSET``: that asset and every run asset downstream of it (None: the whole run)."""
    if not from_asset:
        return None
    from automodel_assets.definitions import current_definitions, run_selection

    names = run_asset_names()
    if from_asset not in names:
        raise AutomodelError(f"Unknown asset {from_asset!r}; choose one of {', '.join(names)}.")
    definitions = current_definitions()
    selection = dg.AssetSelection.assets(dg.AssetKey.from_user_string(from_asset)).downstream() & run_selection(list(definitions.assets or []))
    return sorted(selection.resolve(definitions.resolve_asset_graph()), key=lambda k: k.to_user_string())


_job_lock = threading.Lock()
_JOBS: dict = {}


def _reconstructable_job():
    """The ``automodel_run`` job as the run worker will load it; built once per environment (a service's is fixed; tests
    change AUTOMODEL_HOME within one process, and Dagster caches job definitions per target, so the cache is cleared then)."""
    from dagster._core.definitions.reconstruct import ReconstructableJob

    from automodel_assets.definitions import automodel_run_job

    key = repr(current_settings())  # the asset modules, the asset store and the executor among them
    if key not in _JOBS:
        _JOBS.clear()
        ReconstructableJob.get_definition.cache_clear()
        ReconstructableJob.get_repository_definition.cache_clear()
        job = dg.reconstructable(automodel_run_job)
        load_data = job.repository.get_definition().repository_load_data
        job = job.with_repository_load_data(load_data)
        _JOBS[key] = (job, job.get_definition(), load_data)
    return _JOBS[key]


def has_run_queue(instance: dg.DagsterInstance) -> bool:
    from dagster._core.run_coordinator import QueuedRunCoordinator

    return isinstance(instance.run_coordinator, QueuedRunCoordinator)


def submit_run(settings: AutomodelSettings, instance: dg.DagsterInstance, run_id: str, from_asset: str | None = None) -> str:
    """Put a run of ``automodel_run`` for the partition on the instance's run queue; the daemon launches it. The Dagster run id."""
    if not has_run_queue(instance):
        raise AutomodelError("The Dagster instance has no run queue (its dagster.yaml sets another run coordinator); "
                             "use the QueuedRunCoordinator so the daemon launches the service's runs.")
    from automodel.sessions import SessionStore
    from automodel_assets.recovery import recover_dead_runs

    if not instance.has_dynamic_partition("run_id", run_id):
        instance.add_dynamic_partitions("run_id", [run_id])
    recover_dead_runs(settings, instance)  # runs killed earlier give back their pool slots first, as the command line does
    manifest = SessionStore(settings.layout.sessions_db).manifest(run_id)
    if not (manifest and manifest.model_run_id):  # a scoring run joins its model's lake tables: it searches no index
        _runs.ensure_index(settings, instance)
    tags = _intake.run_tags(manifest, ORIGIN) if manifest else {RUN_ID_TAG: run_id}
    asset_keys = asset_keys_from(from_asset)
    with _job_lock:
        job, job_def, load_data = _reconstructable_job()
        dagster_run = instance.create_run_for_job(
            job_def=job_def, run_config=_runs.QUIET_RUN_CONFIG, tags={**tags, PARTITION_TAG: run_id},
            asset_selection=frozenset(asset_keys) if asset_keys else None, remote_job_origin=_runs._remote_origin(job_def.name),
            job_code_origin=job.get_python_origin(), repository_load_data=load_data,
        )
    # The queued coordinator only records the run as queued; the workspace matters to coordinators that launch at once.
    instance.submit_run(dagster_run.run_id, workspace=None)
    return dagster_run.run_id


def mark_failed(settings: AutomodelSettings, run_id: str, error: str) -> None:
    """A run the service could not submit: failed with the sentence, nothing half-made left."""
    from automodel.sessions import SessionStore

    _failures.clear_run_outputs(settings, run_id)
    SessionStore(settings.layout.sessions_db).update(run_id, status="failed", error=error)


def recover_dead_runs(settings: AutomodelSettings, instance: dg.DagsterInstance) -> None:
    from automodel_assets.recovery import recover_dead_runs as recover

    recover(settings, instance)


def step_failure_message(instance: dg.DagsterInstance, dagster_run_id: str) -> str | None:
    """The one sentence ``automodel run`` would print for a failed Dagster run, read from its event log."""
    events = [entry.dagster_event for entry in instance.all_logs(dagster_run_id) if entry.dagster_event is not None]
    if not events:
        return None
    return failure_message(types.SimpleNamespace(all_events=events))


def run_json(settings: AutomodelSettings, run_id: str, error: str | None) -> dict:
    """The fields ``automodel run --json`` prints for this run."""
    from automodel.sessions import SessionStore
    from automodel_assets.run_views import run_result

    return run_result(SessionStore(settings.layout.sessions_db), run_id, error, settings.layout)


def ask(settings: AutomodelSettings, run_id: str, user_id: str, question: str, admin: bool) -> dict:
    """``automodel ask RUN_ID QUESTION --json`` for this caller."""
    from automodel_assets.run_views import ask_run

    return ask_run(settings, run_id, question, user_id=user_id, admin=admin)


def upload_folder(settings: AutomodelSettings) -> Path:
    """Where uploads are streamed before ``create_run`` stages them under the user's folder."""
    folder = settings.layout.home / "tmp" / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
