"""The run_id-partitioned asset graph (docs/ARCHITECTURE.md). Each asset is thin: it calls the plain logic in
``automodel.stages`` and attaches the numbers a user wants to see in the UI, typed (automodel_assets.metadata).

A run is every asset on the ``run_id`` partitions (automodel_assets.definitions.run_selection): an asset added
in another module (automodel_assets.extensions) joins runs without an edit here.

Data moves only through asset inputs. What a frame's consumers need to know about how it was made travels with the
frame in ``DataFrame.attrs`` (stored with it by the IO manager): the cleaning and scoring reports and the training
schema with ``cleaned_frame``, and, added to them, the merge report (with the enrichment spec) with ``enriched_frame``;
the per-row SHAP values travel with ``explanations``. So rematerializing any one asset reads exactly what its inputs'
stored materializations hold, and the lineage graph shows every dependency. The session store is written for
``automodel sessions`` and the API; the only thing assets read from it is the run's manifest (its input, recorded
when the run was created).
"""

import json

import time

import dagster as dg
import pandas as pd

from automodel import stages
from automodel.large import run as large
from automodel.outputs.actions import ActionLog, execute_actions
from automodel.outputs.dashboard import key_figures, prediction_overview, write_report
from automodel.outputs.report_charts import build_figures, evaluation_rows
from automodel.outputs.facts import baseline_for, write_facts
from automodel.errors import AutomodelError
from automodel.ingest.embed_roles import refine_with_llm
from automodel.ingest.schema import TrainingSchema
from automodel.lake.catalog import build_index, catalog_summary, lake_fingerprint
from automodel.lake.remembered import allow_missing_lake, lake_for_run  # the lake the model was trained with, unless told
from automodel.quotas import input_limits
from automodel.run_budget import search_budget
from automodel.sessions import SessionStore
from automodel.outputs.summary import summarize, summary_facts
from automodel_assets.checks import VALIDATION_CHECKS
from automodel_assets.links import dashboard_link
from automodel_assets.metadata import frame_table, numbers, pairs_table, present, table
from automodel_assets.partitions import runs_partitions
from automodel_assets.redaction import publish_metadata
from automodel_assets.stage import run_stage
from automodel_assets.tables import Table
from recipes import ActionContext, parse_recipe_options, select_recipes
from resources.dask import DaskResource
from resources.llm import LLMResource
from resources.notifier import NotifierResource
from resources.settings import AutomodelSettings
from resources.storage import StorageResource

OWNERS = ["team:automodel"]


def _candidates_table(candidates: list[dict]) -> dg.MetadataValue:
    rows = [{"table": c["table"], "score": c.get("score"), "name_similarity": c.get("name_similarity"), "containment": c.get("containment"),
             "key": f"{'+'.join(c['user_columns'])} = {'+'.join(c['lake_columns'])}" if c.get("user_columns") else None,
             "strategy": c.get("strategy"), "coverage": c.get("coverage"), "lift": c.get("lift"), "refused": c.get("refused")} for c in candidates]
    return table(rows, ["table", "score", "name_similarity", "containment", "key", "strategy", "coverage", "lift", "refused"])


def _kept_table(tables: list[dict]) -> dg.MetadataValue:
    rows = [{"table": t["table"], "key": " = ".join(t["keys"]), "grain": t.get("grain"), "aggregation": t.get("aggregation"),
             "coverage": t.get("coverage"), "lift": t.get("lift"), "columns": len(t.get("added_columns") or [])} for t in tables]
    return table(rows, ["table", "key", "grain", "aggregation", "coverage", "lift", "columns"])


# Keys of what travels with a frame in ``DataFrame.attrs`` (plain JSON, so Parquet stores it with the frame).
CLEANING_REPORT, SCORING_REPORT, TRAINING_SCHEMA, MERGE_REPORT, SHAP_ROWS = (
    "automodel/cleaning_report", "automodel/scoring_report", "automodel/training_schema", "automodel/merge_report", "automodel/shap_rows")


def _plain(value):
    """JSON-safe (numpy numbers, paths and dates as text), so the notes survive the Parquet round trip unchanged."""
    return json.loads(json.dumps(value, default=str))


def with_notes(frame: pd.DataFrame, notes: dict) -> pd.DataFrame:
    """``frame`` carrying ``notes`` (and nothing stale from an earlier stage's copy) in its attrs."""
    frame.attrs = _plain({k: v for k, v in notes.items() if v is not None})
    return frame


def notes_of(frame: pd.DataFrame) -> dict:
    """What travels with ``frame``, taken off it: pandas copies a frame's attrs into every frame derived from it (deep
    copies from pandas 2.2 on), a cost the stage's own work on the frame need not pay."""
    notes, frame.attrs = frame.attrs, {}
    return notes


def _seconds_into_run(context) -> float:
    """Seconds since this Dagster run started (0 when the instance does not say)."""
    record = context.instance.get_run_record_by_id(context.run_id)
    started = getattr(record, "start_time", None) if record else None
    return max(time.time() - started, 0.0) if started else 0.0


def _manifest(settings: AutomodelSettings, run_id: str):
    manifest = SessionStore(settings.layout.sessions_db).manifest(run_id)
    if manifest is None:
        raise AutomodelError(f"Run {run_id} has no manifest in the session store; create runs with `automodel run` or a drop-folder sensor.")
    return manifest


public_datasets = dg.AssetSpec(
    "public_datasets",
    description="The data lake (AUTOMODEL_LAKE: a folder or an s3:// prefix; datasets/ by default): every table file in it, "
                "manifest.json optional metadata. Observed by the lake sensor.",
    group_name="lake", kinds={"csv"}, owners=OWNERS,
)


@dg.asset(
    deps=[public_datasets], group_name="lake", kinds={"duckdb"}, owners=OWNERS,
    description="Every lake table and column in the DuckDB catalog: role, type, statistics, samples, a MiniLM sentence embedding, "
                "and a MinHash sketch plus the hashed normalised values of each join key (any code or name column, state, county FIPS, zip, "
                "city + state, moments at hour/day/month/year grain, and pairs of them). Unreadable files are skipped with the reason. "
                "Re-profiles only changed tables.",
    automation_condition=dg.AutomationCondition.eager(),
)
@run_stage
def semantic_index(context: dg.AssetExecutionContext, settings: AutomodelSettings) -> dict:
    report = build_index(settings.lake_path, settings.layout.catalog_db)
    catalog = catalog_summary(settings.layout.catalog_db)
    keys = ", ".join(f"{kind} {count}" for kind, count in catalog["keys_by_kind"].items()) or "none"
    publish_metadata(context, {
        "tables": report.tables, "profiled": ", ".join(report.profiled) or "none", "unchanged": len(report.unchanged),
        "skipped": "; ".join(f"{name}: {why}" for name, why in report.skipped.items()) or "none",
        "lake_fingerprint": lake_fingerprint(settings.lake_path), "seconds": round(report.seconds, 3),
        "catalog": dg.MetadataValue.path(str(settings.layout.catalog_db)),
        "summary": pairs_table({"tables": catalog["tables"], "lake rows": catalog["rows"], "columns embedded": catalog["columns"],
                                "join keys sketched": keys, "key values": catalog["key_values"],
                                "re-profiled": len(report.profiled), "seconds": round(report.seconds, 2)}),
    })
    return {"tables": report.tables, "profiled": report.profiled, "fingerprint": lake_fingerprint(settings.lake_path)}


@dg.asset(
    partitions_def=runs_partitions, group_name="ingest", kinds={"pandas"}, owners=OWNERS,
    description="The run's file as loaded, untouched (every delimited cell kept as text): source URI, size, SHA-256, dialect and encoding.",
)
@run_stage
def raw_dataset(context: dg.AssetExecutionContext, settings: AutomodelSettings, storage: StorageResource) -> Table:
    manifest = _manifest(settings, context.partition_key)
    SessionStore(settings.layout.sessions_db).update(context.partition_key, status="running", error=None)
    if (reference := large.raw_reference(settings, manifest, context.partition_key, lambda m: publish_metadata(context, m))) is not None:
        return reference  # above AUTOMODEL_LARGE_ROWS: out of core (automodel.large)
    data = storage.read_bytes(manifest.source_uri)
    frame, info = stages.load_raw(manifest.file_name or manifest.source_uri.rsplit("/", 1)[-1], data, manifest.source_uri,
                                  limits=input_limits(settings, manifest.user_id, local=True))  # create_run applied drop quotas
    publish_metadata(context, {
        "source": manifest.source_uri, "user": manifest.user_id, "size_bytes": info.size_bytes, "sha256": info.sha256,
        "format": info.format, "encoding": str(info.encoding), "encoding_confidence": info.encoding_confidence, "delimiter": repr(info.delimiter), "dagster/row_count": info.rows,
        "columns": info.columns, "problems": "; ".join(info.problems) or "none", "dialect": dg.MetadataValue.md(info.dialect_markdown()),
        "header_rows": info.header_rows if info.has_header else 0, "preamble_lines_skipped": info.skipped_preamble_rows,
        "tables_found": info.tables_found, "rows_repaired": len(info.repaired_rows),
        "loader_decisions": dg.MetadataValue.json({"dialect": info.dialect, "header_cells": info.header_cells, "other_tables": info.other_tables,
                                                   "rows_repaired": info.repaired_rows[:1000], "literal_quote_lines": info.literal_quote_lines[:1000]}),
    })
    return frame


@dg.asset(
    partitions_def=runs_partitions, group_name="ingest", kinds={"pandas"}, owners=OWNERS,
    description="Typed, cleaned frame (numbers, booleans and dates parsed from text, missing tokens, empty and constant columns). Same rows as the input. "
                "A scoring run replays the training file's cleaning saved with the model instead of deciding again.",
)
@run_stage
def cleaned_frame(context: dg.AssetExecutionContext, settings: AutomodelSettings, raw_dataset: Table) -> Table:
    manifest = _manifest(settings, context.partition_key)
    if large.is_large(raw_dataset):  # out of core (automodel.large)
        reference, made = large.cleaned_table(settings, manifest, context.partition_key, raw_dataset, lambda m: publish_metadata(context, m))
        return with_notes(reference, {SCORING_REPORT: made.get("scoring_report"), CLEANING_REPORT: made.get("cleaning_report"),
                                      TRAINING_SCHEMA: made.get("training_schema")})
    if manifest.model_run_id:
        frame, scoring = stages.replay_cleaning(raw_dataset, settings.layout.model_path(manifest.model_run_id))
        SessionStore(settings.layout.sessions_db).update(context.partition_key, scoring=scoring.to_dict())
        publish_metadata(context, {
            "dagster/row_count": len(frame), "columns": frame.shape[1], "replayed_from": manifest.model_run_id,
            "scoring": dg.MetadataValue.md("\n".join(f"- {n}" for n in scoring.notes()) or "Every column read as in training."),
            "scoring_report": dg.MetadataValue.json(scoring.to_dict()),
            "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()]),
        })
        return with_notes(frame, {SCORING_REPORT: scoring.to_dict()})
    frame, report = stages.clean_frame(raw_dataset, manifest.target)
    schema = stages.capture_training_schema(raw_dataset, frame, report, manifest.target)
    stages.write_training_schema(settings.layout.model_dir(context.partition_key), schema)  # for people; model takes it from the frame
    summary = report.to_dict()
    publish_metadata(context, {
        "dagster/row_count": len(frame), "columns": frame.shape[1], "changes": summary["total_changes"],
        "duplicate_rows": summary["duplicate_rows"], "outlier_rows": summary["outlier_rows"],
        "cleaning_report": dg.MetadataValue.json(summary), "cleaning": dg.MetadataValue.md(report.to_markdown()),
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(str(c), str(t)) for c, t in frame.dtypes.items()]),
    })
    return with_notes(frame, {CLEANING_REPORT: summary, TRAINING_SCHEMA: schema.to_dict()})


@dg.asset_check(asset=cleaned_frame, blocking=True, partitions_def=runs_partitions, additional_ins={"raw_dataset": dg.AssetIn("raw_dataset")},
                description="The cleaned frame has rows and at least one column, and its row count equals the raw file's.")
def cleaned_frame_shape(context, cleaned_frame: Table, raw_dataset: Table) -> dg.AssetCheckResult:
    ok = len(cleaned_frame) > 0 and cleaned_frame.shape[1] > 0 and len(cleaned_frame) == len(raw_dataset)
    return dg.AssetCheckResult(passed=bool(ok), metadata={"rows": len(cleaned_frame), "raw_rows": len(raw_dataset), "columns": cleaned_frame.shape[1]},
                               description=None if ok else "Cleaning changed the row count or left no data; predictions could not be aligned.")


@dg.asset(
    partitions_def=runs_partitions, group_name="ingest", kinds={"pandas"}, owners=OWNERS,
    description="One ColumnMeta per column (role and confidence, dtype, missing, unique, samples), the target with the reason, and dataset tags.",
)
@run_stage
def column_metadata(context: dg.AssetExecutionContext, settings: AutomodelSettings, llm: LLMResource, raw_dataset: Table,
                    cleaned_frame: Table) -> stages.Profile:
    notes_of(cleaned_frame)
    manifest = _manifest(settings, context.partition_key)
    reused_target = roles = None
    if manifest.model_run_id:  # the model being reused says what it predicts and how it read each column
        reused_target = stages.load_model_bundle(settings.layout.model_path(manifest.model_run_id))["fitted"].target
        roles = stages.training_roles(settings.layout.model_path(manifest.model_run_id))
    if large.is_large(cleaned_frame):  # out of core (automodel.large)
        return large.column_metadata(settings, manifest, context.partition_key, cleaned_frame, reused_target, roles,
                                     lambda m: publish_metadata(context, m))
    profile = stages.profile_frame(cleaned_frame, raw_dataset, manifest.target, manifest.labels, settings.profile_sample_rows, reused_target, roles)
    if settings.enable_llm_preprocessing:  # ambiguous roles get the language model's opinion, held to the values
        provider = llm.get_provider()
        changed = refine_with_llm(profile.metas, cleaned_frame, provider, raw_dataset) if provider is not None else []
        context.log.info(f"LLM preprocessing changed {len(changed)} roles: " + ", ".join(f"{c.column} {c.old_role}->{c.new_role}" for c in changed))
    SessionStore(settings.layout.sessions_db).update(context.partition_key, target=profile.target)
    roles = [{"column": m.name, "role": m.role, "confidence": round(float(m.confidence), 3), "dtype": str(m.dtype),
              "missing": m.missing_count, "unique": m.unique_count, "user_labelled": bool(m.user_labelled)} for m in profile.metas]
    publish_metadata(context, {
        **present(target=profile.target), "target_reason": profile.target_reason, "tags": ", ".join(profile.tags),
        "needs_role_review": profile.needs_role_review, "roles": table(roles),
    })
    return profile


@dg.asset(
    partitions_def=runs_partitions, group_name="enrich", kinds={"pandas", "duckdb"}, owners=OWNERS, deps=[semantic_index],
    description="The cleaned frame left-joined with the lake tables that share its keys and lift a cross-validated model (forward selection, "
                "finer-grained tables aggregated to one row per user row, leaking tables refused); the merge report.",
)
@run_stage
def enriched_frame(context: dg.AssetExecutionContext, settings: AutomodelSettings, cleaned_frame: Table, column_metadata: stages.Profile,
                   raw_dataset: Table) -> Table:
    history = notes_of(cleaned_frame)
    manifest = _manifest(settings, context.partition_key)
    if large.is_large(cleaned_frame):  # out of core (automodel.large)
        reference, merge = large.enriched_table(settings, manifest, context.partition_key, cleaned_frame, column_metadata,
                                                lambda m: publish_metadata(context, m))
        return with_notes(reference, {**history, MERGE_REPORT: merge})
    reuse_spec = None
    if manifest.model_run_id:  # the join the reused model was trained with, as its bundle saved it
        reuse_spec = stages.load_model_bundle(settings.layout.model_path(manifest.model_run_id)).get("enrichment_spec")
    lake_dir, lake = lake_for_run(manifest.options, reuse_spec, settings.lake_dir, settings.home)
    frame, report = stages.enrich_frame(cleaned_frame, column_metadata, lake_dir, settings.layout.catalog_db,
                                        settings.enable_semantic_merge, reuse_spec, category=manifest.category,
                                        reusing_model=bool(manifest.model_run_id), max_tables=settings.enrich_max_tables,
                                        raw=raw_dataset, validate=manifest.options.get("validate"), lake=lake,
                                        allow_missing_lake=allow_missing_lake(manifest.options, settings.allow_missing_lake))
    SessionStore(settings.layout.sessions_db).update(context.partition_key, enrichment=report.to_dict())
    publish_metadata(context, {
        "dagster/row_count": len(frame), "kept": bool(report.kept), "added_columns": len(report.added_columns), "reason": report.reason,
        **present(table=report.table, keys=" = ".join(report.keys) or None, strategy=report.strategy,
                  coverage=float(report.coverage) if report.coverage is not None else None,
                  lift=float(report.lift) if report.lift is not None else None),
        "candidates": _candidates_table(report.candidates),
        "tables_kept": _kept_table(report.tables),
        "refused": table([{"table": r["table"], "reason": r["reason"]} for r in report.refused], ["table", "reason"]),
        "merge_report": dg.MetadataValue.json(report.to_dict()),
        "lake": dg.MetadataValue.json(report.lake or {}),
    })
    return with_notes(frame, {**history, MERGE_REPORT: report.to_dict()})  # the frame's whole history travels on


@dg.asset(
    partitions_def=runs_partitions, group_name="model", kinds={"scikitlearn", "lightgbm"}, owners=OWNERS, pool="train",
    description="The analyzer chosen through the registry, its fitted pipeline (models/<run_id>/best_model), metrics, leaderboard and roles. "
                "A scoring run reuses another run's model without training.",
)
@run_stage
def model(context: dg.AssetExecutionContext, settings: AutomodelSettings, dask: DaskResource, enriched_frame: Table,
          column_metadata: stages.Profile) -> stages.ModelOutcome:
    run_id = context.partition_key
    manifest = _manifest(settings, run_id)
    layout = settings.layout
    notes = notes_of(enriched_frame)
    if large.is_large(enriched_frame):  # out of core (automodel.large): search on a sample, refit on all rows on Dask
        outcome = large.model_outcome(settings, manifest, run_id, enriched_frame, column_metadata, dask.config(), dict(
            min_r2=settings.min_r2, max_mape=settings.max_mape, max_rows_first_pass=settings.max_rows_first_pass,
            max_rows_full=settings.max_rows_full, time_budget_s=float(manifest.options.get("budget_s") or settings.search_time_budget_s),
            user_labels=manifest.labels or None, search_backend=settings.search_backend, model_families=stages.model_families(settings.model_families),
            training_schema=TrainingSchema.from_dict(notes[TRAINING_SCHEMA]) if notes.get(TRAINING_SCHEMA) else None,
            enrichment_spec=(notes.get(MERGE_REPORT) or {}).get("spec"), min_rows=settings.min_rows,
            interval_coverage=settings.interval_coverage, drop_outliers=settings.drop_outliers,
            keep=tuple(manifest.options.get("keep") or ()), drop=tuple(manifest.options.get("drop") or ())), context.log.info)
    elif manifest.model_run_id:
        outcome = stages.reuse_model(enriched_frame, manifest.model_run_id, layout.model_path(manifest.model_run_id),
                                     scoring=notes.get(SCORING_REPORT), drift_min_rows=settings.drift_min_rows)
    else:
        spec = (notes.get(MERGE_REPORT) or {}).get("spec")
        schema = notes.get(TRAINING_SCHEMA)
        context.log.info(f"training on {len(enriched_frame)} rows, target {column_metadata.target!r}")
        # The budget is the run's: the search gets what the stages before it left, less a reserve for those after it.
        budget = search_budget(float(manifest.options.get("budget_s") or settings.search_time_budget_s), _seconds_into_run(context))
        outcome = stages.train_model(
            enriched_frame, column_metadata, layout.model_path(run_id), enrichment_spec=spec, min_r2=settings.min_r2, max_mape=settings.max_mape,
            max_rows_first_pass=settings.max_rows_first_pass, max_rows_full=settings.max_rows_full,
            time_budget_s=budget.search_s, user_labels=manifest.labels or None,
            search_backend=settings.search_backend, model_families=stages.model_families(settings.model_families),
            training_schema=TrainingSchema.from_dict(schema) if schema else None, min_rows=settings.min_rows,
            interval_coverage=settings.interval_coverage, drop_outliers=settings.drop_outliers,
            keep=tuple(manifest.options.get("keep") or ()), drop=tuple(manifest.options.get("drop") or ()),
            validate=manifest.options.get("validate"), lags=bool(manifest.options.get("lags")),
        )
        outcome.details["run_budget"] = budget.to_dict()
    SessionStore(layout.sessions_db).update(run_id, analyzer=outcome.analyzer, task=outcome.task, metrics=outcome.metrics, model_type=outcome.model_info.get("model"),
                 model_path=outcome.model_path, needs_role_review=outcome.needs_role_review, target=outcome.target,
                 training=large.training_record(outcome, enriched_frame))
    publish_metadata(context, {
        "analyzer": outcome.analyzer, "task": outcome.task, "trusted": bool(outcome.trusted), "notes": "; ".join(outcome.notes),
        "training_seconds": float(outcome.training_seconds), "candidates": len(outcome.leaderboard),
        "training": large.training_record(outcome, enriched_frame),
        **present(model=str(outcome.model_info["model"]) if outcome.model_info.get("model") else None, target=outcome.target,
                  reused_from=outcome.reused_from),
        **({"model_path": dg.MetadataValue.path(str(outcome.model_path))} if outcome.model_path else {}),
        "metrics": pairs_table(outcome.metrics, "metric", "value"),
        "leaderboard": table(outcome.leaderboard),
        "search": dg.MetadataValue.json({k: v for k, v in (outcome.details.get("search") or {}).items() if k != "notes"}),
        **({"validation": dg.MetadataValue.json(outcome.details["validation"])} if outcome.details.get("validation") else {}),
        **({"run_budget": dg.MetadataValue.json(outcome.details["run_budget"])} if outcome.details.get("run_budget") else {}),
        "excluded_columns": pairs_table(outcome.excluded_columns, "column", "reason"),
        **numbers(outcome.metrics, "metric"),
    })
    return outcome


@dg.asset(
    partitions_def=runs_partitions, group_name="outputs", kinds={"csv"}, owners=OWNERS,
    description="One row per input row, same order: `prediction` and, for classifiers, `proba_<class>`; also output_files/<run_id>_predictions.csv.",
)
@run_stage
def predictions(context: dg.AssetExecutionContext, settings: AutomodelSettings, enriched_frame: Table, model: stages.ModelOutcome) -> Table:
    notes = notes_of(enriched_frame)
    if large.is_large(enriched_frame):  # out of core (automodel.large): scored chunk by chunk
        return large.predictions_table(settings, context.partition_key, enriched_frame, model, lambda m: publish_metadata(context, m))
    frame = stages.predict(enriched_frame, model)
    path = settings.layout.predictions_path(context.partition_key)
    stages.write_predictions_csv(path, frame)
    SessionStore(settings.layout.sessions_db).update(context.partition_key, predictions_path=str(path))
    scoring = notes.get(SCORING_REPORT) if model.reused_from else None
    if scoring:
        publish_metadata(context, {"scoring": dg.MetadataValue.md("\n".join(f"- {n}" for n in scoring["notes"]) or "Every column read as in training."),
                                     "missing_imputed": ", ".join(scoring["missing_imputed"]) or "none",
                                     "unseen_categories": ", ".join(scoring["unseen_categories"]) or "none",
                                     "extra_columns_ignored": ", ".join(scoring["extra_columns"]) or "none"})
    publish_metadata(context, {"dagster/row_count": len(frame), "path": dg.MetadataValue.path(str(path)),
                                 "overview": pairs_table(prediction_overview(model.task, frame)),
                                 "preview": frame_table(frame, 10)})
    return frame


@dg.asset(
    partitions_def=runs_partitions, group_name="outputs", kinds={"shap"}, owners=OWNERS,
    description="Feature importance: mean |SHAP| (TreeExplainer) for tree models, permutation importance otherwise. Behind ENABLE_SHAP_EXPLANATIONS.",
)
@run_stage
def explanations(context: dg.AssetExecutionContext, settings: AutomodelSettings, enriched_frame: Table, model: stages.ModelOutcome) -> pd.DataFrame:
    notes_of(enriched_frame)
    enriched_frame = large.report_frame(enriched_frame, settings)  # a large table: its held-out rows (automodel.large)
    importance = stages.explain(enriched_frame, model, enabled=settings.enable_shap_explanations)
    path = settings.layout.explanation_path(context.partition_key)
    if not importance.empty:
        stages.write_predictions_csv(path, importance)
    rows = stages.explain_rows(enriched_frame, model, enabled=settings.enable_shap_explanations)
    if not rows.empty:  # for people; the dashboard takes the values from this asset's output
        stages.write_predictions_csv(settings.layout.shap_path(context.partition_key), rows)
    publish_metadata(context, {**present(method=importance["method"].iloc[0] if not importance.empty else None),
                                 "shap_rows": int(rows["row"].nunique()) if not rows.empty else 0, "features": len(importance),
                                 "top_features": frame_table(importance, 20)})
    # Per-row SHAP values on a sample (the dashboard's beeswarm and dependence charts) travel with the importance.
    return with_notes(importance, {SHAP_ROWS: rows.to_dict(orient="split", index=False) if not rows.empty else None})


@dg.asset(
    partitions_def=runs_partitions, group_name="outputs", kinds={"python"}, owners=OWNERS,
    description="A plain-English summary of the run with its real numbers, caveats and recommendations: the template, or an LLM "
                "(AUTOMODEL_LLM_PROVIDER openai/vllm) whose text is kept only when every number in it comes from the run's facts.",
)
@run_stage
def summary(context: dg.AssetExecutionContext, settings: AutomodelSettings, llm: LLMResource, enriched_frame: Table,
            model: stages.ModelOutcome, predictions: Table, explanations: pd.DataFrame, column_metadata: stages.Profile) -> dict:
    notes = notes_of(enriched_frame)
    table_rows, table_missing = large.row_count(enriched_frame), large.missing_counts(enriched_frame)  # every row, large or not
    enriched_frame, predictions = large.report_view(enriched_frame, predictions, settings)
    # The run's one facts object: the summary, the dashboard, the run JSON and this metadata all read it.
    facts = summary_facts(model.to_dict(), table_rows, enriched_frame.shape[1], notes.get(MERGE_REPORT),
                          notes.get(CLEANING_REPORT) or {}, explanations.to_dict(orient="records"),
                          roles=model.roles or {m.name: m.role for m in column_metadata.metas},
                          missing=table_missing,
                          predictions_path=str(settings.layout.predictions_path(context.partition_key)),
                          holdout_rows=None if model.holdout is None else len(model.holdout),
                          baseline=baseline_for(enriched_frame[model.target] if model.target in enriched_frame else None, model.task))
    write_facts(settings.layout.facts_path(context.partition_key), facts)
    result = summarize(facts, llm.get_provider())
    if result.fallback_reason:
        context.log.warning(f"summary: {result.fallback_reason}")
    SessionStore(settings.layout.sessions_db).update(context.partition_key, summary=result.text)
    publish_metadata(context, {
        "summary": dg.MetadataValue.md(result.text), "provider": result.provider, "requested_provider": result.requested_provider,
        **present(fallback_reason=result.fallback_reason or None, holdout_basis=str(facts["holdout_basis"]) if facts.get("holdout_basis") else None),
        "recommendations": dg.MetadataValue.md("\n".join(f"- {r}" for r in result.recommendations) or "No recommendations."),
        "caveats": dg.MetadataValue.md("\n".join(f"- {c}" for c in facts["caveats"]) or "No caveats."),
        "trusted": bool(facts["trusted"]), "trust_reason": facts["trust_reason"],
        "facts": dg.MetadataValue.path(str(settings.layout.facts_path(context.partition_key))),
    })
    return {**result.to_dict(), "facts": facts}


@dg.asset(
    partitions_def=runs_partitions, group_name="outputs", kinds={"plotly", "html"}, owners=OWNERS,
    description="A self-contained plotly HTML report (dashboards/<run_id>.html): headline with the held-out metric and whether to trust it, "
                "evaluation charts from the held-out predictions, SHAP explanations, leaderboard, data, enrichment, predictions and "
                "the actions taken (built after them). The last built-in stage: it marks the run's session successful.",
)
@run_stage
def dashboard(context: dg.AssetExecutionContext, settings: AutomodelSettings, enriched_frame: Table, model: stages.ModelOutcome,
              predictions: Table, explanations: pd.DataFrame, summary: dict, actions: list) -> dict:
    facts = summary["facts"]
    run_id = context.partition_key
    notes_of(enriched_frame)
    shap = notes_of(explanations).get(SHAP_ROWS)
    enriched_frame, predictions = large.report_view(enriched_frame, predictions, settings)  # a large table: its held-out rows
    shap_rows = None
    if shap and not explanations.empty:
        shap_rows = pd.DataFrame(shap["data"], columns=shap["columns"])
        for column in ("row", "shap", "value"):
            shap_rows[column] = pd.to_numeric(shap_rows[column], errors="coerce")
    evaluation = evaluation_rows(enriched_frame, model.target, predictions, model.holdout, facts.get("holdout_basis"),
                                 scored_new_rows=bool(model.reused_from))
    classes = [c[len("proba_"):] for c in predictions.columns if str(c).startswith("proba_")]
    figures = build_figures(model.task, enriched_frame, model.target, predictions, explanations.to_dict(orient="records"),
                            evaluation=evaluation, baseline=bool(facts.get("fallback")), shap=shap_rows, classes=classes or None)
    path = settings.layout.dashboard_path(run_id)
    charts = [name for name, _ in figures]
    figures_shown = key_figures(model.task, facts["metrics"], facts["rows"])
    text = summary["text"] + ("" if summary.get("provider", "template") == "template" else " Recommendations: " + " ".join(summary.get("recommendations", [])))
    write_report(path, facts, text, figures, title=f"automodel run {run_id}: {facts.get('target') or facts['task']}",
                 predictions=predictions, frame=enriched_frame, actions=taken_actions(actions))
    SessionStore(settings.layout.sessions_db).update(run_id, dashboard_path=str(path), status="success", error=None)
    url = dashboard_link(settings, path)
    publish_metadata(context, {"dashboard": dg.MetadataValue.url(url), "path": dg.MetadataValue.path(str(path)), "charts": ", ".join(charts),
                                 "key_figures": pairs_table(figures_shown, "figure", "value"), **numbers(figures_shown, "figure"),
                                 "holdout_basis": str(facts.get("holdout_basis")), "trusted": bool(facts["trusted"])})
    return {"path": str(path), "url": url, "charts": charts, "key_figures": figures_shown}


@dg.asset(
    partitions_def=runs_partitions, group_name="actions", kinds={"python"}, owners=OWNERS,
    description="What the action recipes (role_review, anomaly_alert, reorder) did, with notifications; logged to action_logs.db. "
                "Behind ENABLE_AGENT_ACTIONS. The dashboard shows them.",
)
@run_stage
def actions(context: dg.AssetExecutionContext, settings: AutomodelSettings, notifier: NotifierResource, model: stages.ModelOutcome,
            predictions: Table, summary: dict, column_metadata: stages.Profile, enriched_frame: Table) -> list:
    notes_of(enriched_frame)
    run_id = context.partition_key
    manifest = _manifest(settings, run_id)
    enriched_frame, predictions = large.report_view(enriched_frame, predictions, settings)  # a large table: its held-out rows
    if settings.enable_agent_actions:
        action_context = ActionContext(
            run_id=run_id, file_name=manifest.file_name, user_id=manifest.user_id, analyzer=model.analyzer, task=model.task,
            target=model.target, metrics=model.metrics, summary=summary["text"], predictions=predictions,
            column_metadata=column_metadata.metas, needs_role_review=model.needs_role_review, frame=enriched_frame,
            trusted=bool(model.trusted) and not str(model.model_info.get("model") or "").startswith("baseline"),
            model_name=str(model.model_info.get("model") or ""),
            model_details=model.details or {},
        )
        results = execute_actions(action_context, ActionLog(settings.layout.action_log_db),
                                  enabled=select_recipes(settings.recipes_enabled, settings.recipes_disabled),
                                  recipe_options=parse_recipe_options(settings.recipe_options), notifiers=notifier.notifiers())
    else:
        results = [{"recipe": "all", "triggered": False, "message": "ENABLE_AGENT_ACTIONS is off", "records": [], "notified": []}]
    SessionStore(settings.layout.sessions_db).update(run_id, actions=taken_actions(results))
    rows = [{"recipe": r["recipe"], "triggered": bool(r["triggered"]), "message": r["message"], "notified": ", ".join(r["notified"])}
            for r in results]
    publish_metadata(context, {"triggered": sum(bool(r["triggered"]) for r in results), "channels": ", ".join(notifier.channels),
                                 "actions": table(rows, ["recipe", "triggered", "message", "notified"])})
    return results


def taken_actions(results: list) -> list[dict]:
    """What each recipe did, as the session and the dashboard show it (the records themselves stay in action_logs.db)."""
    return [{k: r[k] for k in ("recipe", "triggered", "message", "notified", "held_back") if k in r} for r in results]


# The built-in run assets, for tests and tools that materialize them directly. A run is not this list: automodel_run selects
# every asset on the run_id partitions (automodel_assets.definitions.run_selection), added ones included.
RUN_ASSETS = [raw_dataset, cleaned_frame, column_metadata, enriched_frame, model, predictions, explanations, summary, actions, dashboard]
RUN_ASSET_NAMES = [a.key.path[-1] for a in RUN_ASSETS]
ALL_ASSETS = [public_datasets, semantic_index, *RUN_ASSETS]
ASSET_CHECKS = [cleaned_frame_shape, *VALIDATION_CHECKS]
