"""Lake changes: report ``public_datasets`` when the lake folder changes, and start a sync when an S3 lake source does.

``lake_change_sensor`` compares the folder's fingerprint (names, sizes, mtimes) with the one of
the last reported ``public_datasets`` materialization, so a change the sync job already reported
is not reported twice. ``lake_automation_sensor`` evaluates ``semantic_index``'s eager condition:
the index is rebuilt once after each reported change.
"""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlparse

import dagster as dg

from automodel.lake.catalog import lake_fingerprint
from automodel.lake.source import MANIFEST
from automodel.lake.sync import is_synced_table, load_sync_config
from resources.settings import AutomodelSettings
from automodel_assets.lake_state import lake_materialization, last_reported_fingerprint
from sensors.s3_drop import s3_client
from sensors.schedules import lake_sync_job


def s3_sources_fingerprint(sources: list[dict], client) -> str | None:
    """A hash of every key and ETag under the configured S3 lake prefixes (None when there are none)."""
    s3_sources = [s for s in sources if s["kind"] == "s3"]
    if not s3_sources:
        return None
    digest = hashlib.sha256()
    for source in s3_sources:
        parsed = urlparse(source["uri"])
        prefix = parsed.path.lstrip("/")
        prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=parsed.netloc, Prefix=prefix):
            for obj in page.get("Contents", []):
                relative = obj["Key"][len(prefix):]
                if relative == MANIFEST or is_synced_table(relative):  # job markers and temporary output start no sync
                    digest.update(f"{source['name']}|{obj['Key']}|{obj['ETag']}\n".encode())
    return digest.hexdigest()[:16]


def evaluate_lake_change(settings: AutomodelSettings, instance: dg.DagsterInstance, cursor_text: str | None, client=None,
                         context: dg.SensorEvaluationContext | None = None) -> dg.SensorResult:
    cursor = json.loads(cursor_text) if cursor_text else {}
    events, requests, notes = [], [], []
    current = lake_fingerprint(settings.lake_path)
    if current != last_reported_fingerprint(instance):
        events.append(lake_materialization(settings, "The lake folder changed."))
        notes.append(f"lake folder changed (fingerprint {current})")
    sources = load_sync_config(settings.lake_sync)
    if any(s["kind"] == "s3" for s in sources):
        try:
            if client is None:
                client = s3_client()
            remote = s3_sources_fingerprint(sources, client)
        except Exception as exc:  # S3 down: report the local change anyway and keep the S3 cursor for the next tick
            if context is not None:
                context.log.error(f"S3 lake sources could not be listed ({type(exc).__name__}); retrying next tick")
            remote = cursor.get("s3")
        if remote != cursor.get("s3"):
            requests.append(dg.RunRequest(run_key=f"lake-sync@{remote}", tags={"automodel/kind": "lake_sync"}))
            notes.append("an S3 lake source changed")
        cursor["s3"] = remote
    return dg.SensorResult(asset_events=events, run_requests=requests, cursor=json.dumps(cursor),
                           skip_reason=None if (events or requests) else "The lake has not changed.")


@dg.sensor(job=lake_sync_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Reports public_datasets when the lake folder (AUTOMODEL_LAKE) changes, which rebuilds semantic_index; "
                       "starts lake_sync_job when a configured S3 lake prefix changes.")
def lake_change_sensor(context: dg.SensorEvaluationContext, settings: AutomodelSettings) -> dg.SensorResult:
    return evaluate_lake_change(settings, context.instance, context.cursor, context=context)


lake_automation_sensor = dg.AutomationConditionSensorDefinition(
    "lake_automation_sensor", target=dg.AssetSelection.assets("semantic_index"), default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30, description="Rebuilds semantic_index (eager on public_datasets) after each reported lake change.",
)
