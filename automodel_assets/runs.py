"""Creating and materializing runs: shared by the command line and the sensors.

A run is created by recording its manifest in the session store and adding its run_id
partition; materializing it needs nothing else, so the UI can rematerialize any partition.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from automodel.atomic import file_lock, write_bytes_atomic
from automodel.errors import AutomodelError, InputFileError
from automodel.ingest.archive import inflated_size, is_compressed
from automodel.ingest.loader import is_supported
from automodel.layout import Layout, private_home_wanted, secure_home
from automodel.liveness import current_process
from automodel.quotas import Tier, check_quota, parse_tiers
from automodel.run_keys import readable_run_id
from automodel.safety import safe_file_name, safe_user_id
from automodel.sessions import RunManifest, SessionStore
from automodel.trust import may_read
from resources.settings import AutomodelSettings
from resources.storage import get_backend, stage_upload

QUOTA_WINDOW_S = 24 * 3600
PROJECT_ROOT = Path(__file__).resolve().parent.parent
REPO_DAGSTER_YAML = PROJECT_ROOT / "dagster.yaml"
# First lines of the instance files this project wrote into homes (older versions copied it): those are ours to replace.
_OUR_HEADERS = ("# Embedded default instance", "# automodel's embedded default instance")
USER_TAG, RUN_ID_TAG, FILE_TAG, TARGET_TAG, ORIGIN_TAG = "automodel/user", "automodel/run_id", "automodel/file", "automodel/target", "automodel/origin"
LOCATION_NAME = "automodel"  # workspace.yaml and [tool.dagster] code_location_name


def instance_config_source() -> Path:
    """The instance file every home links to: the repo's dagster.yaml (AUTOMODEL_DAGSTER_YAML names another)."""
    return Path(os.environ.get("AUTOMODEL_DAGSTER_YAML") or REPO_DAGSTER_YAML).expanduser().resolve()


_ENV_HEADER = "# Written by automodel (automodel_assets.runs.write_project_env)"


def write_project_env(layout: Layout) -> Path | None:
    """Let ``dagster dev`` and ``dg dev`` started in the project folder use the project's home, not a temporary one.

    Dagster reads ``.env`` from the folder it starts in; DAGSTER_HOME must be absolute, so the file is written here
    (ignored by git) when the home is the project's own ``local_data``. A value already in the environment wins,
    and a ``.env`` someone else wrote is left alone.
    """
    from resources.settings import DEFAULT_HOME

    if layout.home != Path(DEFAULT_HOME).resolve() or not (PROJECT_ROOT / "pyproject.toml").exists():
        return None
    env_file = PROJECT_ROOT / ".env"
    text = (f"{_ENV_HEADER}: `dagster dev` and `dg dev` started in this folder\n"
            "# use the same home as the command line and `make dev`. A value set in the environment wins.\n"
            f"DAGSTER_HOME=${{DAGSTER_HOME:-{layout.dagster_home}}}\n"
            f"AUTOMODEL_HOME=${{AUTOMODEL_HOME:-{layout.home}}}\n")
    try:
        if env_file.exists() and (not env_file.read_text().startswith(_ENV_HEADER) or env_file.read_text() == text):
            return None
        write_bytes_atomic(env_file, text.encode())
    except OSError:  # a read-only checkout: `make dev` still works, only plain `dagster dev` needs DAGSTER_HOME set
        return None
    return env_file


def ensure_dagster_home(layout: Layout) -> Path:
    """DAGSTER_HOME lives under AUTOMODEL_HOME; its dagster.yaml is a link to the project's, so edits there take effect.

    A dagster.yaml that someone put there themselves (the production profile's deploy/dagster.yaml) is left alone;
    a copy an older version made is replaced by the link.
    """
    secure_home(layout, private=private_home_wanted())  # the home is private to its OS user (automodel.trust)
    home = layout.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    write_project_env(layout)
    config, source = home / "dagster.yaml", instance_config_source()
    if not source.exists():
        return home
    if config.is_symlink():
        if config.resolve() == source:
            return home
    elif config.exists() and not config.read_text(errors="replace").startswith(_OUR_HEADERS):
        return home
    link = home / f".dagster.yaml.{os.getpid()}.tmp"
    link.unlink(missing_ok=True)
    try:
        link.symlink_to(source)
    except OSError:  # a file system without symlinks: a copy, refreshed whenever the source differs
        if config.exists() and not config.is_symlink() and config.read_bytes() == source.read_bytes():
            return home
        shutil.copyfile(source, link)
    os.replace(link, config)
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


def user_tier(settings: AutomodelSettings, user_id: str | None = None, local: bool = False) -> Tier:
    """The user's tier: the free tier (MAX_REQUESTS_FREE, MAX_GB_FREE) unless AUTOMODEL_QUOTA_TIERS puts them in another.

    ``local``: the caller is the person at the command line; as the ``default`` user they are not throttled
    unless AUTOMODEL_QUOTA_TIERS lists ``default``.
    """
    free = Tier("free", settings.max_requests_free, settings.max_gb_free, "MAX_REQUESTS_FREE", "MAX_GB_FREE")
    return parse_tiers(getattr(settings, "quota_tiers", ""), free).tier_for_caller(user_id or "default", local)


def user_stored_bytes(layout: Layout, user_id: str) -> int:
    folder = layout.user_dir(user_id)
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def input_limits(settings: AutomodelSettings, user_id: str | None = None, local: bool = False):
    """Bounds on a run's input: the settings' inflated size, expansion ratio and column limits; with a user, what is
    left of their storage quota too (a compressed upload counts at its inflated size). ``local`` as for ``user_tier``."""
    from automodel.ingest.archive import InputLimits

    if user_id is None:
        return InputLimits.from_settings(settings)
    tier = user_tier(settings, user_id, local=local)
    if not math.isfinite(tier.max_gb):
        return InputLimits.from_settings(settings)
    left = int(tier.max_gb * 1024**3) - user_stored_bytes(settings.layout, user_id)
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
               model_run_id: str | None = None, run_id: str | None = None, add_partition: bool = True,
               options: dict | None = None, from_drop: bool = False) -> CreatedRun:
    """Validate the input and quotas, stage the upload under users/<user>/, record the manifest, add the partition.

    ``from_drop``: the file came through a drop folder (a tenant's upload), so quotas apply to its user even when
    that user is ``default``. The run id is readable (automodel.run_keys): day, file stem, short hash.
    """
    layout = settings.layout
    user_id = safe_user_id(user_id)
    model_run_id = model_run_id or (options or {}).get("model")  # a drop's sidecar may name the model to score with
    name, size = validate_source(source)
    safe_file_name(name)
    store = SessionStore(layout.sessions_db)
    # MAX_REQUESTS_FREE counts the runs of the last 24 hours, so a quota refills rather than ending the account.
    recent_runs = store.count_for_user(user_id, since=time.time() - QUOTA_WINDOW_S)
    check_quota(user_tier(settings, user_id, local=not from_drop), recent_runs, user_stored_bytes(layout, user_id), size)
    if not source.startswith("s3://") and is_compressed(name):  # counted at its inflated size, streamed, never held
        inflated_size(name, Path(source).read_bytes(), input_limits(settings, user_id, local=not from_drop))
    if model_run_id:
        previous = store.get(model_run_id)
        if previous is None or not may_read(previous["user_id"], user_id, settings.admin):  # another user's model: exactly like a missing one
            raise AutomodelError(f"Run {model_run_id} is not known for user {user_id!r}; list runs with `automodel sessions --user {user_id}`.")
        if not previous.get("model_path"):
            raise AutomodelError(f"Run {model_run_id} has no saved predictive model to reuse; score with a run that trained a regression or classification model.")
    source_uri = source if source.startswith("s3://") else str(stage_upload(layout, user_id, Path(source).resolve()))
    manifest = RunManifest(run_id=run_id or readable_run_id(name), source_uri=source_uri, user_id=user_id, file_name=name, target=target,
                           labels=labels or {}, category=category, model_run_id=model_run_id, options=dict(options or {}))
    # The process that adds the partition runs it (the command line); a sensor's run is the daemon's to watch.
    store.create(manifest, worker=current_process().encode() if add_partition else None)
    if add_partition:
        instance.add_dynamic_partitions("run_id", [manifest.run_id])
    return CreatedRun(manifest.run_id, manifest)


def index_is_current(settings: AutomodelSettings) -> bool:
    from automodel.lake.catalog import index_is_current as catalog_matches_lake

    return catalog_matches_lake(settings.lake_path, settings.layout.catalog_db)


QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def record_lake_state(settings: AutomodelSettings, instance: dg.DagsterInstance, reason: str) -> bool:
    """Report ``public_datasets`` with the lake's fingerprint when the last report differs, as ``lake_change_sensor`` does.

    The command line builds the index itself; recording the lake it indexed, before the index, means the
    sensor of the next ``make dev`` finds nothing changed and ``semantic_index`` (and every ``enriched_frame``
    after it) up to date. Returns whether a report was made.
    """
    from automodel.lake.catalog import lake_fingerprint
    from sensors.lake import last_reported_fingerprint
    from sensors.schedules import lake_materialization

    if lake_fingerprint(settings.lake_path) == last_reported_fingerprint(instance):
        return False
    instance.report_runless_asset_event(lake_materialization(settings, reason))
    return True


def materialize_index(settings: AutomodelSettings, instance: dg.DagsterInstance):
    from automodel_assets.definitions import semantic_index_job

    record_lake_state(settings, instance, "The lake as the command line indexed it.")
    return execute_run_job(instance, None, {ORIGIN_TAG: "cli"}, job_target=semantic_index_job)


def record_index_build(settings: AutomodelSettings, instance: dg.DagsterInstance, report) -> None:
    """``automodel index`` builds outside a run: record the lake it read, then the index, so neither looks stale in the UI."""
    from automodel.lake.catalog import lake_fingerprint

    record_lake_state(settings, instance, "The lake as `automodel index` indexed it.")
    instance.report_runless_asset_event(dg.AssetMaterialization(
        semantic_index_key(), description="Built by `automodel index`.",
        metadata={"tables": report.tables, "profiled": ", ".join(report.profiled) or "none", "unchanged": len(report.unchanged),
                  "lake_fingerprint": lake_fingerprint(settings.lake_path), "seconds": round(report.seconds, 3),
                  "catalog": dg.MetadataValue.path(str(settings.layout.catalog_db))},
    ))


def lake_is_recorded(settings: AutomodelSettings, instance: dg.DagsterInstance) -> bool:
    from automodel.lake.catalog import lake_fingerprint
    from sensors.lake import last_reported_fingerprint

    return lake_fingerprint(settings.lake_path) == last_reported_fingerprint(instance)


def ensure_index(settings: AutomodelSettings, instance: dg.DagsterInstance) -> None:
    """Build the index when the lake changed since it was built, or when the instance has not recorded the lake it indexed."""
    if not settings.enable_semantic_merge:
        return
    if index_is_current(settings) and lake_is_recorded(settings, instance):
        return
    with file_lock(settings.layout.catalog_db.with_suffix(".build.lock")):
        if not (index_is_current(settings) and lake_is_recorded(settings, instance)):  # another process may have done it meanwhile
            materialize_index(settings, instance)


def semantic_index_key() -> dg.AssetKey:
    return dg.AssetKey("semantic_index")


def run_asset_names() -> list[str]:
    """Every asset of a run (built in or added by an extension), as ``--from`` accepts them."""
    from automodel_assets.definitions import current_definitions, run_asset_keys

    return [key.to_user_string() for key in run_asset_keys(list(current_definitions().assets or []))]


def run_tags(manifest: RunManifest, origin: str) -> dict[str, str]:
    """The tags every run of the automodel_run job carries, whoever starts it: filter runs by user, file or target in the UI."""
    tags = {USER_TAG: manifest.user_id, RUN_ID_TAG: manifest.run_id, FILE_TAG: manifest.file_name or manifest.source_uri.rsplit("/", 1)[-1],
            ORIGIN_TAG: origin}
    if manifest.target:
        tags[TARGET_TAG] = manifest.target
    if manifest.model_run_id:
        tags["automodel/model_run_id"] = manifest.model_run_id
    return {k: str(v)[:255] for k, v in tags.items()}


def _remote_origin(job_name: str) -> object:
    """Where the UI finds the job: the code location of workspace.yaml, so CLI runs match its job and can be re-executed."""
    import sys

    from dagster._core.remote_origin import ManagedGrpcPythonEnvCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

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
    from dagster._core.definitions.reconstruct import ReconstructableJob
    from dagster._core.execution.api import execute_run

    from automodel_assets.definitions import automodel_run_job

    # Dagster keeps the last job definition per equal target; ours depends on the environment (AUTOMODEL_HOME, --lake),
    # which the command line and tests change within one process, so a cached one could run against another home.
    ReconstructableJob.get_definition.cache_clear()
    ReconstructableJob.get_repository_definition.cache_clear()
    job = dg.reconstructable(job_target or automodel_run_job)
    load_data = job.repository.get_definition().repository_load_data
    job = job.with_repository_load_data(load_data)
    job_def = job.get_definition()
    from automodel_assets.recovery import worker_tags

    # This process executes the run: its host, pid and start time let a later command tell whether it died (recovery).
    dagster_run = instance.create_run_for_job(
        job_def=job_def, run_config=QUIET_RUN_CONFIG,
        tags={**tags, **worker_tags(), **({"dagster/partition": partition_key} if partition_key else {})},
        asset_selection=frozenset(asset_keys) if asset_keys else None, remote_job_origin=_remote_origin(job_def.name),
        job_code_origin=job.get_python_origin(), repository_load_data=load_data,
    )
    return execute_run(job, dagster_run, instance, raise_on_error=False)


def materialize_run(settings: AutomodelSettings, instance: dg.DagsterInstance, run_id: str, from_asset: str | None = None,
                    origin: str = "cli") -> RunOutcome:
    """Materialize a run's partition (every asset of the run, or ``from_asset`` and everything of the run downstream of it)."""
    from automodel_assets.definitions import current_definitions, run_selection

    asset_keys = None
    if from_asset:
        names = run_asset_names()
        if from_asset not in names:
            raise AutomodelError(f"Unknown asset {from_asset!r}; choose one of {', '.join(names)}.")
        definitions = current_definitions()
        selection = dg.AssetSelection.assets(dg.AssetKey.from_user_string(from_asset)).downstream() & run_selection(list(definitions.assets or []))
        asset_keys = sorted(selection.resolve(definitions.resolve_asset_graph()), key=lambda k: k.to_user_string())
    from automodel_assets.recovery import recover_dead_runs

    # Runs killed earlier give back their pool slots first, or this run could wait for them for ever.
    recover_dead_runs(settings, instance)
    SessionStore(settings.layout.sessions_db).update(run_id, worker=current_process().encode())
    manifest = SessionStore(settings.layout.sessions_db).manifest(run_id)
    if not (manifest and manifest.model_run_id):  # a scoring run joins its model's lake tables: it searches no index
        ensure_index(settings, instance)
    tags = run_tags(manifest, origin) if manifest else {RUN_ID_TAG: run_id}
    result = execute_run_job(instance, run_id, tags, asset_keys)
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
    from automodel_assets.definitions import build_resources

    io_manager = build_resources(settings)["io_manager"]
    io_manager.delete_partition(run_asset_names(), run_id)
    for path in settings.layout.run_output_paths(run_id):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
