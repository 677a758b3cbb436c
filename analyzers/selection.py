"""assess_modelability, select_analyzer and analyze: choose an analyzer, run it, fall back when needed.

The fallback chain, each step recorded in ``AnalysisResult.notes``:
not modelable -> descriptive analysis (with the reason);
model below thresholds -> rerun with the user's column labels (when given);
still below thresholds and no better than a baseline by the metric the search ranked by, on its held-out rows, by
more than their noise (analyzers.decision) -> the baseline model (mean or class prior), with a descriptive analysis attached;
the analyzer fails -> the baseline model -> descriptive analysis.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analyzers import REGISTRY, load_plugins
from analyzers.base import AnalysisContext, AnalysisResult, Analyzer, FittedModel, library_versions
from analyzers.decision import compare_with_baseline
from analyzers.metric_names import metric_label
from analyzers.preprocess import build_preprocessor, feature_plan, plan_features

MIN_ROWS = 20
MAX_TARGET_MISSING = 0.5
MAX_FEATURE_MISSING = 0.9
# How far an untrusted model must beat the baseline when there are no held-out predictions to measure the noise on
# (another backend): R² for regression, macro F1 for classification.
FIXED_MARGIN = {"regression": 0.1, "classification": 0.05}


@dataclass
class Modelability:
    is_modelable: bool
    reason: str
    confidence: float
    details: dict = field(default_factory=dict)


def assess_modelability(df: pd.DataFrame, context: AnalysisContext) -> Modelability:
    """Can a predictive model be trained? Checks rows, target variance, usable features, missing ratio."""
    target = context.target
    if not target:
        return Modelability(False, "no target column was given or found", 0.9)
    if target not in df.columns:
        return Modelability(False, f"target column {target!r} is not in the table", 1.0)
    y = df[target]
    labelled = int(y.notna().sum())
    missing_ratio = 1 - labelled / max(len(df), 1)
    plan, _ = feature_plan(context.metas, target, context.exclude)
    features = [c for c in plan_features(plan) if c in df.columns]
    feature_missing = float(df[features].isna().mean().mean()) if features else 1.0
    details = {"rows": len(df), "labelled_rows": labelled, "target_missing_ratio": round(missing_ratio, 4), "usable_features": len(features),
               "feature_missing_ratio": round(feature_missing, 4)}
    min_rows = getattr(context, "min_rows", MIN_ROWS)
    if labelled < min_rows:
        return Modelability(False, f"only {labelled} rows have a target value; at least {min_rows} are needed (AUTOMODEL_MIN_ROWS)", 0.95, details)
    present = y.dropna()
    if present.astype(str).nunique() < 2:
        value = str(present.iloc[0])[:40] if len(present) else ""
        return Modelability(False, f"target {target!r} has a single value ({value!r}) in every row, so there is nothing to predict", 1.0, details)
    if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present) and float(present.astype(float).std()) == 0.0:
        return Modelability(False, f"target {target!r} does not vary", 1.0, details)
    identifier = _identifier_reason(present, target, context)
    if identifier:
        return Modelability(False, identifier, 0.95, details)
    if not features:
        return Modelability(False, "no column besides the target can be used as a feature", 0.95, details)
    if missing_ratio > MAX_TARGET_MISSING:
        return Modelability(False, f"{missing_ratio:.0%} of target values are missing", 0.8, details)
    if feature_missing > MAX_FEATURE_MISSING:
        return Modelability(False, f"{feature_missing:.0%} of the feature cells are empty", 0.8, details)
    confidence = float(np.clip(0.5 + 0.1 * np.log10(labelled) + 0.02 * len(features) - 0.3 * feature_missing, 0.5, 0.99))
    return Modelability(True, f"{labelled} labelled rows and {len(features)} usable features", round(confidence, 3), details)


def _identifier_reason(present: pd.Series, target: str, context: AnalysisContext) -> str | None:
    """Why the target looks like a row identifier (nothing to learn: each row names itself), or None.

    Role inference's verdict counts first; besides it, a target whose values are all different is an identifier
    unless they are real measurements (numbers with a fractional part, or spread like a quantity rather than counting 1, 2, 3...)."""
    meta = next((m for m in context.metas if getattr(m, "name", None) == target), None)
    role = getattr(meta, "role", None)
    distinct = int(present.astype(str).nunique())
    if role == "identifier":
        return (f"target {target!r} looks like an identifier ({distinct:,} different values in {len(present):,} rows), "
                "so there is nothing to learn from it; name the column you want predicted with --target")
    if distinct < len(present):
        return None
    if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present):
        values = np.sort(present.astype(float).to_numpy())
        steps = np.diff(values)
        counting = bool(np.all(np.mod(values, 1) == 0)) and len(steps) > 0 and bool(np.all(steps == steps[0]))
        if not counting:
            return None  # all-different measurements (prices, weights) are a regression target
    return (f"target {target!r} has a different value in every one of its {len(present):,} rows, like an identifier, "
            "so there is nothing to learn from it; name the column you want predicted with --target")


def select_analyzer(df: pd.DataFrame, context: AnalysisContext, preferred: str | None = None) -> Analyzer:
    """The registered analyzer with the highest suitability; ``preferred`` overrides by name."""
    registry = load_plugins()
    if preferred:
        if preferred not in registry:
            raise KeyError(f"unknown analyzer {preferred!r}; known: {', '.join(sorted(registry))}")
        return registry[preferred]()
    scored = sorted(((cls().suitability_score(df, context), name) for name, cls in registry.items()), key=lambda s: s[0], reverse=True)
    return registry[scored[0][1]]()


def _descriptive(df, context, steps, extra_details=None) -> AnalysisResult:
    result = REGISTRY["DescriptiveAnalyzer"]().run(df, context)
    result.notes = steps + result.notes
    result.details.update(extra_details or {})
    return result


def analyze(df: pd.DataFrame, context: AnalysisContext, user_labels: dict | None = None, preferred: str | None = None, relabel=None) -> AnalysisResult:
    """Select and run an analyzer; refine with user labels when poor; fall back to a baseline, then descriptive.

    ``relabel(user_labels)`` returns column metas rebuilt with the user's labels (for refinement).
    Every step taken is recorded in ``result.notes``.
    """
    steps: list[str] = []
    min_rows = getattr(context, "min_rows", MIN_ROWS)
    if len(df) < min_rows and not preferred:  # too few rows to claim a model, clusters, anomalies or correlations
        reason = f"the table has only {len(df)} row{'s' if len(df) != 1 else ''}; at least {min_rows} are needed for a model or a correlation (AUTOMODEL_MIN_ROWS)"
        steps.append(f"not modelable: {reason}; fell back to descriptive analysis")
        return _descriptive(df, context, steps, {"no_model_reason": reason})
    if context.target and not preferred:
        check = assess_modelability(df, context)
        steps.append(f"modelability: {check.reason} (confidence {check.confidence:.2f})")
        if not check.is_modelable:
            steps.append(f"not modelable: {check.reason}; fell back to descriptive analysis")
            return _descriptive(df, context, steps, {"modelability": dataclasses.asdict(check), "no_model_reason": check.reason})
    analyzer = select_analyzer(df, context, preferred)
    steps.append(f"selected {analyzer.name}")
    started = time.perf_counter()
    try:
        result = analyzer.run(df, context)
    except (ValueError, KeyError, MemoryError) as exc:
        steps.append(f"{analyzer.name} failed ({str(exc).splitlines()[0][:200]})")
        if analyzer.task in ("regression", "classification"):
            try:
                baseline = baseline_result(df, context, analyzer)
                steps.append(f"fell back to a baseline model ({baseline.model_info['model']})")
                baseline.notes = steps + baseline.notes
                return baseline
            except ValueError as baseline_exc:
                steps.append(f"the baseline model failed too ({baseline_exc})")
        steps.append("fell back to descriptive analysis")
        return _descriptive(df, context, steps)
    if not result.trusted and user_labels and relabel is not None:
        steps.append("results below thresholds; reran with the user's column labels")
        # The budget is the whole analysis's: the second run gets what the first left (at least a quarter of it).
        left = max(context.time_budget_s - (time.perf_counter() - started), 0.25 * context.time_budget_s)
        refined = analyzer.run(df, dataclasses.replace(context, metas=relabel(user_labels), time_budget_s=left))
        if refined.score > result.score:
            steps.append(f"the relabelled run scored better ({refined.score:.3f} > {result.score:.3f}) and was kept")
            result = refined
        else:
            steps.append(f"the relabelled run did not score better ({refined.score:.3f}); kept the first")
    if not result.trusted and result.task in ("regression", "classification"):
        comparison = against_baseline(df, context, result)
        result.details["baseline"] = comparison
        shown = _comparison_text(comparison)
        if not comparison["beats"]:
            baseline = baseline_result(df, context, analyzer)
            described = REGISTRY["DescriptiveAnalyzer"]().run(df, context)
            steps.append(f"the best model ({result.model_info.get('model')}) is no better than predicting the {comparison['model']}: {shown}; "
                         "fell back to the baseline model and a descriptive analysis")
            baseline.leaderboard = result.leaderboard
            baseline.excluded_columns = result.excluded_columns
            baseline.details["descriptive"] = described.details
            # How the rejected model was judged stays on record (analyzers.validation): the scheme and its baselines.
            baseline.details.update({k: result.details[k] for k in ("validation", "time_baselines") if k in result.details})
            if result.details.get("baseline_interval"):
                # The interval stated is the fallback's own, on the rows that judged the rejected model.
                baseline.details["metric_interval"] = result.details["baseline_interval"]
            baseline.details["baseline"] = comparison
            # The leaderboard is read by the metric the search ranked it by.
            baseline.details["search"] = result.details.get("search") or {}
            baseline.model_info["rejected_model"] = result.model_info.get("model")
            baseline.notes = steps + result.notes + baseline.notes
            return baseline
        steps.append(f"results below thresholds, though better than predicting the {comparison['model']}: {shown}")
    result.notes = steps + result.notes
    return result


def baseline_score(y: pd.Series, task: str) -> float:
    """R² of predicting the mean (0 by definition) or macro F1 of predicting the majority class."""
    if task == "regression":
        return 0.0
    from analyzers.classification import majority_macro_f1

    return majority_macro_f1(y)


def against_baseline(df: pd.DataFrame, context: AnalysisContext, result: AnalysisResult) -> dict:
    """The untrusted model against the constant baseline of the metric its search ranked by, on its held-out rows
    (analyzers.decision.compare_with_baseline). A backend that leaves no held-out predictions or ranks by a metric
    without a baseline here is judged as before: by R² or macro F1 against FIXED_MARGIN."""
    search = result.details.get("search") or {}
    candidates = sum(1 for row in result.leaderboard if not row.get("error")) or 1
    comparison = compare_with_baseline(result.holdout, search.get("metric"), result.task, result.fitted.classes if result.fitted else None,
                                       candidates, context.random_state)
    if comparison is not None:
        return comparison
    metric = "r2" if result.task == "regression" else "f1"
    bar = baseline_score(df[context.target].dropna(), result.task)
    score = float(result.metrics.get(metric, -np.inf))
    margin = FIXED_MARGIN[result.task]
    return {"model": "mean" if result.task == "regression" else "majority class", "metric": metric, "score": bar,
            "model_score": score, "lead": score - bar, "margin": margin, "beats": bool(score >= bar + margin),
            "method": f"a fixed margin of {margin} (no held-out predictions to measure the noise on)"}


def _comparison_text(comparison: dict) -> str:
    rows = f" on {comparison['rows']:,} held-out rows" if comparison.get("rows") else ""
    noise = (f"{comparison['z']:.2f} bootstrap standard errors, for the best of {comparison['candidates']} candidates"
             if comparison.get("standard_error") is not None else comparison["method"])
    return (f"held-out {metric_label(comparison['metric'])} {comparison['model_score']:.3f} against {comparison['score']:.3f}{rows}, "
            f"a lead of {comparison['lead']:+.3f} where more than {comparison['margin']:.3f} is needed ({noise})")


def baseline_result(df: pd.DataFrame, context: AnalysisContext, analyzer: Analyzer) -> AnalysisResult:
    """A model that predicts the training mean (regression) or the class shares (classification)."""
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.pipeline import Pipeline

    from analyzers.models import ClassLabelPipeline
    from analyzers.search import classification_metrics, regression_metrics

    plan, excluded = feature_plan(context.metas, context.target, {**context.exclude, **{c: "left out by the user (--drop)" for c in context.drop}})
    features = plan_features(plan)
    rows = df[df[context.target].notna()]
    if rows.empty:
        raise ValueError("no labelled rows")
    if analyzer.task == "regression":
        y = pd.to_numeric(rows[context.target], errors="coerce").astype(float)
        pipeline = Pipeline([("prep", build_preprocessor(plan, "tree")), ("model", DummyRegressor())]).fit(rows[features], y)
        metrics, classes, name = regression_metrics(y, pipeline.predict(rows[features])), None, "baseline (mean)"
    else:
        y = rows[context.target].astype(object)
        classes = sorted(pd.unique(y).tolist(), key=str)
        codes = y.map({c: i for i, c in enumerate(classes)}).astype(int)
        inner = Pipeline([("prep", build_preprocessor(plan, "tree")), ("model", DummyClassifier(strategy="prior"))]).fit(rows[features], codes)
        pipeline = ClassLabelPipeline(inner, classes)
        metrics, name = classification_metrics(y, pipeline.predict_proba(rows[features]), classes), "baseline (class prior)"
    fitted = FittedModel(pipeline=pipeline, task=analyzer.task, target=context.target, feature_columns=features, classes=classes,
                         analyzer=analyzer.name, model_name=name, versions=library_versions())
    return AnalysisResult(analyzer=analyzer.name, task=analyzer.task, target=context.target, metrics=metrics,
                          model_info={"model": name, "features": len(features), "training_rows": int(len(rows))},
                          fitted=fitted, trusted=False, excluded_columns=excluded)
