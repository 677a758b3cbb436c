"""Runs started by the daemon (drop sensors, the UI) have no command line waiting for them: when one fails,
this sensor does what ``automodel run`` does on failure, so ``automodel sessions`` never shows it as running."""

import types

import dagster as dg

from automodel.sessions import SessionStore
from resources.settings import AutomodelSettings
from sensors.drop_common import RUN_ID_TAG


def record_failure(settings: AutomodelSettings, dagster_run: dg.DagsterRun, step_failures: list) -> str | None:
    """Mark the run's session failed with the one-sentence reason and remove what it half wrote; the run id, or None if not ours."""
    from automodel_assets.runs import clear_run_outputs, failure_message

    run_id = dagster_run.tags.get(RUN_ID_TAG) or dagster_run.tags.get("dagster/partition")
    store = SessionStore(settings.layout.sessions_db)
    if not run_id or store.get(run_id) is None:
        return None
    message = failure_message(types.SimpleNamespace(all_events=step_failures)) if step_failures else "The run failed before any stage ran; see the Dagster UI."
    clear_run_outputs(settings, run_id)
    store.update(run_id, status="failed", error=message)
    return run_id


@dg.run_failure_sensor(name="run_failure_recorder", default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
                       description="Marks a failed automodel run as failed in the session store (with its one-sentence reason) "
                                   "and removes its partial outputs, as `automodel run` does for the runs it starts.")
def run_failure_recorder(context: dg.RunFailureSensorContext, settings: AutomodelSettings):
    run_id = record_failure(settings, context.dagster_run, context.get_step_failure_events())
    if run_id:
        context.log.info(f"recorded failure of {run_id}")
