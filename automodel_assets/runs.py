"""Creating and materializing runs: shared by the command line and the sensors.

A run is created by recording its manifest in the session store and adding its run_id
partition; materializing it needs nothing else, so the UI can rematerialize any partition.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from automodel.atomic import file_lock
from automodel.errors import AutomodelError, InputFileError
from automodel.ingest.archive import inflated_size, is_compressed
from automodel.ingest.loader import is_supported
from automodel.layout import Layout
from automodel.quotas import Tier, check_quota, parse_tiers
from automodel.safety import safe_file_name, safe_user_id
from automodel.sessions import RunManifest, SessionStore, new_run_id
from resources.settings import AutomodelSettings
from resources.storage import get_backend, stage_upload

QUOTA_WINDOW_S = 24 * 3600
REPO_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"


def ensure_dagster_home(layout: Layout) -> Path:
    """DAGSTER_HOME lives under AUTOMODEL_HOME; it gets the project's dagster.yaml the first time."""
    home = layout.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and REPO_DAGSTER_YAML.exists():
        shutil.copyfile(REPO_DAGSTER_YAML, config)
    return home


def get_instance(layout: Layout) -> dg.DagsterInstance:
    """The Dagster instance whose home is under AUTOMODEL_HOME (its dagster.yaml picks SQLite or Postgres).

    Creating a new instance's SQLite schemas is not safe from several processes at once (alembic
    stamps its version table twice), so the first use of a home is serialised by a file lock.
    """
    home = ensure_dagster_home(layout)
    with file_lock(home / ".init.lock"):
        instance = dg.DagsterInstance.from_config(str(home))
        instance.get_runs(limit=1)
        instance.get_dynamic_partitions("run_id")
        instance.all_instigator_state()
    return instance


def user_tier(settings: AutomodelSettings, user_id: str | None = None) -> Tier:
    """The user's tier: the free tier (MAX_REQUESTS_FREE, MAX_GB_FREE) unless AUTOMODEL_QUOTA_TIERS puts them in another."""
    free = Tier("free", settings.max_requests_free, settings.max_gb_free)
    return parse_tiers(getattr(settings, "quota_tiers", ""), free).tier_for(user_id)


def user_stored_bytes(layout: Layout, user_id: str) -> int:
    folder = layout.user_dir(user_id)
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def input_limits(settings: AutomodelSettings, user_id: str | None = None):
    """Bounds on a run's input: the settings' inflated size, expansion ratio and column limits; with a user, what is
    left of their storage quota too (a compressed upload counts at its inflated size)."""
    from automodel.ingest.archive import InputLimits

    if user_id is None:
        return InputLimits.from_settings(settings)
    left = int(user_tier(settings, user_id).max_gb * 1024**3) - user_stored_bytes(settings.layout, user_id)
    return InputLimits.from_settings(settings, quota_left_bytes=max(0, left))


def validate_source(source: str, allow_empty: bool = False) -> tuple[str, int]:
    """Check a local path or S3 URI before any work; return (file name, size). ``inspect`` describes empty files."""
    if source.startswith("s3://"):
        name = source.rstrip("/").rsplit("/", 1)[-1]
        if ".." in source.split("/"):
            raise InputFileError(f"{source} contains '..'; give a plain S3 key.")
        try:
            size = get_backend(source).size(source)
        except Exception as exc:  # botocore's ClientError for a missing key, connection errors
            raise InputFileError(f"{source} could not be found on S3 ({type(exc).__name__}); check the bucket, key and credentials.") from exc
    else:
        path = Path(source)
        if not path.exists():
            raise InputFileError(f"{source} does not exist; check the path and try again.")
        if not path.is_file():
            raise InputFileError(f"{source} is not a file; give the path of a CSV, Parquet, Excel or JSON file.")
        name, size = path.name, path.stat().st_size
    if size == 0 and not allow_empty:
        raise InputFileError(f"{name} is empty (0 bytes); upload a file with a header row and data.")
    if not is_supported(name):
        raise InputFileError(f"{name} is not a supported format; use CSV/TSV, Parquet, Excel (.xlsx), JSON or JSON Lines (optionally .gz or .zip).")
    return name, size


def parse_labels(pairs: list[str] | None) -> dict[str, str]:
    from automodel.ingest.roles import ROLES

    labels = {}
    for pair in pairs or []:
        column, sep, role = pair.partition("=")
        if not sep or not column or role not in ROLES:
            raise AutomodelError(f"Label {pair!r} must look like COLUMN=ROLE with ROLE one of: {', '.join(ROLES)}.")
        labels[column] = role
    return labels


@dataclass
class CreatedRun:
    run_id: str
    manifest: RunManifest


def create_run(settings: AutomodelSettings, instance: dg.DagsterInstance, source: str, *, user_id: str = "default",
               target: str | None = None, labels: dict | None = None, category: str | None = None,
               model_run_id: str | None = None, run_id: str | None = None, add_partition: bool = True) -> CreatedRun:
    """Validate the input and quotas, stage the upload under users/<user>/, record the manifest, add the partition."""
    layout = settings.layout
    user_id = safe_user_id(user_id)
    name, size = validate_source(source)
    safe_file_name(name)
    store = SessionStore(layout.sessions_db)
    # MAX_REQUESTS_FREE counts the runs of the last 24 hours, so a quota refills rather than ending the account.
    recent_runs = store.count_for_user(user_id, since=time.time() - QUOTA_WINDOW_S)
    check_quota(user_tier(settings, user_id), recent_runs, user_stored_bytes(layout, user_id), size)
    if not source.startswith("s3://") and is_compressed(name):  # counted at its inflated size, streamed, never held
        inflated_size(name, Path(source).read_bytes(), input_limits(settings, user_id))
    if model_run_id:
        previous = store.get(model_run_id)
        if previous is None or previous["user_id"] != user_id:  # another user's model is reported exactly like a missing one
            raise AutomodelError(f"Run {model_run_id} is not known for user {user_id!r}; list runs with `automodel sessions --user {user_id}`.")
        if not previous.get("model_path"):
            raise AutomodelError(f"Run {model_run_id} has no saved predictive model to reuse; score with a run that trained a regression or classification model.")
    source_uri = source if source.startswith("s3://") else str(stage_upload(layout, user_id, Path(source).resolve()))
    manifest = RunManifest(run_id=run_id or new_run_id(), source_uri=source_uri, user_id=user_id, file_name=name, target=target,
                           labels=labels or {}, category=category, model_run_id=model_run_id)
    store.create(manifest)
    if add_partition:
        instance.add_dynamic_partitions("run_id", [manifest.run_id])
    return CreatedRun(manifest.run_id, manifest)


def index_is_current(settings: AutomodelSettings) -> bool:
    from automodel.lake.catalog import index_is_current as catalog_matches_lake

    return catalog_matches_lake(settings.lake_path, settings.layout.catalog_db)


QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def materialize_index(settings: AutomodelSettings, instance: dg.DagsterInstance) -> dg.ExecuteInJobResult:
    from automodel_assets.assets import ALL_ASSETS, semantic_index
    from automodel_assets.definitions import build_resources

    return dg.materialize(ALL_ASSETS, instance=instance, resources=build_resources(settings),
                          selection=dg.AssetSelection.assets(semantic_index), raise_on_error=False,
                          run_config=QUIET_RUN_CONFIG)


def materialize_run(settings: AutomodelSettings, instance: dg.DagsterInstance, run_id: str, from_asset: str | None = None) -> RunOutcome:
    """Materialize a run's partition (all stages, or ``from_asset`` and everything downstream of it)."""
    from automodel_assets.assets import ALL_ASSETS, ASSET_CHECKS, RUN_ASSET_NAMES, RUN_ASSETS
    from automodel_assets.definitions import build_resources

    if from_asset:
        if from_asset not in RUN_ASSET_NAMES:
            raise AutomodelError(f"Unknown asset {from_asset!r}; choose one of {', '.join(RUN_ASSET_NAMES)}.")
        selection = dg.AssetSelection.assets(from_asset).downstream() - dg.AssetSelection.assets("semantic_index")
    else:
        selection = dg.AssetSelection.assets(*RUN_ASSETS)
    if settings.enable_semantic_merge and not index_is_current(settings):
        with file_lock(settings.layout.catalog_db.with_suffix(".build.lock")):
            if not index_is_current(settings):  # another process may have built it while we waited
                materialize_index(settings, instance)
    executor = os.environ.get("AUTOMODEL_EXECUTOR", "in_process")
    if executor == "in_process":
        result = dg.materialize([*ALL_ASSETS, *ASSET_CHECKS], instance=instance, partition_key=run_id, resources=build_resources(settings),
                                selection=selection, raise_on_error=False, tags={"automodel/run_id": run_id},
                                run_config=QUIET_RUN_CONFIG)
    else:
        # Out-of-process executors (multiprocess, celery) need a job they can reconstruct in each step process.
        from automodel_assets.definitions import automodel_run_job, defs

        keys = selection.resolve(defs.resolve_asset_graph())
        result = dg.execute_job(dg.reconstructable(automodel_run_job), instance=instance, asset_selection=list(keys),
                                tags={"dagster/partition": run_id, "automodel/run_id": run_id}, raise_on_error=False,
                                run_config=QUIET_RUN_CONFIG)
    if result.success:
        return RunOutcome(True, None)
    return RunOutcome(False, failure_message(result))


@dataclass
class RunOutcome:
    success: bool
    error: str | None


_USER_ERRORS = {"AutomodelError", "InputFileError", "QuotaExceededError", "TargetError", "UnsafePathError", "ScoringError"}


def failure_message(result) -> str:
    """One sentence for the user: our own error's message if there is one, else the failing stage and its first line."""
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        error = event.event_specific_data.error
        step = event.step_key
        chain = []
        while error is not None:
            chain.append(error)
            error = error.cause
        for item in chain:
            if item.cls_name in _USER_ERRORS:
                return _first_line(item.message)
        for item in chain:
            if item.cls_name not in ("DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"):
                return f"Stage {step} failed: {_first_line(item.message)}"
        return f"Stage {step} failed."
    for event in result.all_events:
        if event.event_type_value == "RUN_FAILURE" and event.message:
            return _first_line(event.message)
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            return f"Check {event.event_specific_data.check_name} failed; see the run in the Dagster UI."
    return "The run failed; see the Dagster UI for details."


def _first_line(message: str) -> str:
    from automodel.safety import redact_pii

    text = message.strip().splitlines()[0] if message and message.strip() else "unknown error"
    return redact_pii(re.sub(r"^[\w.]+(Error|Exception): ", "", text))  # stored, printed and notified: no personal data


def clear_run_outputs(settings: AutomodelSettings, run_id: str) -> None:
    """Remove every output a failed run wrote, so nothing half-made is left visible."""
    from automodel_assets.assets import RUN_ASSET_NAMES
    from automodel_assets.definitions import build_resources

    io_manager = build_resources(settings)["io_manager"]
    io_manager.delete_partition(RUN_ASSET_NAMES, run_id)
    for path in settings.layout.run_output_paths(run_id):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
