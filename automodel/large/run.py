"""The out-of-core stages of a run, called by the assets (automodel_assets/assets.py) when their input is a TableRef.

Each takes the run's settings and manifest and returns what the asset returns; what the UI shows is passed to
``publish`` (the asset's metadata call) as plain values. No Dagster here.

Which path a run takes is decided once, by ``raw_reference``: a file with more rows than ``AUTOMODEL_LARGE_ROWS`` is
handed on as a TableRef and every later stage follows it; any other file takes the in-memory path unchanged. Either
way the run's ``training`` record says which path ran and which rows trained the model.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd

from automodel.large.ingest import LargeSource, decide_cleaning, inspect_large, mirror_s3, stream_clean
from automodel.large.table import ROW, TableRef, held_out_share, held_out_sql, large_dir

REPORT_ROWS = 200_000  # the rows explanations, the summary's charts and the dashboard read (the held-out rows)


def is_large(value) -> bool:
    return isinstance(value, TableRef)


def _local_path(uri: str) -> Path:
    return Path(uri[len("file://"):] if uri.startswith("file://") else uri)


def large_source(settings, manifest, run_id: str) -> LargeSource | None:
    """The run's file as a LargeSource when it is above the threshold, else None (the in-memory path)."""
    uri, name = manifest.source_uri, manifest.file_name or manifest.source_uri.rsplit("/", 1)[-1]
    if uri.startswith("s3://"):
        from resources.storage import get_backend

        local = mirror_s3(uri, get_backend(uri).size(uri), large_dir(settings.home, run_id))
        if local is None:
            return None
        path = local
    else:
        path = _local_path(uri)
    return inspect_large(path, name, int(settings.large_rows))


def path_sentence(rows: int, threshold: int, exact: bool) -> str:
    return (f"out of core: {'' if exact else 'about '}{rows:,} rows, above AUTOMODEL_LARGE_ROWS ({threshold:,}); DuckDB reads, "
            "cleans and profiles the whole table on disk, the search runs on a sample and the final model is refit on every "
            "row on Dask")


def raw_reference(settings, manifest, run_id: str, publish) -> TableRef | None:
    """raw_dataset out of core: a reference to the file and how it is to be read; None below the threshold."""
    source = large_source(settings, manifest, run_id)
    if source is None:
        return None
    if not source.rows_exact:  # one streaming pass: the exact count, and a file DuckDB cannot parse is refused before any work
        from automodel.large.ingest import count_rows

        source.rows, source.rows_exact = count_rows(source, settings), True
    if source.format == "parquet":
        import pyarrow.parquet as pq

        dtypes = {str(c): str(t) for c, t in pq.read_schema(source.path).empty_table().to_pandas().dtypes.items()}
    else:
        dtypes = {c: "object" for c in source.columns}
    note = path_sentence(source.rows, int(settings.large_rows), source.rows_exact)
    ref = TableRef(path=source.path, columns=dtypes, rows=source.rows, kind="raw", source={"large_source": asdict(source)})
    publish({"path": "out-of-core", "large_table": note, "source": manifest.source_uri, "user": manifest.user_id,
             "format": source.format, "compression": source.compression or "none", "encoding": source.encoding,
             "delimiter": repr(source.delimiter), "dialect": source.dialect or source.format, "columns": len(dtypes),
             "dagster/row_count": int(source.rows), "rows_exact": bool(source.rows_exact),
             "problems": "; ".join(source.problems) or "none"})
    return ref


def cleaned_table(settings, manifest, run_id: str, raw: TableRef, publish) -> tuple[TableRef, dict]:
    """cleaned_frame out of core: decided on a sample (training) or replayed from the model (scoring), every chunk.
    With the reference, what the in-memory path hands on with its frame: ``scoring_report``, or ``cleaning_report`` and
    ``training_schema``."""
    from automodel import stages
    from automodel.ingest.schema import TrainingSchema
    from automodel.sessions import SessionStore

    source = LargeSource(**raw.source["large_source"])
    folder = large_dir(settings.home, run_id)
    share = min(1.0, settings.profile_sample_rows * 10 / max(raw.rows, 1))
    chunk = int(settings.large_chunk_rows)
    if manifest.model_run_id:
        saved = stages.load_model_bundle(settings.layout.model_path(manifest.model_run_id)).get("training_schema")
        if not saved:
            from automodel.errors import ScoringError

            raise ScoringError(f"The model of run {manifest.model_run_id} was saved without its training schema, which scoring a "
                               "large file replays; retrain it with this version and score again.")
        schema = TrainingSchema.from_dict(saved)
        ref, streamed, raw_sample = stream_clean(source, schema, folder / "cleaned", chunk, settings, share)
        scoring = streamed.scoring_report()
        SessionStore(settings.layout.sessions_db).update(run_id, scoring=scoring.to_dict())
        extra = {"replayed_from": manifest.model_run_id, "scoring_report": scoring.to_dict()}
        notes = {"scoring_report": scoring.to_dict()}
    else:
        schema, report, _ = decide_cleaning(source, manifest.target, settings)
        ref, streamed, raw_sample = stream_clean(source, schema, folder / "cleaned", chunk, settings, share)
        stages.write_training_schema(settings.layout.model_dir(run_id), schema)
        summary = report.to_dict()
        extra = {"cleaning_decided_on_rows": int(min(raw.rows, 100_000)), "cleaning_report": summary,
                 "unreadable_after_sample": streamed.unreadable, "changes": summary.get("total_changes")}
        notes = {"cleaning_report": summary, "training_schema": schema.to_dict()}
    sample_path = folder / "raw_sample.pkl"
    from automodel.atomic import write_with_atomic

    write_with_atomic(sample_path, lambda tmp: raw_sample.to_pickle(tmp))
    ref.source["raw_sample"] = str(sample_path)
    publish({"path": "out-of-core", "dagster/row_count": int(ref.rows), "columns": len(ref.columns), "parts": len(ref.parts),
             "stored_at": str(ref.path), "chunk_rows": chunk, **extra})
    return ref, notes


def validation_view(cleaned, raw, settings):
    """The rows a validation suite checks on a large table: the profile sample (cleaned, and as loaded)."""
    if not is_large(cleaned):
        return cleaned, raw
    sample = pd.read_pickle(cleaned.source["raw_sample"])
    from automodel.large.profile import _rows_at

    rows = _rows_at(cleaned, sample[ROW].to_numpy(), settings)
    loaded = sample.set_index(ROW).loc[rows[ROW]].reset_index(drop=True)
    return rows.drop(columns=[ROW]).reset_index(drop=True), loaded


def column_metadata(settings, manifest, run_id: str, cleaned: TableRef, reused_target, training_roles, publish):
    """column_metadata out of core: exact DuckDB aggregates over every row, roles and target from the profile sample."""
    from automodel.large.profile import profile_table
    from automodel.sessions import SessionStore

    raw_sample = pd.read_pickle(cleaned.source["raw_sample"])
    profile = profile_table(cleaned, raw_sample, manifest.target, manifest.labels, settings.profile_sample_rows, reused_target,
                            training_roles, settings)
    SessionStore(settings.layout.sessions_db).update(run_id, target=profile.target)
    roles = [{"column": m.name, "role": m.role, "confidence": round(float(m.confidence), 3), "dtype": str(m.dtype),
              "missing": m.missing_count, "unique": m.unique_count, "user_labelled": bool(m.user_labelled)} for m in profile.metas]
    publish({"path": "out-of-core", "target": profile.target or "none", "target_reason": profile.target_reason,
             "tags": ", ".join(profile.tags), "needs_role_review": profile.needs_role_review, "roles": roles,
             "profile_sample_rows": int(len(raw_sample)), "column_profile": cleaned.profile})
    return profile


def enriched_table(settings, manifest, run_id: str, cleaned: TableRef, profile, publish) -> tuple[TableRef, dict]:
    """enriched_frame out of core: the lake joins in DuckDB (automodel.large.enrich); the target in the user's labels.
    With the reference, the merge report (its ``spec`` is what the model remembers)."""
    from automodel.large.enrich import enrich_large
    from automodel.sessions import SessionStore

    store = SessionStore(settings.layout.sessions_db)
    reuse_spec = ((store.get(manifest.model_run_id) or {}).get("enrichment") or {}).get("spec") if manifest.model_run_id else None
    ref, report = enrich_large(cleaned, profile, settings, large_dir(settings.home, run_id) / "enriched", reuse_spec=reuse_spec,
                               reusing_model=bool(manifest.model_run_id), category=manifest.category)
    store.update(run_id, enrichment=report.to_dict())
    publish({"path": "out-of-core", "dagster/row_count": int(ref.rows), "kept": bool(report.kept),
             "added_columns": len(report.added_columns), "reason": report.reason, "merge_report": report.to_dict()})
    return ref, report.to_dict()


def model_outcome(settings, manifest, run_id: str, enriched: TableRef, profile, dask_config, train_kwargs: dict, log):
    """model out of core: the search on a stratified sample and the all-rows refit on Dask; a scoring run reuses the model
    (checked and measured on the report's rows)."""
    from automodel import stages
    from automodel.large.train import train_large
    from automodel.sessions import SessionStore

    store = SessionStore(settings.layout.sessions_db)
    layout = settings.layout
    if manifest.model_run_id:
        view = report_frame(enriched, settings)
        outcome = stages.reuse_model(view, manifest.model_run_id, layout.model_path(manifest.model_run_id),
                                     scoring=(store.get(run_id) or {}).get("scoring"))
        if outcome.metrics:
            outcome.notes.append(f"metrics measured on {len(view):,} of the {enriched.rows:,} rows, chosen by row position")
        outcome.details["training"] = {"path": "out-of-core", "rows": enriched.rows, "reused_from": manifest.model_run_id}
        return outcome
    outcome, _, _ = train_large(enriched, profile, layout.model_path(run_id), settings=settings, dask_config=dask_config,
                                train_kwargs=train_kwargs, log=log)
    return outcome


def training_record(outcome, frame) -> dict:
    """The run's ``training``: the path the table took and the rows that trained the search and the final model."""
    if (outcome.details or {}).get("training"):
        return outcome.details["training"]
    search = (outcome.details or {}).get("search") or {}
    rows = len(frame)
    return {"path": "in-memory", "rows": rows, "search_rows": outcome.model_info.get("training_rows"),
            "final_rows": search.get("final_fit_rows", outcome.model_info.get("final_fit_rows")),
            **({"reused_from": outcome.reused_from} if outcome.reused_from else {})}


def predictions_table(settings, run_id: str, enriched: TableRef, outcome, publish) -> TableRef:
    """predictions out of core: every row scored chunk by chunk into Parquet parts and the streamed CSV."""
    from automodel import stages
    from automodel.large.score import score_table
    from automodel.sessions import SessionStore

    path = settings.layout.predictions_path(run_id)
    if not outcome.model_path:
        raise ValueError("no model to score the rows with")
    fitted = stages.load_model_bundle(Path(outcome.model_path))["fitted"]
    ref = score_table(enriched, fitted, large_dir(settings.home, run_id) / "predictions", path, int(settings.large_chunk_rows))
    SessionStore(settings.layout.sessions_db).update(run_id, predictions_path=str(path))
    publish({"path": "out-of-core", "dagster/row_count": int(ref.rows), "csv": str(path), "parquet": str(ref.path),
             "parts": len(ref.parts)})
    return ref


def report_positions(ref: TableRef) -> str:
    return held_out_sql(held_out_share(ref.rows, REPORT_ROWS))


def report_frame(frame, settings=None) -> pd.DataFrame:
    """The rows the report assets read for a large table (the training run's held-out rows); a frame passes unchanged."""
    if not is_large(frame):
        return frame
    return frame.read(where=report_positions(frame), settings=settings).drop(columns=[ROW]).reset_index(drop=True)


def report_view(frame, predictions, settings=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``report_frame`` and the predictions of the same rows, aligned; frames pass unchanged."""
    if not is_large(frame):
        return frame, predictions
    rows = frame.read(columns=list(frame.columns), where=report_positions(frame), settings=settings)
    positions = rows.pop(ROW).to_numpy()
    if is_large(predictions):
        from automodel.large.score import rows_of

        predictions = rows_of(predictions, positions)
    return rows.reset_index(drop=True), predictions


def row_count(frame) -> int:
    return len(frame)


def missing_counts(frame) -> dict[str, int]:
    """Missing values per column over every row (the exact DuckDB aggregates for a large table)."""
    if not is_large(frame):
        return {str(c): int(n) for c, n in frame.isna().sum().items()}
    from automodel.large.profile import column_profile

    profile = frame.profile or column_profile(frame)
    return {name: int(entry["missing"]) for name, entry in profile["columns"].items()}


__all__ = ["TableRef", "is_large", "raw_reference", "cleaned_table", "validation_view", "column_metadata", "enriched_table", "model_outcome",
           "training_record", "predictions_table", "report_frame", "report_view", "row_count", "missing_counts"]
