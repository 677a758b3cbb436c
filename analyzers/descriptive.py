"""DescriptiveAnalyzer: statistics, correlations and missing-value patterns; the last fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyzers.base import AnalysisContext, AnalysisResult, Analyzer


class DescriptiveAnalyzer(Analyzer):
    name = "DescriptiveAnalyzer"
    task = "descriptive"

    def suitability_score(self, df: pd.DataFrame, context: AnalysisContext) -> float:
        return 0.1  # always possible, rarely the best

    def run(self, df: pd.DataFrame, context: AnalysisContext) -> AnalysisResult:
        numeric = df.select_dtypes(include=[np.number])
        stats = numeric.describe().T.round(6).to_dict(orient="index") if not numeric.empty else {}
        pearson = numeric.corr(method="pearson") if numeric.shape[1] > 1 else pd.DataFrame()
        spearman = numeric.corr(method="spearman") if numeric.shape[1] > 1 else pd.DataFrame()
        missing = (df.isna().mean() * 100).round(2)
        strongest = []
        if not pearson.empty:
            upper = pearson.where(np.triu(np.ones(pearson.shape, dtype=bool), k=1)).stack()
            for (a, b), value in upper.abs().sort_values(ascending=False).head(5).items():
                strongest.append({"a": a, "b": b, "pearson": round(float(pearson.loc[a, b]), 4), "spearman": round(float(spearman.loc[a, b]), 4)})
        recommendations = []
        for col, pct in missing.items():
            if pct >= 30:
                recommendations.append(f"Column {col!r} is {pct:.0f}% empty: fill it at the source or leave it out.")
        if strongest and abs(strongest[0]["pearson"]) > 0.95:
            recommendations.append(f"{strongest[0]['a']!r} and {strongest[0]['b']!r} are almost the same signal; keep one.")
        if not recommendations:
            recommendations.append("Name a target column with --target to train a predictive model.")
        return AnalysisResult(
            analyzer=self.name, task=self.task, target=context.target,
            metrics={"rows": float(len(df)), "columns": float(df.shape[1]), "missing_cells_pct": float(df.isna().mean().mean() * 100)},
            model_info={"model": "descriptive statistics"},
            details={"statistics": stats, "top_correlations": strongest, "missing_pct": missing.to_dict(), "recommendations": recommendations},
        )
