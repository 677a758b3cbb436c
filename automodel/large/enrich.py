"""Lake enrichment of a table larger than memory.

Which lake tables to join, on which keys and with which aggregation, is decided by the in-memory code
(``automodel.lake.enrich.rank_and_merge``: the same key matching, aggregation to one lake row per key, leakage refusal
and cross-validated lift gate) on a sample of the table's rows spread over the whole file; the lift is measured on
that sample. The chosen joins (the saved spec, as a scoring run replays it) are then applied to every row, chunk by
chunk as DuckDB-written parts stream past: a lake table is aggregated to one row per key, so a left join on a chunk is
the join of the whole table restricted to it, rows and order unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from automodel.large.table import ROW, PartWriter, TableRef

DECISION_ROWS = 50_000  # rows the join search and its lift are measured on


def enrich_large(cleaned: TableRef, profile, settings, out_dir: Path, reuse_spec: dict | None = None, reusing_model: bool = False,
                 category: str | None = None) -> tuple[TableRef, object]:
    from automodel import stages
    from automodel.errors import ScoringError
    from automodel.lake.enrich import MergeReport, apply_specs, spec_user_columns
    from automodel.large.profile import sample_rows

    plain = replace(cleaned, kind="enriched", target=profile.target, target_labels=getattr(profile, "target_labels", None))
    if reusing_model and not reuse_spec:
        return plain, MergeReport(reason="the reused model was trained without enrichment")
    if reuse_spec:
        missing = [c for c in spec_user_columns(reuse_spec) if c not in cleaned.columns]
        if missing:
            raise ScoringError(f"The model was trained on data enriched through column {missing[0]!r}, which this file lacks; add it.")
        spec = reuse_spec
        report = MergeReport(kept=True, spec=reuse_spec, reason="same enrichment as the run whose model is reused",
                             table=(reuse_spec.get("tables", [reuse_spec])[0]).get("table"))
    else:
        if not settings.enable_semantic_merge:
            return plain, MergeReport(reason="ENABLE_SEMANTIC_MERGE is off")
        sample = sample_rows(cleaned, DECISION_ROWS, settings).drop(columns=[ROW])
        _, report = stages.enrich_frame(sample, profile, settings.lake_path, settings.layout.catalog_db, True, None, category=category,
                                        max_tables=settings.enrich_max_tables)
        report.reason = (report.reason + f" (decided and lift measured on {len(sample):,} of {cleaned.rows:,} rows)").strip()
        if not report.kept or not report.spec:
            return plain, report
        spec = report.spec
    writer = PartWriter(out_dir)
    matched = 0
    try:
        for part in cleaned.batches():
            rows = part.pop(ROW).to_numpy()
            joined, coverages = apply_specs(part, settings.lake_path, spec)
            matched += round((coverages[0] if coverages else 0.0) * len(part))
            joined.insert(0, ROW, rows)
            writer.write(joined)
        writer.commit()
    except Exception:
        writer.abort()
        raise
    report.coverage = round(matched / max(writer.rows, 1), 4)
    enriched = TableRef(path=str(out_dir), columns=dict(writer.dtypes), rows=writer.rows, kind="enriched", source=dict(cleaned.source),
                        target=profile.target, target_labels=getattr(profile, "target_labels", None))
    return enriched, report
