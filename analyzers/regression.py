"""RegressionAnalyzer: LightGBM, XGBoost, random forest, extra trees and linear models; R², RMSE, MAE, MAPE.
MIN_R2 and MAX_MAPE decide whether the result is trusted."""

from __future__ import annotations

import pandas as pd

from analyzers.base import AnalysisContext
from analyzers.supervised import SupervisedAnalyzer


class RegressionAnalyzer(SupervisedAnalyzer):
    name = "RegressionAnalyzer"
    task = "regression"

    def prepare_target(self, y: pd.Series) -> pd.Series:
        return pd.to_numeric(y, errors="coerce").astype(float)

    def trust(self, metrics: dict, y: pd.Series, context: AnalysisContext) -> tuple[bool, list[str]]:
        notes = []
        if metrics["r2"] < context.min_r2:
            notes.append(f"R² {metrics['r2']:.3f} is below MIN_R2 {context.min_r2}")
        # A percentage error means nothing where the target reaches zero or below (delays, balances, changes).
        positive = bool((y.dropna() > 0).all())
        if positive and metrics["mape"] == metrics["mape"] and metrics["mape"] > context.max_mape:
            notes.append(f"MAPE {metrics['mape']:.3f} is above MAX_MAPE {context.max_mape}")
        return not notes, notes
