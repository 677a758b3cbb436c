"""ClusterAnalyzer and AnomalyAnalyzer: analyses for tables without a target."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from analyzers.base import AnalysisContext, AnalysisResult, Analyzer
from analyzers.preprocess import build_preprocessor, feature_plan


def _matrix(df: pd.DataFrame, context: AnalysisContext, max_rows: int):
    plan, excluded = feature_plan(context.metas, context.target, context.exclude)
    features = plan["numeric"] + plan["categorical"] + plan["date"]
    if not features:
        raise ValueError("no usable feature columns")
    prep = build_preprocessor(plan, "linear")
    fit_rows = df if len(df) <= max_rows else df.sample(max_rows, random_state=context.random_state)
    prep.fit(fit_rows[features])
    return prep, features, excluded, np.asarray(prep.transform(df[features]), dtype=float), fit_rows.index


class ClusterAnalyzer(Analyzer):
    name = "ClusterAnalyzer"
    task = "clustering"

    def __init__(self, k_range: tuple[int, int] = (2, 8)):
        self.k_range = k_range

    def suitability_score(self, df: pd.DataFrame, context: AnalysisContext) -> float:
        numeric = df.select_dtypes(include=[np.number]).shape[1]
        return 0.6 if not context.target and numeric >= 2 and len(df) >= 30 else 0.0

    def run(self, df: pd.DataFrame, context: AnalysisContext) -> AnalysisResult:
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA
        from sklearn.metrics import silhouette_score

        prep, features, excluded, X, fit_index = _matrix(df, context, context.max_rows_first_pass)
        rng = np.random.default_rng(context.random_state)
        sample = X if len(X) <= 5000 else X[rng.choice(len(X), 5000, replace=False)]
        leaderboard, best = [], None
        for k in range(self.k_range[0], min(self.k_range[1], len(sample) - 1) + 1):
            model = KMeans(n_clusters=k, n_init=4, random_state=context.random_state).fit(sample)
            score = float(silhouette_score(sample, model.labels_, sample_size=min(len(sample), 2000), random_state=context.random_state))
            leaderboard.append({"model": f"kmeans_k{k}", "silhouette": round(score, 6), "inertia": round(float(model.inertia_), 3)})
            if best is None or score > best[1]:
                best = (k, score)
        k, score = best
        final = KMeans(n_clusters=k, n_init=4, random_state=context.random_state).fit(sample)
        labels = final.predict(X)
        coords = PCA(n_components=2, random_state=context.random_state).fit(sample).transform(X) if X.shape[1] >= 2 else np.c_[X[:, 0], np.zeros(len(X))]
        rows = pd.DataFrame({"prediction": labels, "component_1": coords[:, 0], "component_2": coords[:, 1]})
        return AnalysisResult(
            analyzer=self.name, task=self.task, target=None, metrics={"silhouette": score, "clusters": float(k)},
            model_info={"model": f"KMeans(k={k})", "features": len(features)}, leaderboard=leaderboard,
            excluded_columns=excluded, row_scores=rows, details={"cluster_sizes": pd.Series(labels).value_counts().sort_index().to_dict()},
        )


class AnomalyAnalyzer(Analyzer):
    name = "AnomalyAnalyzer"
    task = "anomaly"

    def __init__(self, contamination: float | str = "auto"):
        self.contamination = contamination

    def suitability_score(self, df: pd.DataFrame, context: AnalysisContext) -> float:
        numeric = df.select_dtypes(include=[np.number]).shape[1]
        return 0.4 if not context.target and numeric >= 1 and len(df) >= 50 else 0.0

    def run(self, df: pd.DataFrame, context: AnalysisContext) -> AnalysisResult:
        from sklearn.ensemble import IsolationForest

        prep, features, excluded, X, _ = _matrix(df, context, context.max_rows_first_pass)
        forest = IsolationForest(n_estimators=200, contamination=self.contamination, random_state=context.random_state, n_jobs=context.n_jobs).fit(X)
        scores = -forest.score_samples(X)
        flagged = forest.predict(X) == -1
        rows = pd.DataFrame({"prediction": flagged.astype(int), "anomaly_score": scores})
        return AnalysisResult(
            analyzer=self.name, task=self.task, target=None,
            metrics={"anomalies": float(flagged.sum()), "anomaly_rate": float(flagged.mean())},
            model_info={"model": "IsolationForest", "features": len(features)}, excluded_columns=excluded, row_scores=rows,
        )
