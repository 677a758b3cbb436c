"""Regression and classification analyzers: model search over several families on a holdout."""

from __future__ import annotations

import pandas as pd

from analyzers.base import AnalysisContext, AnalysisResult, Analyzer, FittedModel, library_versions
from analyzers.preprocess import feature_plan
from analyzers.search import classification_candidates, regression_candidates, search


def _is_numeric_target(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def target_kind(series: pd.Series, role: str | None = None) -> str:
    """'regression' for many distinct numbers, 'classification' for labels and few distinct values."""
    present = series.dropna()
    if role in ("categorical", "boolean") or not _is_numeric_target(series):
        return "classification"
    unique = present.nunique()
    if unique <= 2 or (unique <= 15 and (present % 1 == 0).all() and unique < len(present) * 0.05):
        return "classification"
    return "regression"


def _training_rows(df: pd.DataFrame, context: AnalysisContext) -> pd.DataFrame:
    rows = df[df[context.target].notna()]
    if context.training_mask is not None:
        mask = context.training_mask.reindex(rows.index).fillna(True).astype(bool)
        if mask.sum() >= max(20, len(rows) // 2):
            rows = rows[mask]
    if len(rows) > context.max_rows_full:
        rows = rows.sample(context.max_rows_full, random_state=context.random_state).sort_index()
    return rows


class _SupervisedAnalyzer(Analyzer):
    task = "regression"

    def _candidates(self, context: AnalysisContext):
        raise NotImplementedError

    def run(self, df: pd.DataFrame, context: AnalysisContext) -> AnalysisResult:
        plan, excluded = feature_plan(context.metas, context.target, context.exclude)
        features = plan["numeric"] + plan["categorical"] + plan["date"]
        if not features:
            raise ValueError("no usable feature columns")
        rows = _training_rows(df, context)
        y = rows[context.target]
        if self.task == "classification":
            y = y.astype(object).map(lambda v: v.item() if hasattr(v, "item") else v)
        found = search(rows[features], y, self.task, plan, self._candidates(context), context.time_budget_s, context.random_state, context.time_column)
        fitted = FittedModel(
            pipeline=found.pipeline, task=self.task, target=context.target, feature_columns=features,
            classes=found.classes, analyzer=self.name, model_name=found.best_name, versions=library_versions(),
        )
        trusted, notes = self._trust(found.metrics, context)
        return AnalysisResult(
            analyzer=self.name, task=self.task, target=context.target, metrics=found.metrics,
            model_info={"model": found.best_name, "features": len(features), "training_rows": int(len(rows)), "candidates": len(found.leaderboard)},
            fitted=fitted, leaderboard=found.leaderboard, trusted=trusted, notes=notes, excluded_columns=excluded,
        )

    def _trust(self, metrics, context):
        return True, []


class RegressionAnalyzer(_SupervisedAnalyzer):
    name = "RegressionAnalyzer"
    task = "regression"

    def suitability_score(self, df: pd.DataFrame, context: AnalysisContext) -> float:
        if not context.target or context.target not in df:
            return 0.0
        role = next((m.role for m in context.metas if m.name == context.target), None)
        return 0.9 if target_kind(df[context.target], role) == "regression" else 0.05

    def _candidates(self, context):
        return regression_candidates(context.n_jobs, context.random_state)

    def _trust(self, metrics, context):
        notes = []
        if metrics["r2"] < context.min_r2:
            notes.append(f"R² {metrics['r2']:.3f} is below MIN_R2 {context.min_r2}")
        if metrics["mape"] == metrics["mape"] and metrics["mape"] > context.max_mape:
            notes.append(f"MAPE {metrics['mape']:.3f} is above MAX_MAPE {context.max_mape}")
        return not notes, notes


class ClassificationAnalyzer(_SupervisedAnalyzer):
    name = "ClassificationAnalyzer"
    task = "classification"

    def suitability_score(self, df: pd.DataFrame, context: AnalysisContext) -> float:
        if not context.target or context.target not in df:
            return 0.0
        role = next((m.role for m in context.metas if m.name == context.target), None)
        return 0.9 if target_kind(df[context.target], role) == "classification" else 0.05

    def _candidates(self, context):
        return classification_candidates(context.n_jobs, context.random_state)

    def _trust(self, metrics, context):
        # A classifier is trusted when it clearly beats always guessing the majority class.
        return True, []
