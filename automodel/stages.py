"""The pipeline's stages as plain functions. Assets call these and add Dagster metadata; the CLI's
``inspect`` and the tests call them directly.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from analyzers.base import AnalysisContext, AnalysisResult, FittedModel
from analyzers.search.model_search import MODEL_FAMILIES
from analyzers.selection import analyze
from automodel.atomic import write_with_atomic
from automodel.ingest.cleaning import CleaningReport, clean, mark_duplicates, remove_outliers
from automodel.lake.enrich import MAX_TABLES, MergeReport, rank_and_merge, spec_user_columns
from automodel.bundle import load_model_bundle  # noqa: F401  (part of the stages' API: scoring, the CLI, tests)
from automodel.lake.remembered import join_remembered, lake_record
from automodel.errors import AutomodelError, InputFileError, ScoringError, TargetError
from automodel.ingest.loader import LoadInfo, load_bytes
from automodel.ingest.roles import ColumnMeta, categorize_dataset, guess_target, infer_column_meta
from automodel.ingest.schema import ScoringReport, TrainingSchema
from automodel.drift import compare as compare_drift
from automodel.drift import MIN_ROWS as DRIFT_MIN_ROWS
from automodel.drift import drift_sentence, reference_profile
from automodel.labels import restore_labels, written_labels

# ---- stage 1: load, clean, profile -------------------------------------------------------------

def load_raw(name: str, data: bytes, source: str, limits=None, allow_empty: bool = False) -> tuple[pd.DataFrame, LoadInfo]:
    """``limits`` (automodel.ingest.archive.InputLimits): inflated size, expansion ratio, columns; the environment's when None.
    ``allow_empty``: an empty or header-only file loads as 0 rows (``inspect``) instead of being refused."""
    return load_bytes(name, data, source=source, limits=limits, allow_empty=allow_empty)


def clean_frame(raw: pd.DataFrame, target: str | None) -> tuple[pd.DataFrame, CleaningReport]:
    result = clean(raw, protect=(target,) if target else ())
    return result.frame, result.report


TRAINING_SCHEMA_FILE = "training_schema.json"


def capture_training_schema(raw: pd.DataFrame, frame: pd.DataFrame, report: CleaningReport, target: str | None) -> TrainingSchema:
    """What cleaning decided on a training file, to be saved with its model and replayed on every batch it scores."""
    return TrainingSchema.capture(raw, frame, report, target)


def write_training_schema(model_dir: Path, schema: TrainingSchema) -> Path:
    import json

    from automodel.atomic import write_text_atomic

    return write_text_atomic(Path(model_dir) / TRAINING_SCHEMA_FILE, json.dumps(schema.to_dict(), default=str))


def read_training_schema(model_dir: Path) -> TrainingSchema | None:
    import json

    path = Path(model_dir) / TRAINING_SCHEMA_FILE
    return TrainingSchema.from_dict(json.loads(path.read_text())) if path.exists() else None


def training_roles(model_path: Path) -> dict[str, str]:
    """Each column's role in the training file of a saved model (empty for models saved before training schemas)."""
    return dict((load_model_bundle(model_path).get("training_schema") or {}).get("roles") or {})


def replay_cleaning(raw: pd.DataFrame, model_path: Path, bundle: dict | None = None) -> tuple[pd.DataFrame, ScoringReport]:
    """A batch to score, cleaned exactly as the model's training file was (never re-decided on the batch).
    ``bundle``: the model's bundle when the caller holds it loaded already (the HTTP API's warm models)."""
    bundle = bundle if bundle is not None else load_model_bundle(model_path)
    saved = bundle.get("training_schema")
    if saved:
        return TrainingSchema.from_dict(saved).apply(raw)
    # A model saved before training schemas: cleaning decides afresh, but never drops a column the model reads.
    fitted: FittedModel = bundle["fitted"]
    keep = tuple(fitted.feature_columns) + ((fitted.target,) if fitted.target else ())
    result = clean(raw, protect=keep)
    return result.frame, ScoringReport(rows=len(raw), replayed=False)


@dataclass
class Profile:
    metas: list[ColumnMeta]
    target: str | None
    target_reason: str
    tags: list[str]
    time_column: str | None = None
    target_labels: dict[str, str] | None = None  # cleaned target value -> the label as the input wrote it (automodel.labels)

    def meta(self, name: str) -> ColumnMeta | None:
        return next((m for m in self.metas if m.name == name), None)

    @property
    def needs_role_review(self) -> bool:
        return any(m.confidence < 0.7 and not m.user_labelled for m in self.metas)


def profile_frame(frame: pd.DataFrame, raw: pd.DataFrame | None, target: str | None, labels: dict[str, str] | None,
                  sample_rows: int = 1000, reused_target: str | None = None, training_roles: dict[str, str] | None = None) -> Profile:
    """One ColumnMeta per column, the target (given, reused or guessed, with the reason) and tags.
    ``training_roles`` (a scoring run) are the roles of the model's training file: a batch's few rows do not re-decide them."""
    if len(frame) > sample_rows * 10:
        index = frame.sample(sample_rows * 10, random_state=0).index.sort_values()  # row order kept: ids are told by it
        sample, raw_sample = frame.loc[index], raw.loc[index] if raw is not None else None
    else:
        sample, raw_sample = frame, raw
    metas = infer_column_meta(sample, raw_sample, labels)
    for meta in metas:  # counts on all rows, roles on the sample
        meta.missing_count = int(frame[meta.name].isna().sum())
        meta.unique_count = int(frame[meta.name].nunique(dropna=True))
        if training_roles and meta.name in training_roles and not meta.user_labelled:
            meta.role, meta.confidence, meta.reason = training_roles[meta.name], 1.0, "its role when the model was trained"
    if reused_target is not None:
        chosen, reason = reused_target, "target of the model being reused"
    elif target:
        if target not in frame.columns:
            known = ", ".join(repr(c) for c in list(frame.columns)[:8])
            raise TargetError(f"Target column {target!r} is not in the file; choose one of {known}{'...' if frame.shape[1] > 8 else ''}.")
        if frame[target].isna().all():
            raise TargetError(f"Target column {target!r} is empty in every row; choose a column with values.")
        chosen, reason = target, "given by the user"
    else:
        chosen, reason = guess_target(frame, metas)
    time_column = next((m.name for m in metas if m.role in ("date", "datetime") and m.missing_count == 0 and frame[m.name].is_monotonic_increasing), None)
    labels = written_labels(raw[chosen], frame[chosen]) if raw is not None and chosen in frame.columns and chosen in raw.columns else None
    return Profile(metas=metas, target=chosen, target_reason=reason, tags=categorize_dataset(frame, metas), time_column=time_column,
                   target_labels=labels)


# ---- stage 2: enrichment -----------------------------------------------------------------------

def enrich_frame(frame: pd.DataFrame, profile: Profile, lake_dir: Path, catalog_db: Path, enabled: bool,
                 reuse_spec: dict | None = None, category: str | None = None,
                 reusing_model: bool = False, max_tables: int = MAX_TABLES, raw: pd.DataFrame | None = None,
                 validate: str | dict | None = None, lake: dict | None = None,
                 allow_missing_lake: bool = False) -> tuple[pd.DataFrame, MergeReport]:
    """``raw``: the file as loaded; columns cleaning dropped from it (a constant year) can still be part of a join key.
    ``validate``: the run's validation scheme (as ``train_model``'s); the lift gate judges tables by its folds.
    ``lake``: where the lake came from (``location``, ``why``: automodel.lake.remembered.choose_lake), recorded with the
    model; ``allow_missing_lake``: a scoring run may go on without a joined table that is gone (the loss is stated)."""
    lake = dict(lake or {"location": str(lake_dir), "why": "the configured lake"})
    # From here on the target speaks the user's labels (Yes/No, not the booleans cleaning made of them).
    frame = restore_labels(frame, profile.target, getattr(profile, "target_labels", None))
    if reusing_model and not reuse_spec:
        return frame, MergeReport(reason="the reused model was trained without enrichment")
    if reuse_spec:
        missing = [c for c in spec_user_columns(reuse_spec) if c not in frame.columns and (raw is None or c not in raw.columns)]
        if missing:
            raise ScoringError(f"The model was trained on data enriched through column {missing[0]!r}, which this file lacks; add it.")
        enriched, coverages, check, lost = join_remembered(frame, lake_dir, reuse_spec, lake["location"], allow_missing_lake, written=raw)
        specs = reuse_spec.get("tables", [reuse_spec])
        tables = [{"table": one["table"], "keys": ["+".join(one.get("user_columns") or [one["user_column"]]),
                                                   "+".join(one.get("lake_columns") or [one["lake_column"]])],
                   "strategy": "reused from the model's run" if coverages.get(one["table"]) is not None else "scored without it",
                   "coverage": None if coverages.get(one["table"]) is None else round(coverages[one["table"]], 4),
                   "kept": coverages.get(one["table"]) is not None, "lift": None,
                   "added_columns": one["added_columns"]} for one in specs]
        first = tables[0]
        notes = [*check.changed, *lost]
        return enriched, MergeReport(table=first["table"], keys=first["keys"], strategy=first["strategy"],
                                     coverage=first["coverage"] or 0.0, kept=True, added_columns=[c for t in tables for c in t["added_columns"]],
                                     spec=reuse_spec, tables=tables,
                                     reason="same enrichment as the run whose model is reused" + "".join(f"; {n}" for n in notes),
                                     lake={**lake, **check.to_dict(), "notes": notes})
    if not enabled:
        return frame, MergeReport(reason="ENABLE_SEMANTIC_MERGE is off", lake=lake)
    validation = choose_scheme(frame, profile.metas, profile.target, validate) if profile.target in frame.columns else None
    enriched, report = rank_and_merge(frame, profile.metas, lake_dir, catalog_db, target=profile.target, category=category,
                                      max_tables=max_tables, written=raw, validation=validation)
    report.lake = lake
    if report.spec:  # the model remembers where each joined table came from and which version it read
        report.spec["lake"] = lake_record(lake["location"], lake_dir, report.tables, report.metric)
        report.lake = {**lake, "tables": report.spec["lake"]["tables"]}
    return enriched, report


def enriched_metas(frame: pd.DataFrame, profile: Profile) -> list[ColumnMeta]:
    """Column metas for the enriched frame: the profile's, plus inferred ones for added lake columns."""
    known = {m.name for m in profile.metas}
    added = [c for c in frame.columns if c not in known]
    return list(profile.metas) + (infer_column_meta(frame[added]) if added else [])


# ---- stage 3: model -----------------------------------------------------------------------------

@dataclass
class ModelOutcome:
    analyzer: str
    task: str
    target: str | None
    metrics: dict[str, float]
    model_info: dict
    model_path: str | None
    leaderboard: list[dict] = field(default_factory=list)
    trusted: bool = True
    notes: list[str] = field(default_factory=list)
    excluded_columns: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    needs_role_review: bool = False
    reused_from: str | None = None
    details: dict = field(default_factory=dict)
    row_scores: pd.DataFrame | None = None
    training_seconds: float = 0.0
    holdout: pd.DataFrame | None = None  # AnalysisResult.holdout: held-out predictions of the chosen model

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("row_scores")
        out.pop("holdout")
        return out


def training_mask(frame: pd.DataFrame, target: str | None, drop_outliers: bool = False) -> pd.Series:
    """Rows a model trains on: every row but repeats of an earlier one. Rows with outlying feature values stay by default:
    they are real rows the model will be asked to score, and often the telling ones (HMDA mortgages: the IQR fence marked
    15 % of the applicants, those with the worst credit histories, whom lenders deny most; without them test ROC-AUC fell
    from 0.886 to 0.879). The cleaning report still counts them; ``drop_outliers`` (AUTOMODEL_DROP_OUTLIERS) leaves them
    out of training, as the classic cleaning step did."""
    report = CleaningReport()
    mask = ~mark_duplicates(frame, report)
    if drop_outliers:
        mask &= ~remove_outliers(frame, report, protect=(target,) if target else ())
    return mask


def save_model_bundle(path: Path, fitted: FittedModel, enrichment_spec: dict | None, holdout: pd.DataFrame | None = None,
                      holdout_basis: str | None = None, training_schema: TrainingSchema | None = None, trusted: bool = True,
                      drift_reference: dict | None = None) -> None:
    # The held-out predictions travel with the model, so a scoring run that reuses it can still calibrate against them;
    # so does its verdict, so recipes on a scoring run act only on a model that was trusted when trained; and the
    # training rows' column profile (automodel.drift), so a scoring run can tell whether its rows have moved.
    bundle = {"fitted": fitted, "enrichment_spec": enrichment_spec, "saved_at": time.time(), "versions": fitted.versions,
              "holdout": holdout, "holdout_basis": holdout_basis, "trusted": bool(trusted), "drift_reference": drift_reference}
    if training_schema is not None:  # plain data, so a bundle stays readable whatever the schema code becomes
        join_keys = spec_user_columns(enrichment_spec) if enrichment_spec else []
        bundle["training_schema"] = training_schema.for_model(fitted.feature_columns, join_keys, fitted.target).to_dict()
    write_with_atomic(path, lambda tmp: joblib.dump(bundle, tmp))


def model_families(setting: str) -> tuple[str, ...]:
    """AUTOMODEL_MODEL_FAMILIES as family names (empty: every family); a name the search does not know is refused in one
    sentence before any training, rather than failing inside the search, which would fall back to a baseline model."""
    names = tuple(name.strip().lower() for name in str(setting or "").split(",") if name.strip())
    unknown = [name for name in names if name not in MODEL_FAMILIES]
    if unknown:
        raise AutomodelError(f"AUTOMODEL_MODEL_FAMILIES names {', '.join(map(repr, unknown))}, which the search does not know; "
                             f"use some of {', '.join(MODEL_FAMILIES)}, or leave it empty for all of them.")
    return names


def train_model(frame: pd.DataFrame, profile: Profile, model_path: Path, *, enrichment_spec: dict | None = None,
                min_r2: float = 0.5, max_mape: float = 0.3, max_rows_first_pass: int = 25_000, max_rows_full: int = 1_000_000,
                time_budget_s: float = 60.0, user_labels: dict | None = None, n_jobs: int | None = None,
                search_backend: str = "automodel", model_families: tuple = (), training_schema: TrainingSchema | None = None, min_rows: int = 20,
                interval_coverage: float = 0.9, keep: tuple = (), drop: tuple = (), drop_outliers: bool = False,
                validate: str | dict | None = None, lags: bool = False) -> ModelOutcome:
    """``validate``: the user's scheme (``random``, ``time:COL``, ``group:COL``); None chooses it from the data.
    ``lags``: the target's past is known when scoring, so lag features of it are added (analyzers.lags)."""
    metas = enriched_metas(frame, profile)
    validation = choose_scheme(frame, metas, profile.target, validate)
    history = None
    if lags:
        frame, metas, history = with_lag_features(frame, metas, profile.target, validation)
        keep = tuple(keep or ()) + tuple(history.columns)  # the target's own past: predictive by design, never a leak
    context = AnalysisContext(
        metas=metas, target=profile.target, training_mask=training_mask(frame, profile.target, drop_outliers),
        time_column=validation.columns[0] if validation.scheme == "time" else None, validation=validation,
        min_r2=min_r2, max_mape=max_mape, max_rows_first_pass=max_rows_first_pass, max_rows_full=max_rows_full,
        time_budget_s=time_budget_s, n_jobs=n_jobs or min(2, os.cpu_count() or 1), search_backend=search_backend, min_rows=min_rows,
        model_families=tuple(model_families or ()),
        interval_coverage=interval_coverage, keep=tuple(keep or ()), drop=tuple(drop or ()),
    )

    def relabel(labels):
        return enriched_metas(frame, Profile(infer_column_meta(frame[[m.name for m in profile.metas]], None, labels), profile.target, "", []))

    if training_schema is not None:
        training_schema = replace(training_schema, roles={m.name: m.role for m in metas})
    started = time.perf_counter()
    result: AnalysisResult = analyze(frame, context, user_labels=user_labels, relabel=relabel)
    seconds = time.perf_counter() - started
    result.details.setdefault("validation", validation.to_dict())  # a baseline or descriptive fallback still says how it was judged
    if history is not None and result.fitted is not None and set(history.columns) & set(result.fitted.feature_columns):
        result.fitted.history = history.to_dict()
        result.details["lag_features"] = history.sentence()
        result.notes.append(history.sentence())
    saved = None
    if result.fitted is not None:
        reference = reference_profile(frame, result.fitted.feature_columns, {m.name: m.role for m in metas})
        save_model_bundle(model_path, result.fitted, enrichment_spec, result.holdout, result.details.get("holdout_basis"), training_schema,
                          trusted=result.trusted, drift_reference=reference)
        saved = str(model_path)
    return ModelOutcome(
        analyzer=result.analyzer, task=result.task, target=result.target, metrics=result.metrics, model_info=result.model_info,
        model_path=saved, leaderboard=result.leaderboard, trusted=result.trusted, notes=result.notes,
        excluded_columns=result.excluded_columns, roles={m.name: m.role for m in metas}, needs_role_review=profile.needs_role_review,
        details=result.details, row_scores=result.row_scores, training_seconds=round(seconds, 3), holdout=result.holdout,
    )


def with_lag_features(frame: pd.DataFrame, metas: list, target: str | None, validation):
    """The frame and metas with the target's lag features (analyzers.lags); only for a numeric target validated by time."""
    from analyzers.lags import LagSpec, add_lag_features

    if validation.scheme != "time" or not target or not pd.api.types.is_numeric_dtype(frame[target]):
        raise InputFileError("Lag features (--lags) need a numeric target and rows ordered in time; name the date column with "
                             "--validate time:COL, or train without --lags.")
    spec = LagSpec(target, validation.columns[0], tuple(validation.entity))
    frame = add_lag_features(frame, spec)
    return frame, list(metas) + infer_column_meta(frame[spec.columns]), spec


def choose_scheme(frame: pd.DataFrame, metas: list, target: str | None, validate: str | dict | None):
    """The validation scheme (analyzers.validation); a ``validate`` the table cannot honour is one sentence to the user."""
    from analyzers.validation import choose_validation

    try:
        return choose_validation(frame, metas, target, validate)
    except ValueError as exc:
        raise InputFileError(str(exc)) from exc


def reused_uncertainty(fitted: FittedModel) -> dict:
    """What a reused model says about its own certainty: the interval it adds, whether it calibrates."""
    out = {}
    if getattr(fitted, "interval", None):
        out["interval"] = fitted.interval
    calibrator = getattr(fitted, "calibrator", None)
    if fitted.task == "classification":
        out["calibration"] = {"applied": calibrator is not None, "method": getattr(calibrator, "method", None)}
    return out


def reuse_model(frame: pd.DataFrame, model_run_id: str, model_path: Path, scoring: dict | None = None,
                drift_min_rows: int = DRIFT_MIN_ROWS) -> ModelOutcome:
    """A scoring run: no training; the saved model is checked against the new data and scored on it if it has the target.
    ``scoring`` is the ScoringReport of the batch's replayed cleaning; its sentences become the run's notes."""
    bundle = load_model_bundle(model_path)
    fitted: FittedModel = bundle["fitted"]
    fitted.check_columns(frame)
    metrics: dict[str, float] = {}
    unlearned: dict | None = None
    if fitted.target and fitted.target in frame.columns and frame[fitted.target].notna().any():
        from analyzers.search import classification_metrics, regression_metrics

        known = frame[fitted.target].notna()
        if fitted.task != "regression":
            unlearned = unlearned_labels(frame.loc[known, fitted.target], fitted.classes)
        preds = fitted.predict_frame(frame[known])
        if fitted.task == "regression":
            metrics = regression_metrics(frame.loc[known, fitted.target], preds["prediction"])
        else:
            proba = preds[[f"proba_{c}" for c in fitted.classes]].to_numpy()
            metrics = classification_metrics(frame.loc[known, fitted.target].astype(object), proba, fitted.classes)
    drift = compare_drift(bundle.get("drift_reference"), frame, min_rows=drift_min_rows)
    notes = [f"reused the model of run {model_run_id}; no training"]
    if drift and drift["moved"]:
        notes.append(drift_sentence(drift))
    return ModelOutcome(
        analyzer=fitted.analyzer, task=fitted.task, target=fitted.target, metrics=metrics,
        model_info={"model": fitted.model_name, "features": len(fitted.feature_columns), "reused": True}, model_path=str(model_path),
        reused_from=model_run_id, notes=[*notes, *(scoring or {}).get("notes", [])],
        trusted=bool(bundle.get("trusted", True)),
        details=reused_uncertainty(fitted) | ({"scoring": scoring} if scoring else {}) | ({"drift": drift} if drift else {})
        | ({"unlearned_target_labels": unlearned} if unlearned else {}),
    )


def unlearned_labels(labels: pd.Series, classes: list, shown: int = 5) -> dict | None:
    """Target labels in a scored batch that the model has no class for (compared as written, like the metrics do)."""
    known = {str(c) for c in classes}
    new = labels[~labels.map(lambda v: str(v) in known)]
    if new.empty:
        return None
    return {"rows": int(len(new)), "values": [str(v) for v in pd.unique(new)[:shown]]}


# ---- stage 4: predictions, explanations ---------------------------------------------------------

ROW_BLOCK = 16


def predict_rows(fitted: FittedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """``fitted.predict_frame`` such that a row's prediction does not depend on the rows scored with it.

    BLAS sums a row's dot product differently when the row falls in a short tail of rows, so a linear
    model's output could differ in the last bit between one row and the same row in a large batch. Rows
    are therefore scored in whole blocks of ROW_BLOCK: the tail is padded with copies of its last row.
    """
    fitted.check_columns(frame)
    frame = fitted.with_history(frame)  # lag features from the whole batch's history, before it is cut into blocks
    n = len(frame)
    whole = n - n % ROW_BLOCK
    if n == whole:
        return fitted.predict_frame(frame)
    tail = frame.iloc[whole:]
    padded = pd.concat([tail, tail.iloc[[-1] * (ROW_BLOCK - len(tail))]])
    parts = ([fitted.predict_frame(frame.iloc[:whole])] if whole else []) + [fitted.predict_frame(padded).iloc[: len(tail)]]
    return pd.concat(parts, ignore_index=True)


def predict(frame: pd.DataFrame, outcome: ModelOutcome) -> pd.DataFrame:
    if outcome.model_path:
        fitted: FittedModel = load_model_bundle(Path(outcome.model_path))["fitted"]
        return predict_rows(fitted, frame)
    if outcome.row_scores is not None:
        return outcome.row_scores.reset_index(drop=True)
    return pd.DataFrame({"prediction": np.full(len(frame), np.nan)})


def write_predictions_csv(path: Path, predictions: pd.DataFrame) -> Path:
    from automodel.export import protect_formulas

    return write_with_atomic(path, lambda tmp: protect_formulas(predictions).to_csv(tmp, index=False))


def explain(frame: pd.DataFrame, outcome: ModelOutcome, sample_rows: int = 500, enabled: bool = True) -> pd.DataFrame:
    """Feature importance: mean |SHAP| (TreeExplainer) for tree models and ensembles of them, permutation
    importance otherwise; on a sample of rows. Behind ENABLE_SHAP_EXPLANATIONS (``enabled``)."""
    from analyzers.explain import feature_importance

    empty = pd.DataFrame(columns=["feature", "importance", "method"])
    if not enabled or not outcome.model_path:
        return empty
    fitted: FittedModel = load_model_bundle(Path(outcome.model_path))["fitted"]
    return feature_importance(fitted, fitted.with_history(frame), sample_rows=sample_rows)



def explain_rows(frame: pd.DataFrame, outcome: ModelOutcome, sample_rows: int = 300, enabled: bool = True) -> pd.DataFrame:
    """Per-row SHAP values on a sample (analyzers.explain.shap_sample), for the dashboard's beeswarm and dependence charts."""
    from analyzers.explain import shap_sample

    if not enabled or not outcome.model_path:
        return pd.DataFrame(columns=["row", "feature", "shap", "value", "label", "output"])
    fitted: FittedModel = load_model_bundle(Path(outcome.model_path))["fitted"]
    if str(fitted.model_name).startswith("baseline"):
        return pd.DataFrame(columns=["row", "feature", "shap", "value", "label", "output"])
    return shap_sample(fitted, fitted.with_history(frame), sample_rows=sample_rows)
