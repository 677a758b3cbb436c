"""AnomalyAnalyzer: IsolationForest, LocalOutlierFactor and OneClassSVM combined into one score per row.

Without labels the contamination (share of rows flagged) is tuned from the scores themselves: the share of
rows whose median robust z-score over the three detectors passes 3.5, kept between 0.5% and 10%. How much
the detectors agree at each candidate share is reported alongside."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyzers.base import AnalysisContext, AnalysisResult, Analyzer
from analyzers.preprocess import unsupervised_matrix

CONTAMINATIONS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1)
FIT_SAMPLE = 5_000
SVM_SAMPLE = 2_000
ROBUST_Z_LIMIT = 3.5  # Iglewicz and Hoaglin's cut-off for modified z-scores


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


def robust_z(scores: np.ndarray) -> np.ndarray:
    centre = np.median(scores)
    spread = 1.4826 * np.median(np.abs(scores - centre))
    return (scores - centre) / (spread if spread > 0 else (np.std(scores) or 1.0))


def robust_contamination(detector_scores: dict[str, np.ndarray], z_limit: float = ROBUST_Z_LIMIT, options=CONTAMINATIONS) -> float:
    """The share of rows whose median robust z-score over the detectors passes ``z_limit``, within the options' range."""
    consensus = np.median([robust_z(s) for s in detector_scores.values()], axis=0)
    share = float((consensus > z_limit).mean())
    return float(np.clip(share, min(options), max(options)))


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
        # Enough neighbours that a small group of outliers (masking) does not look like a dense cluster of its own.
        neighbours = int(min(50, max(20, len(fit_rows) // 50), len(fit_rows) - 1))
        detectors = {
            "isolation_forest": IsolationForest(n_estimators=200, random_state=context.random_state, n_jobs=context.n_jobs).fit(fit_rows),
            "local_outlier_factor": LocalOutlierFactor(n_neighbors=neighbours, novelty=True).fit(fit_rows),
            "one_class_svm": OneClassSVM(nu=0.05, gamma="scale").fit(svm_rows),
        }
        # score_samples: higher means more normal for all three; negate so higher means more anomalous.
        raw = {name: -np.asarray(d.score_samples(X), dtype=float) for name, d in detectors.items()}
        agreement = tune_contamination(raw)[1]
        if self.contamination == "auto":
            share = robust_contamination(raw)
        else:
            share = float(self.contamination)
        # The median of the three ranks: one detector fooled by the data's shape cannot outvote the other two.
        consensus = np.median([_percentile_ranks(s) for s in raw.values()], axis=0)
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
            metrics={"anomalies": float(flagged.sum()), "anomaly_rate": float(flagged.mean()), "contamination": round(float(share), 4)},
            model_info={"model": "IsolationForest + LocalOutlierFactor + OneClassSVM (median percentile rank)", "features": len(features)},
            leaderboard=leaderboard, excluded_columns=excluded, row_scores=rows,
            details={"contamination_agreement": {str(k): round(v, 4) for k, v in agreement.items()},
                     "top_rows": [int(i) for i in np.argsort(-consensus, kind="stable")[:10]]},
        )
