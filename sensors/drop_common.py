"""What both drop-folder sensors share: which names are uploads, whose they are, and how a tick's result is built."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import dagster as dg

from automodel.ingest.loader import is_supported

# Names that editors, browsers, rsync, Spark and multipart tools give files that are still being written.
PARTIAL_SUFFIXES = (".part", ".tmp", ".temp", ".crdownload", ".partial", ".download", ".filepart", ".swp", ".inprogress")
TEMP_FOLDERS = ("_temporary", ".tmp", "_tmp", ".staging")
USER_TAG = "automodel/user"
RUN_ID_TAG = "automodel/run_id"
DEFAULT_USER = "default"


def is_upload(relative_path: str) -> bool:
    """A finished upload of a supported format: not hidden, not a temporary or partial name, not inside a temp folder."""
    if not relative_path or relative_path.endswith("/"):
        return False
    *folders, name = relative_path.split("/")
    if name.startswith((".", "~", "_")) or name.lower().endswith(PARTIAL_SUFFIXES):
        return False
    if any(folder in TEMP_FOLDERS or folder.startswith(".") for folder in folders):
        return False
    return is_supported(name)


def user_of(relative_path: str) -> str:
    """``<user>/<file>`` (or deeper) belongs to ``<user>``; a file at the top of the folder to ``default``."""
    parts = relative_path.split("/")
    return parts[0] if len(parts) > 1 else DEFAULT_USER


def drop_run_id(kind: str, identity: str) -> str:
    """Derived from the object's identity and version, so a retried tick reuses the run it recorded before."""
    return f"{kind}-" + hashlib.sha1(identity.encode()).hexdigest()[:16]


@dataclass
class TickPlan:
    """What one tick asks Dagster to do, and what it skipped with the reason a user sees."""

    requests: list[dg.RunRequest] = field(default_factory=list)
    partition_keys: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    deferred: int = 0

    def add(self, run_id: str, run_key: str, user: str) -> None:
        self.partition_keys.append(run_id)
        self.requests.append(dg.RunRequest(partition_key=run_id, run_key=run_key, tags={USER_TAG: user, RUN_ID_TAG: run_id}))

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
