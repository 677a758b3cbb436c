"""Two decisions taken on the search's held-out predictions: is the model better than a baseline, and where does a
binary model draw the line between its two classes.

Against a baseline. A model is judged by the metric the search ranked it by (ROC-AUC or log loss for two classes, the
scaled log loss or macro F1 for several, R² for regression), on the same held-out rows, against the constant prediction
that metric rewards most (the mean, the class shares, the majority class). It is kept when its lead is larger than the
noise of those rows: the paired bootstrap over the held-out rows gives the lead's standard error, and the lead must
exceed it ``z`` times, where ``z`` is the one-sided normal quantile of 5 % shared among the candidates the search tried
(the best of many candidates on the same rows leads by chance more often than one would). A fixed margin on another
metric (macro F1 at a 0.5 threshold, as before) threw away a useful model of a rare class: police stops with 12 %
searches, ROC-AUC 0.81 held out, rejected for a macro F1 0.05 short of the majority class's.

The decision threshold. A binary classifier's probabilities are turned into labels at the threshold that maximises
macro F1 (the headline metric) on the held-out rows, so a rare positive class is predicted at all. The reported
accuracy, precision, recall and F1 are cross-fitted: the threshold chosen on one half of the held-out rows labels the
other half, so the rows that pick the threshold never score it. The threshold is kept only when that cross-fitted
macro F1 beats the one at 0.5.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

BOOTSTRAP_RESAMPLES = 200
FAMILY_ERROR = 0.05  # chance that the best of the candidates passes when none beats the baseline
MIN_HELD_OUT_ROWS = 20
THRESHOLD_GRID = 200  # candidate thresholds: held-out probability quantiles

BASELINE_FOR_METRIC = {"r2": "mean", "rmse": "mean", "mae": "median", "roc_auc": "class shares", "log_loss": "class shares",
                       "scaled_log_loss": "class shares", "f1": "majority class", "accuracy": "majority class"}
LOSSES = ("rmse", "mae", "log_loss", "scaled_log_loss")


def _codes(actual: pd.Series, classes: list) -> np.ndarray:
    lookup = {str(c): i for i, c in enumerate(classes)}
    return np.asarray([lookup.get(str(v), -1) for v in actual.to_numpy(dtype=object)])


def _log_loss(codes: np.ndarray, proba: np.ndarray) -> float:
    return float(-np.mean(np.log(np.clip(proba[np.arange(len(codes)), codes], 1e-15, None))))


def _temperature_scaled(codes: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """``proba`` at the one temperature that suits it best on these rows (as the search's scaled log loss)."""
    from scipy.optimize import minimize_scalar

    log_p = np.log(np.clip(proba, 1e-15, None))

    def scaled(log_t: float) -> np.ndarray:
        z = log_p / np.exp(log_t)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    best = minimize_scalar(lambda t: _log_loss(codes, scaled(t)), bounds=(-3.0, 3.0), method="bounded", options={"xatol": 1e-3})
    return scaled(float(best.x)) if best.fun < _log_loss(codes, proba) else proba


def _model_and_baseline(metric: str, truth: np.ndarray, predicted: np.ndarray, n_classes: int | None):
    """(model score, baseline score) on these rows, both oriented so that higher is better."""
    if metric == "r2":
        spread = float(np.sum((truth - truth.mean()) ** 2))
        return (1.0 - float(np.sum((truth - predicted) ** 2)) / spread if spread > 0 else 0.0), 0.0
    if metric == "rmse":
        return -float(np.sqrt(np.mean((truth - predicted) ** 2))), -float(np.std(truth))
    if metric == "mae":
        return -float(np.mean(np.abs(truth - predicted))), -float(np.mean(np.abs(truth - np.median(truth))))
    shares = np.bincount(truth, minlength=n_classes) / len(truth)
    if metric == "roc_auc":
        if len(np.unique(truth)) < 2:
            return np.nan, 0.5
        if n_classes == 2:
            return float(skm.roc_auc_score(truth, predicted[:, 1])), 0.5
        present = np.unique(truth)
        proba = predicted[:, present] / np.clip(predicted[:, present].sum(axis=1, keepdims=True), 1e-15, None)
        return float(skm.roc_auc_score(truth, proba, multi_class="ovr", labels=present)), 0.5
    if metric in ("log_loss", "scaled_log_loss"):
        prior = np.clip(shares, 1e-15, None)
        return -_log_loss(truth, predicted), -float(-np.sum(shares * np.log(prior)))
    labels = predicted.argmax(axis=1)
    majority = np.full(len(truth), int(np.argmax(shares)))
    if metric == "f1":
        return (float(skm.f1_score(truth, labels, average="macro", labels=range(n_classes), zero_division=0)),
                float(skm.f1_score(truth, majority, average="macro", labels=range(n_classes), zero_division=0)))
    if metric == "accuracy":
        return float(np.mean(truth == labels)), float(np.max(shares))
    raise ValueError(f"no baseline for the metric {metric!r}")


def compare_with_baseline(holdout: pd.DataFrame | None, metric: str | None, task: str, classes: list | None, candidates: int,
                          seed: int = 0) -> dict | None:
    """Does the model beat the constant baseline of ``metric`` by more than the noise of its held-out rows?

    ``holdout`` is the search's held-out predictions (``actual``, ``prediction``, ``proba_<class>``). Returns the
    comparison (scores, lead, margin, standard error, rows, the verdict ``beats``), or None when it cannot be made
    (too few held-out rows, a metric without a baseline here)."""
    if holdout is None or len(holdout) < MIN_HELD_OUT_ROWS or metric not in BASELINE_FOR_METRIC:
        return None
    if task == "regression":
        truth = pd.to_numeric(holdout["actual"], errors="coerce").to_numpy(dtype=float)
        predicted = pd.to_numeric(holdout["prediction"], errors="coerce").to_numpy(dtype=float)
        keep = np.isfinite(truth) & np.isfinite(predicted)
        truth, predicted, n_classes = truth[keep], predicted[keep], None
    else:
        if not classes:
            return None
        truth = _codes(holdout["actual"], classes)
        predicted = holdout[[f"proba_{c}" for c in classes]].to_numpy(dtype=float)
        keep = truth >= 0
        truth, predicted, n_classes = truth[keep], predicted[keep], len(classes)
        if metric == "scaled_log_loss":
            predicted = _temperature_scaled(truth, predicted)
    n = len(truth)
    if n < MIN_HELD_OUT_ROWS:
        return None
    model_score, baseline_score = _model_and_baseline(metric, truth, predicted, n_classes)
    if not np.isfinite(model_score):
        return None
    rng = np.random.default_rng(seed)
    leads = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        rows = rng.integers(0, n, n)
        m, b = _model_and_baseline(metric, truth[rows], predicted[rows], n_classes)
        if np.isfinite(m):
            leads.append(m - b)
    from scipy.stats import norm

    candidates = max(int(candidates), 1)
    z = float(norm.ppf(1 - FAMILY_ERROR / candidates))
    error = float(np.std(leads, ddof=1)) if len(leads) > 1 else float("inf")
    lead = model_score - baseline_score
    sign = -1.0 if metric in LOSSES else 1.0  # losses are shown as written, not negated
    return {"model": BASELINE_FOR_METRIC[metric], "metric": metric, "score": sign * baseline_score, "model_score": sign * model_score,
            "lead": lead, "margin": z * error, "standard_error": error, "z": round(z, 3), "candidates": candidates, "rows": int(n),
            "beats": bool(lead > z * error),
            "method": f"paired bootstrap over the {n:,} held-out rows ({BOOTSTRAP_RESAMPLES} resamples); the lead must exceed "
                      f"{z:.2f} standard errors (one-sided {FAMILY_ERROR:.0%} shared by {candidates} candidates)"}


# ---- the decision threshold of a binary classifier --------------------------------------------------------

def _best_threshold(positive: np.ndarray, p1: np.ndarray) -> float:
    """The threshold on P(positive) with the highest macro F1 on these rows; ties go to the one nearest 0.5."""
    grid = np.unique(np.quantile(p1, np.linspace(0.0, 1.0, THRESHOLD_GRID + 1)))
    grid = np.unique(np.append(grid, 0.5))
    best, best_score = 0.5, -1.0
    for threshold in grid:
        score = skm.f1_score(positive, (p1 >= threshold).astype(int), average="macro", labels=[0, 1], zero_division=0)
        if score > best_score + 1e-12 or (abs(score - best_score) <= 1e-12 and abs(threshold - 0.5) < abs(best - 0.5)):
            best, best_score = float(threshold), float(score)
    return best


def choose_threshold(holdout: pd.DataFrame | None, classes: list | None, seed: int = 0) -> dict | None:
    """The decision threshold of a binary model from its held-out probabilities (already calibrated when the model calibrates).

    Returns None for anything but two classes with enough held-out rows; else ``threshold`` (None when 0.5 stays),
    ``labels`` (the cross-fitted held-out labels the reported metrics come from) and what was compared."""
    if holdout is None or not classes or len(classes) != 2 or len(holdout) < 2 * MIN_HELD_OUT_ROWS:
        return None
    truth = _codes(holdout["actual"], classes)
    keep = truth >= 0
    p1 = holdout[f"proba_{classes[1]}"].to_numpy(dtype=float)
    if keep.sum() < 2 * MIN_HELD_OUT_ROWS or len(np.unique(truth[keep])) < 2:
        return None
    from sklearn.model_selection import StratifiedKFold

    crossed = np.zeros(len(truth), dtype=int)
    positions = np.flatnonzero(keep)
    halves = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed).split(positions, truth[positions])
    for choose, apply in halves:
        threshold = _best_threshold(truth[positions[choose]], p1[positions[choose]])
        crossed[positions[apply]] = (p1[positions[apply]] >= threshold).astype(int)
    at_half = (p1 >= 0.5).astype(int)
    f1 = {name: float(skm.f1_score(truth[keep], labels[keep], average="macro", labels=[0, 1], zero_division=0))
          for name, labels in (("crossed", crossed), ("half", at_half))}
    chosen = _best_threshold(truth[keep], p1[keep])
    kept = f1["crossed"] > f1["half"] and abs(chosen - 0.5) > 1e-9
    labels = crossed if kept else at_half
    return {"threshold": chosen if kept else None, "positive_class": classes[1], "metric": "f1", "rows": int(keep.sum()),
            "f1_at_threshold": round(f1["crossed"], 6), "f1_at_0.5": round(f1["half"], 6), "kept": bool(kept),
            "labels": np.asarray([classes[i] for i in labels], dtype=object), "rows_scored": keep,
            "method": "macro F1 on the held-out rows; reported metrics cross-fitted (threshold chosen on one half of the "
                      "held-out rows, applied to the other)"}


def label_metrics(actual: pd.Series, labels: np.ndarray, classes: list) -> dict[str, float]:
    """Accuracy and macro precision, recall and F1 of these labels."""
    truth, predicted = _codes(actual, classes), _codes(pd.Series(labels), classes)
    keep = truth >= 0
    truth, predicted = truth[keep], predicted[keep]
    every = list(range(len(classes)))
    return {"accuracy": float(skm.accuracy_score(truth, predicted)),
            "precision": float(skm.precision_score(truth, predicted, average="macro", labels=every, zero_division=0)),
            "recall": float(skm.recall_score(truth, predicted, average="macro", labels=every, zero_division=0)),
            "f1": float(skm.f1_score(truth, predicted, average="macro", labels=every, zero_division=0))}
