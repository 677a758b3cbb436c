"""A run comes in: its file checked, its quotas applied, its upload staged, its manifest recorded, its partition added.

``create_run`` is shared by everything that starts runs: the command line and the HTTP service (which then launch it
with ``automodel_assets.runs.launch_run``) and the drop-folder sensors (whose run requests the daemon launches).
``run_tags`` are the tags every run of ``automodel_run`` carries, whoever launches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from automodel.errors import AutomodelError, InputFileError
from automodel.ingest.archive import is_supported
from automodel.ingest.role_words import ROLES
from automodel.liveness import current_process
from automodel.quotas import check_new_run
from automodel.run_keys import readable_run_id
from automodel.safety import safe_file_name, safe_user_id
from automodel.sessions import RunManifest, SessionStore
from automodel.trust import may_read
from resources.settings import AutomodelSettings
from resources.storage import get_backend, stage_upload

USER_TAG, RUN_ID_TAG, FILE_TAG, TARGET_TAG, ORIGIN_TAG = "automodel/user", "automodel/run_id", "automodel/file", "automodel/target", "automodel/origin"
MODEL_RUN_TAG = "automodel/model_run_id"


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
    """``["age=numeric", ...]`` as given to ``--label``: a column's role, said by the user."""
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
    check_new_run(settings, user_id, source, name, size, store.count_for_user, local=not from_drop)
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


def run_tags(manifest: RunManifest, origin: str) -> dict[str, str]:
    """The tags every run of the automodel_run job carries, whoever starts it: filter runs by user, file or target in the UI."""
    tags = {USER_TAG: manifest.user_id, RUN_ID_TAG: manifest.run_id, FILE_TAG: manifest.file_name or manifest.source_uri.rsplit("/", 1)[-1],
            ORIGIN_TAG: origin}
    if manifest.target:
        tags[TARGET_TAG] = manifest.target
    if manifest.model_run_id:
        tags[MODEL_RUN_TAG] = manifest.model_run_id
    return {k: str(v)[:255] for k, v in tags.items()}


def stored_run_tags(store: SessionStore, run_id: str, origin: str) -> dict[str, str]:
    """``run_tags`` of a recorded run; empty when the session store does not know it."""
    manifest = store.manifest(run_id)
    return run_tags(manifest, origin) if manifest else {}
