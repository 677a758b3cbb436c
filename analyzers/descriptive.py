"""DescriptiveAnalyzer: summary statistics, distributions, Pearson and Spearman correlations,
missing-value patterns and recommendations. Always possible; the last fallback."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyzers.base import AnalysisContext, AnalysisResult, Analyzer

HISTOGRAM_BINS = 10
TOP_VALUES = 5
MISSING_PATTERNS = 5


def distributions(df: pd.DataFrame) -> dict[str, dict]:
    """A histogram for each numeric column and the most common values of every other column."""
    out = {}
    for col in df.columns:
        values = df[col].dropna()
        if values.empty:
            out[str(col)] = {"kind": "empty"}
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numbers = values.astype(float)
            counts, edges = np.histogram(numbers, bins=min(HISTOGRAM_BINS, max(1, numbers.nunique())))
            out[str(col)] = {"kind": "numeric", "counts": counts.tolist(), "edges": [round(float(e), 6) for e in edges],
                             "skew": round(float(numbers.skew()), 4) if len(numbers) > 2 else 0.0}
        else:
            top = values.astype(str).value_counts().head(TOP_VALUES)
            out[str(col)] = {"kind": "categorical", "top": {str(k): int(v) for k, v in top.items()}, "distinct": int(values.nunique())}
    return out


def missing_patterns(df: pd.DataFrame) -> dict:
    """How many rows have gaps, and which combinations of empty columns occur most."""
    gaps = df.isna()
    with_gaps = gaps.any(axis=1)
    patterns = []
    if with_gaps.any():
        combos = gaps[with_gaps].apply(lambda row: tuple(c for c, empty in row.items() if empty), axis=1).value_counts().head(MISSING_PATTERNS)
        patterns = [{"columns": [str(c) for c in combo], "rows": int(n)} for combo, n in combos.items()]
    together = []
    empty_cols = [c for c in df.columns if gaps[c].any()]
    if len(empty_cols) > 1:
        corr = gaps[empty_cols].astype(float).corr()
        for i, a in enumerate(empty_cols):
            for b in empty_cols[i + 1:]:
                if corr.loc[a, b] > 0.8:
                    together.append([str(a), str(b)])
    return {"rows_with_missing": int(with_gaps.sum()), "rows_with_missing_pct": round(float(with_gaps.mean() * 100), 2),
            "patterns": patterns, "missing_together": together}


class DescriptiveAnalyzer(Analyzer):
    name = "DescriptiveAnalyzer"
    task = "descriptive"

    def suitability_score(self, df: pd.DataFrame, context: AnalysisContext) -> float:
        return 0.1  # always possible, rarely the best

    def run(self, df: pd.DataFrame, context: AnalysisContext) -> AnalysisResult:
        numeric = df.select_dtypes(include=[np.number]).loc[:, lambda f: f.nunique() > 1]
        stats = {}
        if not numeric.empty:
            described = numeric.describe().T
            described["median"] = numeric.median()
            stats = described.round(6).to_dict(orient="index")
        # A correlation of a handful of points is noise (two points always correlate perfectly): none below min_rows.
        correlate = numeric.shape[1] > 1 and len(df) >= getattr(context, "min_rows", 20)
        pearson = numeric.corr(method="pearson") if correlate else pd.DataFrame()
        spearman = numeric.corr(method="spearman") if correlate else pd.DataFrame()
        missing = (df.isna().mean() * 100).round(2)
        strongest = []
        if not pearson.empty:
            upper = pearson.where(np.triu(np.ones(pearson.shape, dtype=bool), k=1)).stack()
            for (a, b), _ in upper.abs().sort_values(ascending=False).head(5).items():
                strongest.append({"a": a, "b": b, "pearson": round(float(pearson.loc[a, b]), 4), "spearman": round(float(spearman.loc[a, b]), 4)})
        shapes = distributions(df)
        patterns = missing_patterns(df)
        recommendations = []
        for col, pct in missing.items():
            if pct >= 30:
                recommendations.append(f"Column {col!r} is {pct:.0f}% empty: fill it at the source or leave it out.")
        for pair in patterns["missing_together"][:3]:
            recommendations.append(f"{pair[0]!r} and {pair[1]!r} are empty in the same rows: check how those rows are collected.")
        if strongest and abs(strongest[0]["pearson"]) > 0.95:
            recommendations.append(f"{strongest[0]['a']!r} and {strongest[0]['b']!r} are almost the same signal; keep one.")
        for col, shape in shapes.items():
            if shape["kind"] == "numeric" and abs(shape["skew"]) > 2:
                recommendations.append(f"{col!r} is strongly skewed (skew {shape['skew']:.1f}): a log scale shows it better.")
                break
        if strongest and abs(strongest[0]["pearson"]) <= 0.95:
            pair = strongest[0]
            recommendations.append(f"The strongest relation is between {pair['a']!r} and {pair['b']!r} (Pearson {pair['pearson']:.2f}, Spearman {pair['spearman']:.2f}).")
        if not context.target:
            recommendations.append("Name a target column with --target to train a predictive model.")
        return AnalysisResult(
            analyzer=self.name, task=self.task, target=context.target,
            metrics={"rows": float(len(df)), "columns": float(df.shape[1]), "missing_cells_pct": float(df.isna().mean().mean() * 100)},
            model_info={"model": "descriptive statistics"},
            details={"statistics": stats, "distributions": shapes, "top_correlations": strongest,
                     "pearson": pearson.round(4).to_dict() if not pearson.empty else {},
                     "spearman": spearman.round(4).to_dict() if not spearman.empty else {},
                     "missing_pct": missing.to_dict(), "missing_patterns": patterns, "recommendations": recommendations},
        )
