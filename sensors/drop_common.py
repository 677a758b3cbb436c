"""What both drop-folder sensors share: which names are uploads, whose they are, and how a tick's result is built."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import dagster as dg

from automodel.drop_options import DropOptions, is_sidecar, parse_sidecar, sidecar_name
from automodel.ingest.archive import is_supported
from automodel.run_keys import readable_run_id
from automodel_assets.intake import RUN_ID_TAG, USER_TAG

# Names that editors, browsers, rsync, Spark and multipart tools give files that are still being written.
PARTIAL_SUFFIXES = (".part", ".tmp", ".temp", ".crdownload", ".partial", ".download", ".filepart", ".swp", ".inprogress")
TEMP_FOLDERS = ("_temporary", ".tmp", "_tmp", ".staging")
DEFAULT_USER = "default"


def is_upload(relative_path: str) -> bool:
    """A finished upload of a supported format: not hidden, not a temporary or partial name, not inside a temp folder."""
    if not relative_path or relative_path.endswith("/"):
        return False
    *folders, name = relative_path.split("/")
    if name.startswith((".", "~", "_")) or name.lower().endswith(PARTIAL_SUFFIXES) or is_sidecar(name):
        return False
    if any(folder in TEMP_FOLDERS or folder.startswith(".") for folder in folders):
        return False
    return is_supported(name)


def user_of(relative_path: str) -> str:
    """``<user>/<file>`` (or deeper) belongs to ``<user>``; a file at the top of the folder to ``default``."""
    parts = relative_path.split("/")
    return parts[0] if len(parts) > 1 else DEFAULT_USER


def drop_run_id(kind: str, identity: str, file_name: str | None = None, when: float | None = None) -> str:
    """Derived from the object's identity and version, so a retried tick reuses the run it recorded before.

    With the file's name and time it is readable (``2026-11-27-sales-<hash>``); the older ``<kind>-<hash>`` form otherwise.
    """
    if file_name is not None:
        return readable_run_id(file_name, when, seed=f"{kind}|{identity}")
    return f"{kind}-" + hashlib.sha1(identity.encode()).hexdigest()[:16]


@dataclass
class TickPlan:
    """What one tick asks Dagster to do, and what it skipped with the reason a user sees."""

    requests: list[dg.RunRequest] = field(default_factory=list)
    partition_keys: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deferred: int = 0

    def add(self, run_id: str, run_key: str, user: str, tags: dict[str, str] | None = None) -> None:
        """``tags``: the run's tags (user, file, target; automodel_assets.intake.run_tags), the same as a CLI run's."""
        self.partition_keys.append(run_id)
        self.requests.append(dg.RunRequest(partition_key=run_id, run_key=run_key, tags={**(tags or {}), USER_TAG: user, RUN_ID_TAG: run_id}))

    def result(self, cursor: str, context: dg.SensorEvaluationContext | None = None, idle_reason: str | None = None) -> dg.SensorResult:
        if context is not None:
            for reason in self.skipped:
                context.log.warning(f"skipped {reason}")
            if self.deferred:
                context.log.info(f"{self.deferred} more uploads wait for the next tick (max runs per tick reached)")
        skip_reason = None
        if not self.requests:
            skip_reason = "; ".join(self.skipped) if self.skipped else idle_reason
        return dg.SensorResult(
            run_requests=self.requests,
            dynamic_partitions_requests=[dg.DynamicPartitionsDefinition(name="run_id").build_add_request(self.partition_keys)] if self.partition_keys else [],
            cursor=cursor,
            skip_reason=skip_reason,
        )


def sidecar_options(read_sidecar, data_relative: str):
    """The upload's DropOptions from its sidecar (``read_sidecar(relative_name)`` gives its bytes or None when absent).

    Raises InputFileError with one sentence when the sidecar cannot be used.
    """
    relative = sidecar_name(data_relative)
    data = read_sidecar(relative)
    return DropOptions() if data is None else parse_sidecar(relative, data)
