"""Runs started by the daemon (drop sensors, the UI) have no command line waiting for them: when one fails,
``run_failure_recorder`` does what ``automodel run`` does on failure, so ``automodel sessions`` never shows it
as running; when one's process dies without a word (SIGKILL, the OOM killer), ``dead_run_recovery`` notices on
its next tick, fails it with the reason and frees its pool slots (automodel_assets.recovery)."""

import types

import dagster as dg

from automodel.sessions import SessionStore
from automodel_assets.failures import clear_run_outputs, failure_message
from automodel_assets.intake import RUN_ID_TAG
from automodel_assets.recovery import newest_attempt, recover_dead_runs
from resources.settings import AutomodelSettings


def record_failure(settings: AutomodelSettings, dagster_run: dg.DagsterRun, step_failures: list, failure_text: str | None = None,
                   instance: dg.DagsterInstance | None = None) -> str | None:
    """Mark the run's session failed with the one-sentence reason and remove what it half wrote; the run id, or None if not ours."""
    run_id = dagster_run.tags.get(RUN_ID_TAG) or dagster_run.tags.get("dagster/partition")
    store = SessionStore(settings.layout.sessions_db)
    if not run_id or store.get(run_id) is None:
        return None
    if instance is not None and not newest_attempt(instance, dagster_run):
        return None  # a later attempt of this run exists (a rerun): its outcome is the session's, not this one's
    if step_failures:
        message = failure_message(types.SimpleNamespace(all_events=step_failures))
    elif failure_text:  # e.g. the reason dead_run_recovery gave for a run whose process died
        message = failure_text
    else:
        message = "The run failed before any stage ran; see the Dagster UI."
    clear_run_outputs(settings, run_id)
    store.update(run_id, status="failed", error=message)
    return run_id


@dg.run_failure_sensor(name="run_failure_recorder", default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
                       description="Marks a failed automodel run as failed in the session store (with its one-sentence reason) "
                                   "and removes its partial outputs, as `automodel run` does for the runs it starts.")
def run_failure_recorder(context: dg.RunFailureSensorContext, settings: AutomodelSettings):
    failure = context.failure_event
    reason = getattr(failure.event_specific_data, "failure_reason", None)
    died = reason is not None and reason.value == "UNEXPECTED_TERMINATION"  # dead_run_recovery's sentence names the stage and pid
    run_id = record_failure(settings, context.dagster_run, context.get_step_failure_events(), failure_text=failure.message if died else None,
                            instance=context.instance)
    if run_id:
        context.log.info(f"recorded failure of {run_id}")


@dg.sensor(name="dead_run_recovery", default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
           description="Fails runs whose process died without a word (SIGKILL, out of memory) with the reason, frees their pool "
                       "slots and marks their sessions failed; `automodel` commands do the same before they run anything.")
def dead_run_recovery(context: dg.SensorEvaluationContext, settings: AutomodelSettings):
    recovered = recover_dead_runs(settings, context.instance)
    for item in recovered:
        context.log.warning(f"{item.run_id or item.dagster_run_id}: {item.reason}")
    return dg.SkipReason(f"recovered {len(recovered)} dead runs" if recovered else "every unfinished run has a live process")
