"""AnomalyAnalyzer: IsolationForest, LocalOutlierFactor and OneClassSVM combined into one score per row.

Without labels the contamination (share of rows flagged) is tuned to where the three detectors agree
most, above the agreement that chance alone would give."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyzers.base import AnalysisContext, AnalysisResult, Analyzer
from analyzers.preprocess import unsupervised_matrix

CONTAMINATIONS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1)
FIT_SAMPLE = 5_000
SVM_SAMPLE = 2_000


def _percentile_ranks(scores: np.ndarray) -> np.ndarray:
    return pd.Series(scores).rank(pct=True, method="average").to_numpy()


def tune_contamination(detector_scores: dict[str, np.ndarray], options=CONTAMINATIONS) -> tuple[float, dict[float, float]]:
    """The share of flagged rows at which the detectors' flagged sets overlap most beyond chance."""
    names = list(detector_scores)
    n = len(next(iter(detector_scores.values())))
    agreement = {}
    for share in options:
        count = max(1, int(round(share * n)))
        tops = {name: set(np.argsort(-detector_scores[name], kind="stable")[:count]) for name in names}
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        jaccard = np.mean([len(tops[a] & tops[b]) / len(tops[a] | tops[b]) for a, b in pairs]) if pairs else 1.0
        chance = count / max(2 * n - count, 1)
        agreement[share] = float(jaccard - chance)
    best = max(options, key=lambda s: (round(agreement[s], 3), -s))
    return best, agreement


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
        from sklearn.neighbors import LocalOutlierFactor
        from sklearn.svm import OneClassSVM

        features, excluded, X, _ = unsupervised_matrix(df, context.metas, context.exclude, context.max_rows_first_pass, context.random_state)
        if len(X) < 20:
            raise ValueError("too few rows to look for anomalies")
        rng = np.random.default_rng(context.random_state)
        fit_rows = X if len(X) <= FIT_SAMPLE else X[rng.choice(len(X), FIT_SAMPLE, replace=False)]
        svm_rows = fit_rows if len(fit_rows) <= SVM_SAMPLE else fit_rows[rng.choice(len(fit_rows), SVM_SAMPLE, replace=False)]
        neighbours = int(min(20, max(5, len(fit_rows) // 10)))
        detectors = {
            "isolation_forest": IsolationForest(n_estimators=200, random_state=context.random_state, n_jobs=context.n_jobs).fit(fit_rows),
            "local_outlier_factor": LocalOutlierFactor(n_neighbors=neighbours, novelty=True).fit(fit_rows),
            "one_class_svm": OneClassSVM(nu=0.05, gamma="scale").fit(svm_rows),
        }
        # score_samples: higher means more normal for all three; negate so higher means more anomalous.
        raw = {name: -np.asarray(d.score_samples(X), dtype=float) for name, d in detectors.items()}
        if self.contamination == "auto":
            share, agreement = tune_contamination(raw)
        else:
            share, agreement = float(self.contamination), {}
        consensus = np.mean([_percentile_ranks(s) for s in raw.values()], axis=0)
        count = max(1, int(round(share * len(X))))
        flagged = np.zeros(len(X), dtype=bool)
        flagged[np.argsort(-consensus, kind="stable")[:count]] = True
        leaderboard = []
        for name, scores in raw.items():
            top = set(np.argsort(-scores, kind="stable")[:count])
            overlap = len(top & set(np.flatnonzero(flagged))) / count
            leaderboard.append({"model": name, "overlap_with_consensus": round(overlap, 4)})
        rows = pd.DataFrame({"prediction": flagged.astype(int), "anomaly_score": consensus,
                             **{f"score_{name}": _percentile_ranks(s) for name, s in raw.items()}})
        return AnalysisResult(
            analyzer=self.name, task=self.task, target=None,
            metrics={"anomalies": float(flagged.sum()), "anomaly_rate": float(flagged.mean()), "contamination": float(share)},
            model_info={"model": "IsolationForest + LocalOutlierFactor + OneClassSVM (mean percentile rank)", "features": len(features)},
            leaderboard=leaderboard, excluded_columns=excluded, row_scores=rows,
            details={"contamination_agreement": {str(k): round(v, 4) for k, v in agreement.items()},
                     "top_rows": [int(i) for i in np.argsort(-consensus, kind="stable")[:10]]},
        )
