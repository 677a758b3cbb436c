"""Where a run stands, for ``GET /runs`` and ``GET /runs/{id}``: queued, running, success or failed, and its stage.

The session store says what a run produced; the Dagster instance says where its newest attempt is (queued
in the daemon's run queue, executing a stage, finished). A rerun makes a new attempt, so the newest Dagster
run of the partition decides the status while it exists; a session with no Dagster run yet is waiting to be
submitted (queued) or was refused (failed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

QUEUED = (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED)
RUNNING = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING)
FAILED = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
PARTITION_TAG = "dagster/partition"
STATUSES = ("queued", "running", "success", "failed")


@dataclass
class RunState:
    status: str
    stage: str | None = None  # the stage executing now (or, once finished, the last one that ran)
    stages: list[dict] = field(default_factory=list)  # every stage of the run in order: pending, running, done, failed, skipped
    dagster_run_id: str | None = None
    error: str | None = None


def newest_runs(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, dg.DagsterRun]:
    """The newest ``automodel_run`` attempt of each partition (one query for a page of runs)."""
    if not run_ids:
        return {}
    runs = instance.get_runs(filters=dg.RunsFilter(job_name="automodel_run", tags={PARTITION_TAG: list(run_ids)}))
    newest: dict[str, dg.DagsterRun] = {}
    for run in runs:  # newest first
        newest.setdefault(run.tags.get(PARTITION_TAG), run)
    return newest


GENERIC_FAILURE = "The run failed; see the Dagster UI for details."


def summary_status(row: dict, run: dg.DagsterRun | None) -> str:
    """The status from the session row and the newest Dagster attempt, without reading the event log."""
    if run is not None:
        if run.status in QUEUED:
            return "queued"
        if run.status in RUNNING:
            return "running"
        if run.status == dg.DagsterRunStatus.SUCCESS:
            return "failed" if row.get("status") == "failed" else "success"
        return "failed"
    session = row.get("status")
    if session in ("success", "failed"):
        return session
    return "queued"


def run_state(instance: dg.DagsterInstance, row: dict, stage_names: list[str], run: dg.DagsterRun | None) -> RunState:
    """The status, the stage and each stage's state, from the newest attempt's step events."""
    status = summary_status(row, run)
    if run is None:
        done = "done" if status == "success" else "pending"
        return RunState(status, None, [{"name": n, "status": done} for n in stage_names], None, row.get("error") if status == "failed" else None)
    started, finished, failed = [], set(), set()
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    for entry in instance.all_logs(run.run_id, of_type=kinds):
        step = entry.step_key
        kind = entry.dagster_event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            started.append(step)
        elif kind == dg.DagsterEventType.STEP_SUCCESS:
            finished.add(step)
        else:
            failed.add(step)
    selected = {key.to_user_string() for key in run.asset_selection} if run.asset_selection else None
    stages = []
    for name in stage_names:
        if name in failed:
            state = "failed"
        elif name in finished:
            state = "done"
        elif name in started:
            state = "running" if status == "running" else "failed"
        elif selected is not None and name not in selected:
            state = "skipped"  # a rerun from a later stage keeps this stage's stored output
        else:
            state = "pending"
        stages.append({"name": name, "status": state})
    running = [s for s in started if s not in finished and s not in failed]
    stage = running[-1] if running else (started[-1] if started else None)
    error = None
    if status == "failed":
        error = row.get("error") if row.get("status") == "failed" else None
        if error is None:
            from service.launch import step_failure_message

            error = step_failure_message(instance, run.run_id)
            if stage in running and (error is None or error == GENERIC_FAILURE):
                # A stage that started and neither finished nor failed: its process died (killed, or out of memory), and
                # the run was failed by the daemon's run monitoring before our recovery could say so.
                error = (f"The run's process died during stage {stage} (killed or out of memory); "
                         f"rerun it with `automodel rerun {row.get('run_id')}`.")
            error = error or GENERIC_FAILURE
    return RunState(status, stage, stages, run.run_id, error)
