"""ClusterAnalyzer: KMeans with the number of clusters chosen by the elbow and the silhouette, DBSCAN and
agglomerative clustering compared on the silhouette, and a 2-D projection for the dashboard."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyzers.base import AnalysisContext, AnalysisResult, Analyzer
from analyzers.preprocess import unsupervised_matrix

FIT_SAMPLE = 5_000
SILHOUETTE_SAMPLE = 2_000
AGGLOMERATIVE_SAMPLE = 2_000
MAX_DBSCAN_NOISE = 0.3


def elbow_k(ks: list[int], inertias: list[float]) -> int:
    """The k farthest below the straight line from the first to the last inertia (the knee)."""
    if len(ks) < 3:
        return ks[0]
    x = (np.asarray(ks, float) - ks[0]) / (ks[-1] - ks[0])
    y = np.asarray(inertias, float)
    y = (y - y.min()) / max(y.max() - y.min(), 1e-12)
    distance = (1 - x) - y  # the line from (0, 1) to (1, 0) minus the curve
    return int(ks[int(np.argmax(distance))])


class ClusterAnalyzer(Analyzer):
    name = "ClusterAnalyzer"
    task = "clustering"

    def __init__(self, k_range: tuple[int, int] = (2, 8)):
        self.k_range = k_range

    def suitability_score(self, df: pd.DataFrame, context: AnalysisContext) -> float:
        numeric = df.select_dtypes(include=[np.number]).shape[1]
        return 0.6 if not context.target and numeric >= 2 and len(df) >= 30 else 0.0

    def run(self, df: pd.DataFrame, context: AnalysisContext) -> AnalysisResult:
        from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
        from sklearn.decomposition import PCA
        from sklearn.metrics import silhouette_score
        from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

        features, excluded, X, _ = unsupervised_matrix(df, context.metas, context.exclude, context.max_rows_first_pass, context.random_state)
        if len(X) < 10:
            raise ValueError("too few rows to cluster")
        rng = np.random.default_rng(context.random_state)
        sample_index = np.arange(len(X)) if len(X) <= FIT_SAMPLE else np.sort(rng.choice(len(X), FIT_SAMPLE, replace=False))
        sample = X[sample_index]

        def silhouette(labels: np.ndarray) -> float:
            keep = labels >= 0
            if len(set(labels[keep])) < 2:
                return -1.0
            return float(silhouette_score(sample[keep], labels[keep], sample_size=min(int(keep.sum()), SILHOUETTE_SAMPLE),
                                          random_state=context.random_state))

        leaderboard, fits = [], {}
        ks = list(range(self.k_range[0], min(self.k_range[1], len(sample) - 1) + 1))
        inertias = []
        for k in ks:
            model = KMeans(n_clusters=k, n_init=4, random_state=context.random_state).fit(sample)
            score = silhouette(model.labels_)
            inertias.append(float(model.inertia_))
            fits[f"kmeans_k{k}"] = (score, model, model.labels_)
            leaderboard.append({"model": f"kmeans_k{k}", "silhouette": round(score, 6), "inertia": round(float(model.inertia_), 3)})
        elbow = elbow_k(ks, inertias)
        best_k = max(ks, key=lambda k: fits[f"kmeans_k{k}"][0])
        # The elbow wins a near-tie: it is the k a person would read off the inertia curve.
        if fits[f"kmeans_k{elbow}"][0] >= fits[f"kmeans_k{best_k}"][0] - 0.02:
            best_k = elbow

        min_samples = int(min(10, max(4, 2 * X.shape[1])))
        distances = NearestNeighbors(n_neighbors=min_samples).fit(sample).kneighbors(sample)[0][:, -1]
        eps = float(np.quantile(distances, 0.9)) or 1e-6
        dbscan = DBSCAN(eps=eps, min_samples=min_samples).fit(sample)
        noise = float((dbscan.labels_ < 0).mean())
        db_score = silhouette(dbscan.labels_) if noise <= MAX_DBSCAN_NOISE else -1.0
        fits["dbscan"] = (db_score, dbscan, dbscan.labels_)
        leaderboard.append({"model": "dbscan", "silhouette": round(db_score, 6), "clusters": int(len(set(dbscan.labels_) - {-1})),
                            "noise_share": round(noise, 4), "eps": round(eps, 4)})

        agg_index = np.arange(len(sample)) if len(sample) <= AGGLOMERATIVE_SAMPLE else np.sort(rng.choice(len(sample), AGGLOMERATIVE_SAMPLE, replace=False))
        agglomerative = AgglomerativeClustering(n_clusters=best_k, linkage="ward").fit(sample[agg_index])
        agg_labels = KNeighborsClassifier(n_neighbors=1).fit(sample[agg_index], agglomerative.labels_).predict(sample)
        agg_score = silhouette(agg_labels)
        fits["agglomerative"] = (agg_score, agglomerative, agg_labels)
        leaderboard.append({"model": f"agglomerative_ward_k{best_k}", "silhouette": round(agg_score, 6)})

        kmeans_name = f"kmeans_k{best_k}"
        chosen = max([kmeans_name, "dbscan", "agglomerative"], key=lambda n: fits[n][0])
        score, model, sample_labels = fits[chosen]
        if chosen.startswith("kmeans"):
            labels = model.predict(X)
            description = f"KMeans(k={best_k})"
        else:
            # Rows outside the fitted sample take the cluster of their nearest sampled neighbours.
            keep = sample_labels >= 0 if chosen == "dbscan" else np.ones(len(sample_labels), bool)
            labels = KNeighborsClassifier(n_neighbors=5).fit(sample[keep], sample_labels[keep]).predict(X)
            labels[sample_index[~keep]] = -1
            description = f"DBSCAN(eps={eps:.3g}, min_samples={min_samples})" if chosen == "dbscan" else f"Agglomerative(ward, k={best_k})"
        coords = PCA(n_components=2, random_state=context.random_state).fit(sample).transform(X) if X.shape[1] >= 2 else np.c_[X[:, 0], np.zeros(len(X))]
        rows = pd.DataFrame({"prediction": labels, "component_1": coords[:, 0], "component_2": coords[:, 1]})
        clusters = len(set(labels.tolist()) - {-1})
        return AnalysisResult(
            analyzer=self.name, task=self.task, target=None,
            metrics={"silhouette": score, "clusters": float(clusters), "elbow_k": float(elbow)},
            model_info={"model": description, "features": len(features), "fitted_rows": int(len(sample))}, leaderboard=leaderboard,
            excluded_columns=excluded, row_scores=rows, trusted=score >= 0.25,
            notes=[] if score >= 0.25 else [f"silhouette {score:.3f} is low: the clusters overlap"],
            details={"cluster_sizes": {str(k): int(v) for k, v in pd.Series(labels).value_counts().sort_index().items()},
                     "elbow_k": elbow, "silhouette_k": max(ks, key=lambda k: fits[f"kmeans_k{k}"][0]), "projection": "PCA (2 components)"},
        )
