"""Asset checks on cleaned_frame: a Great Expectations suite built from the column metadata.

The check profiles the cleaned frame with the run's own labels (as column_metadata will), builds
the suite (automodel.ingest.validation) and reports each failed expectation as a plain sentence in the
Dagster UI. It does not block the run: odd values were already turned into missing values by
cleaning, so the check explains rather than stops. A wrong type for a role is an ERROR, a few
values outside a role's pattern or range a WARN.
"""


import dagster as dg

from automodel import stages
from automodel.safety import redact_pii
from automodel.sessions import SessionStore
from automodel.ingest.validation import validate_frame
from automodel_assets.partitions import runs_partitions
from automodel_assets.tables import Table
from resources.settings import AutomodelSettings

_STRUCTURAL = {"ExpectColumnToExist", "ExpectColumnValuesToBeInTypeList"}


@dg.asset_check(
    asset="cleaned_frame", partitions_def=runs_partitions, blocking=False, additional_ins={"raw_dataset": dg.AssetIn("raw_dataset")},
    description="Great Expectations suite from the column roles: numbers, dates and booleans have those types; latitudes, longitudes, "
                "zip codes, FIPS codes, states, e-mails, URLs and phones look like them; identifiers do not repeat; the target is mostly filled.",
)
def cleaned_frame_expectations(context: dg.AssetCheckExecutionContext, settings: AutomodelSettings, cleaned_frame: Table,
                               raw_dataset: Table) -> dg.AssetCheckResult:
    manifest = SessionStore(settings.layout.sessions_db).manifest(context.partition_key) if context.has_partition_key else None
    labels = dict(manifest.labels or {}) if manifest else {}
    target = manifest.target if manifest else None
    try:
        from automodel.large.run import validation_view  # a large table: its profile sample (automodel.large)

        cleaned_frame, raw_dataset = validation_view(cleaned_frame, raw_dataset, settings)
        profile = stages.profile_frame(cleaned_frame, raw_dataset, None, labels, settings.profile_sample_rows)
        report = validate_frame(cleaned_frame, profile.metas, target if target in cleaned_frame.columns else None)
    except Exception as exc:  # noqa: BLE001  (a check that cannot run must say so, not fail the run)
        message = redact_pii(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"The expectation suite could not run ({type(exc).__name__}: {message}).")
    structural = any(f["expectation"] in _STRUCTURAL for f in report.failed)
    explanations = report.explanations()
    description = None
    if explanations:
        description = explanations[0] + (f" (and {len(explanations) - 1} more; see the metadata)" if len(explanations) > 1 else "")
    return dg.AssetCheckResult(
        passed=report.success,
        severity=dg.AssetCheckSeverity.ERROR if structural else dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "expectations": dg.MetadataValue.md(report.to_markdown()),
            "evaluated": report.evaluated, "failed": len(report.failed), "rows_validated": report.rows_validated,
            "seconds": report.seconds, "suite": dg.MetadataValue.json(report.suite),
        },
    )


VALIDATION_CHECKS = [cleaned_frame_expectations]
