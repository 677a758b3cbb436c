"""assess_modelability, select_analyzer and analyze: choose an analyzer, run it, fall back when needed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analyzers import REGISTRY, load_plugins
from analyzers.base import AnalysisContext, AnalysisResult, Analyzer
from analyzers.preprocess import feature_plan

MIN_ROWS = 20


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
    usable = sum(len(v) for v in plan.values())
    details = {"rows": len(df), "labelled_rows": labelled, "target_missing_ratio": round(missing_ratio, 4), "usable_features": usable}
    if labelled < MIN_ROWS:
        return Modelability(False, f"only {labelled} rows have a target value; at least {MIN_ROWS} are needed", 0.95, details)
    if y.dropna().astype(str).nunique() < 2:
        return Modelability(False, f"target {target!r} has a single value, so there is nothing to predict", 1.0, details)
    if usable == 0:
        return Modelability(False, "no column besides the target can be used as a feature", 0.95, details)
    if missing_ratio > 0.5:
        return Modelability(False, f"{missing_ratio:.0%} of target values are missing", 0.8, details)
    confidence = float(np.clip(0.5 + 0.1 * np.log10(labelled) + 0.02 * usable, 0.5, 0.99))
    return Modelability(True, f"{labelled} labelled rows and {usable} usable features", round(confidence, 3), details)


def select_analyzer(df: pd.DataFrame, context: AnalysisContext, preferred: str | None = None) -> Analyzer:
    """The registered analyzer with the highest suitability; ``preferred`` overrides by name."""
    registry = load_plugins()
    if preferred:
        if preferred not in registry:
            raise KeyError(f"unknown analyzer {preferred!r}; known: {', '.join(sorted(registry))}")
        return registry[preferred]()
    scored = sorted(((cls().suitability_score(df, context), name) for name, cls in registry.items()), reverse=True)
    return registry[scored[0][1]]()


def analyze(df: pd.DataFrame, context: AnalysisContext, user_labels: dict | None = None, preferred: str | None = None, relabel=None) -> AnalysisResult:
    """Select and run an analyzer; refine with user labels when poor; fall back to a baseline, then descriptive.

    ``relabel(user_labels)`` returns column metas rebuilt with the user's labels (for refinement).
    Every step taken is recorded in ``result.notes``.
    """
    steps: list[str] = []
    if context.target and not preferred:
        check = assess_modelability(df, context)
        if not check.is_modelable:
            steps.append(f"not modelable: {check.reason}; fell back to descriptive analysis")
            result = REGISTRY["DescriptiveAnalyzer"]().run(df, context)
            result.notes = steps + result.notes
            result.details["modelability"] = dataclasses.asdict(check)
            return result
    analyzer = select_analyzer(df, context, preferred)
    steps.append(f"selected {analyzer.name}")
    try:
        result = analyzer.run(df, context)
    except ValueError as exc:
        steps.append(f"{analyzer.name} failed ({exc}); fell back to descriptive analysis")
        result = REGISTRY["DescriptiveAnalyzer"]().run(df, context)
        result.notes = steps + result.notes
        return result
    if not result.trusted and user_labels and relabel is not None:
        steps.append("results below thresholds; reran with the user's column labels")
        refined_context = dataclasses.replace(context, metas=relabel(user_labels))
        refined = analyzer.run(df, refined_context)
        if refined.score > result.score:
            result = refined
    if not result.trusted and result.task in ("regression", "classification"):
        baseline = _baseline(df, context, result)
        steps.append(f"results below thresholds; a baseline ({baseline['model']}) scored {baseline['score']:.3f}")
        result.details["baseline"] = baseline
    result.notes = steps + result.notes
    return result


def _baseline(df, context, result) -> dict:
    """The score of predicting the mean (regression) or the majority class (classification) on the same data."""
    y = df[context.target].dropna()
    if result.task == "regression":
        return {"model": "mean", "score": 0.0, "metric": "r2"}
    share = float(y.astype(str).value_counts(normalize=True).iloc[0])
    return {"model": "majority class", "score": share, "metric": "accuracy"}
