"""Crash recovery: a run whose process died gives back what it held and is marked failed.

A SIGKILL (or the kernel's OOM killer) gives a run no chance to say it stopped: its Dagster run stays
STARTED, its steps keep their pool slots (the `train` pool has 2, so two dead runs block every later
model search in the home) and its session stays `running`. Every command that runs something, the
`sessions` listing and the `dead_run_recovery` sensor call ``recover_dead_runs``, which looks at the
instance's own run records and asks whether the process behind each unfinished run is still alive:

- runs started by ``automodel`` (CLI) carry the tag ``automodel/worker`` = host, pid and process start
  time of the process executing them (a reused pid started later, so it is not taken for the dead one);
- runs the daemon or the UI launched are known by Dagster's own "Started process for run (pid)" event;
  its pid is judged only when the run storage is a local SQLite file, which pins every process of the
  instance to this host (with Postgres, Dagster's run monitoring watches the launcher's workers).

A dead run is reported failed in Dagster with the reason (RUN_FAILURE, so its run-level concurrency is
released), its pool slots are freed at once, and its session is marked `failed` with the same sentence,
unless a newer attempt of the same run exists (a rerun that already succeeded stays `success`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import dagster as dg

# Not in Dagster's public API: the failure reason that frees a dead run's run-level concurrency, and the storage
# class that tells a single-host instance (whose pids can be judged from here) from a shared one.
from dagster._core.events import JobFailureData, RunFailureReason
from dagster._core.storage.runs import SqliteRunStorage

from automodel.atomic import file_lock
from automodel.liveness import ProcessIdentity, current_process, is_alive, started_no_later_than
from automodel.sessions import SessionStore
from automodel_assets.failures import clear_run_outputs
from automodel_assets.home import get_instance
from automodel_assets.intake import RUN_ID_TAG

logger = logging.getLogger("automodel.recovery")

WORKER_TAG = "automodel/worker"
PARTITION_TAG = "dagster/partition"
UNFINISHED = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
BUSY = [*UNFINISHED, dg.DagsterRunStatus.QUEUED]
UNFINISHED_SESSION = ("created", "running")


def worker_tags() -> dict[str, str]:
    """Tags for a run this process executes itself (the in-process executor, or the orchestrator of a multiprocess run)."""
    return {WORKER_TAG: current_process().encode()}


@dataclass
class RecoveredRun:
    dagster_run_id: str
    run_id: str | None  # the automodel run (partition), when the Dagster run belongs to one
    reason: str
    freed_slots: bool
    session_updated: bool


def _launcher_pid(instance: dg.DagsterInstance, dagster_run_id: str) -> tuple[int, float] | None:
    """(pid, when it was seen alive) from Dagster's "Started process for run" event, if the run has one."""
    for entry in instance.all_logs(dagster_run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        data = getattr(event, "engine_event_data", None) if event else None
        pid = (data.metadata or {}).get("pid") if data else None
        if pid is not None and (event.message or entry.user_message or "").startswith("Started process for run"):
            try:
                return int(getattr(pid, "value", pid)), entry.timestamp
            except (TypeError, ValueError):
                return None
    return None


def _single_host_storage(instance: dg.DagsterInstance) -> bool:
    return isinstance(instance.run_storage, SqliteRunStorage)


def dead_worker(instance: dg.DagsterInstance, run: dg.DagsterRun) -> str | None:
    """A description of the run's process if it is known to be dead; None when it lives or cannot be judged from here."""
    identity = ProcessIdentity.decode(run.tags.get(WORKER_TAG))
    if identity is not None:
        return identity.describe() if is_alive(identity) is False else None
    if not _single_host_storage(instance):
        return None
    launched = _launcher_pid(instance, run.run_id)
    if launched is None:  # queued or being launched: the daemon's start timeout covers it
        return None
    pid, seen_at = launched
    return None if started_no_later_than(pid, seen_at) else f"pid {pid}"


def _stage_at_death(instance: dg.DagsterInstance, dagster_run_id: str) -> str:
    started, finished = [], set()
    types = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    for entry in instance.all_logs(dagster_run_id, of_type=types):
        step = entry.step_key
        if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            started.append(step)
        else:
            finished.add(step)
    running = [s for s in started if s not in finished]
    if running:
        return f"during stage {', '.join(running)}"
    if started:
        return f"after stage {started[-1]}"
    return "before its first stage"


def newest_attempt(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    partition = run.tags.get(PARTITION_TAG)
    if not partition:
        return True
    newest = instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: partition}), limit=1)
    return not newest or newest[0].run_id == run.run_id


def _fail_session(settings, store: SessionStore, run_id: str, reason: str) -> bool:
    row = store.get(run_id)
    if row is None:
        return False
    clear_run_outputs(settings, run_id)
    store.update(run_id, status="failed", error=reason)
    return True


def recover_dead_runs(settings, instance: dg.DagsterInstance) -> list[RecoveredRun]:
    """Fail every unfinished run whose process is gone, free its slots and record why; returns what was done."""
    recovered: list[RecoveredRun] = []
    store = SessionStore(settings.layout.sessions_db)
    # One recoverer at a time, so two commands starting together do not report the same death twice.
    with file_lock(settings.layout.dagster_home / ".recovery.lock"):
        for record in instance.get_run_records(filters=dg.RunsFilter(statuses=UNFINISHED)):
            run = record.dagster_run
            who = dead_worker(instance, run)
            if who is None:
                continue
            run_id = run.tags.get(RUN_ID_TAG) or run.tags.get(PARTITION_TAG)
            stage = _stage_at_death(instance, run.run_id)
            reason = (f"The run's process ({who}) died {stage} (killed or out of memory); "
                      f"rerun it with `automodel rerun {run_id}`." if run_id else
                      f"The run's process ({who}) died {stage} (killed or out of memory).")
            # The session first: whoever sees the Dagster run failed (the API, `sessions`) then finds the reason beside it.
            updated = bool(run_id) and newest_attempt(instance, run) and _fail_session(settings, store, run_id, reason)
            instance.report_run_failed(run, reason, JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION))
            freed = False
            if instance.event_log_storage.supports_global_concurrency_limits:
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
                freed = True
            logger.info("recovered dead run %s (%s): %s", run.run_id, run_id, reason)
            recovered.append(RecoveredRun(run.run_id, run_id, reason, freed, updated))
        recovered += _recover_sessions(settings, instance, store)
    return recovered


def _recover_sessions(settings, instance: dg.DagsterInstance, store: SessionStore) -> list[RecoveredRun]:
    """Sessions whose command died before its Dagster run existed (say while the lake index was built)."""
    out = []
    pending = store.unfinished_with_worker(UNFINISHED_SESSION)
    if not pending:
        return out
    busy = {r.tags.get(PARTITION_TAG) for r in instance.get_runs(filters=dg.RunsFilter(statuses=BUSY))}
    for row in pending:
        identity = ProcessIdentity.decode(row["worker"])
        if row["run_id"] in busy or identity is None or is_alive(identity) is not False:
            continue
        reason = (f"The command that ran it ({identity.describe()}) stopped before the run finished (killed or out of memory); "
                  f"rerun it with `automodel rerun {row['run_id']}`.")
        _fail_session(settings, store, row["run_id"], reason)
        out.append(RecoveredRun("", row["run_id"], reason, False, True))
    return out


def recover_before_listing(settings) -> list[RecoveredRun]:
    """For `automodel sessions`: open the Dagster instance only when some session is still unfinished."""
    store = SessionStore(settings.layout.sessions_db)
    if not store.has_status(UNFINISHED_SESSION):
        return []
    return recover_dead_runs(settings, get_instance(settings.layout))
