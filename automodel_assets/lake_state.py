"""What the instance knows of the lake: the ``public_datasets`` reports (with the lake's fingerprint as their data
version) and the index builds done outside a run. The lake sensor, the sync job and the command line all report
through here, so a change one of them reported is not reported again by another.
"""

from __future__ import annotations

import dagster as dg

from automodel.lake.catalog import index_is_current, lake_fingerprint
from resources.settings import AutomodelSettings

PUBLIC_DATASETS = dg.AssetKey("public_datasets")
SEMANTIC_INDEX = dg.AssetKey("semantic_index")


def lake_materialization(settings: AutomodelSettings, reason: str, extra: dict | None = None) -> dg.AssetMaterialization:
    """The event that says the lake folder changed; its data version is the lake's fingerprint."""
    fingerprint = lake_fingerprint(settings.lake_path)
    return dg.AssetMaterialization(
        asset_key=PUBLIC_DATASETS,
        description=reason,
        metadata={"fingerprint": fingerprint, "lake": dg.MetadataValue.path(str(settings.lake_path)), **(extra or {})},
        tags={"dagster/data_version": fingerprint},
    )


def last_reported_fingerprint(instance: dg.DagsterInstance) -> str | None:
    event = instance.get_latest_materialization_event(PUBLIC_DATASETS)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("fingerprint")
    return getattr(value, "value", value)


def lake_is_recorded(settings: AutomodelSettings, instance: dg.DagsterInstance) -> bool:
    return lake_fingerprint(settings.lake_path) == last_reported_fingerprint(instance)


def index_matches_lake(settings: AutomodelSettings, instance: dg.DagsterInstance) -> bool:
    """The catalog was built from the lake as it is, and the instance has recorded that lake."""
    return index_is_current(settings.lake_path, settings.layout.catalog_db) and lake_is_recorded(settings, instance)


def record_lake_state(settings: AutomodelSettings, instance: dg.DagsterInstance, reason: str) -> bool:
    """Report ``public_datasets`` with the lake's fingerprint when the last report differs, as ``lake_change_sensor`` does.

    The command line builds the index itself; recording the lake it indexed, before the index, means the
    sensor of the next ``make dev`` finds nothing changed and ``semantic_index`` (and every ``enriched_frame``
    after it) up to date. Returns whether a report was made.
    """
    if lake_is_recorded(settings, instance):
        return False
    instance.report_runless_asset_event(lake_materialization(settings, reason))
    return True


def record_index_build(settings: AutomodelSettings, instance: dg.DagsterInstance, report) -> None:
    """``automodel index`` builds outside a run: record the lake it read, then the index, so neither looks stale in the UI."""
    record_lake_state(settings, instance, "The lake as `automodel index` indexed it.")
    instance.report_runless_asset_event(dg.AssetMaterialization(
        SEMANTIC_INDEX, description="Built by `automodel index`.",
        metadata={"tables": report.tables, "profiled": ", ".join(report.profiled) or "none", "unchanged": len(report.unchanged),
                  "lake_fingerprint": lake_fingerprint(settings.lake_path), "seconds": round(report.seconds, 3),
                  "catalog": dg.MetadataValue.path(str(settings.layout.catalog_db))},
    ))
