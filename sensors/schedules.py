"""Scheduled lake syncs: pull the configured S3 prefixes and API tables into the lake, then let the index follow.

The sync reports a materialization of ``public_datasets`` (with the lake's fingerprint as its
data version) whenever it changed a file; ``semantic_index`` is eager on ``public_datasets`` and
``lake_automation_sensor`` evaluates that condition, so the index rebuild follows every sync
that changed something, and only those.
"""

import dagster as dg

from automodel.lake.sync import load_sync_config, sync_lake
from automodel_assets.lake_state import lake_materialization
from resources.settings import AutomodelSettings, current

@dg.op(description="Runs every source of AUTOMODEL_LAKE_SYNC (sync_from_s3 / fetch_from_api) into the lake folder; "
                   "reports public_datasets when a file changed. Fails, after syncing the others, if a source failed.")
def sync_lake_sources(context: dg.OpExecutionContext, settings: AutomodelSettings) -> dict:
    sources = load_sync_config(settings.lake_sync)
    report = sync_lake(sources, settings.lake_path)
    summary = report.to_dict()
    rows = "\n".join(f"| {s['name']} | {s['kind']} | {len(s['added'])} | {len(s['updated'])} | {s['unchanged']} | {len(s['removed'])} | {s['error'] or ''} |"
                     for s in summary["sources"])
    table = "| source | kind | added | updated | unchanged | removed | error |\n|---|---|---|---|---|---|---|\n" + rows
    if report.changed:
        context.log_event(lake_materialization(settings, "Lake sync changed the lake folder.", {"sync": dg.MetadataValue.md(table)}))
    context.add_output_metadata({"sources": len(sources), "changed": report.changed, "sync": dg.MetadataValue.md(table)})
    if report.errors:
        raise dg.Failure(description="Lake sync failed for " + "; ".join(report.errors), metadata={"sync": dg.MetadataValue.md(table)})
    return summary


@dg.job(description="Sync the data lake from its configured S3 prefixes and APIs; the semantic index is rebuilt after it when the lake changed.",
        tags={"automodel/kind": "lake_sync"})
def lake_sync_job():
    sync_lake_sources()


def lake_sync_schedule_for(cron: str) -> dg.ScheduleDefinition:
    @dg.schedule(job=lake_sync_job, cron_schedule=cron, name="lake_sync_schedule", default_status=dg.DefaultScheduleStatus.STOPPED,
                 description=f"Lake sync ({cron}, AUTOMODEL_LAKE_SYNC_CRON) of the sources in AUTOMODEL_LAKE_SYNC, followed by the index rebuild.")
    def lake_sync_schedule(context: dg.ScheduleEvaluationContext, settings: AutomodelSettings):
        if not load_sync_config(settings.lake_sync):
            return dg.SkipReason("No lake sync sources are configured; set AUTOMODEL_LAKE_SYNC to a JSON file of sources.")
        return dg.RunRequest(run_key=f"lake-sync@{context.scheduled_execution_time.isoformat()}")

    return lake_sync_schedule


lake_sync_schedule = lake_sync_schedule_for(current().lake_sync_cron)
