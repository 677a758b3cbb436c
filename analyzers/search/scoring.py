"""How the search scores candidates: the metric it ranks by, the report's metrics, and the scaled log loss."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

METRIC_FOR_TASK = {"regression": "r2", "classification": "f1"}
# Errors: scored negated inside the search, shown as written in the leaderboard and the report.
LOWER_IS_BETTER = ("rmse", "mae", "mape", "log_loss", "scaled_log_loss")


def selection_metric(task: str, y: pd.Series) -> str:
    """What the search ranks and blends candidates by: R² for regression; ROC-AUC for two classes (F1 at a 0.5 threshold
    is a noisy way to rank binary models and favoured resampled ones that rank rows worse: HMDA mortgage denials, 1,785
    rows, test ROC-AUC 0.870 chosen by F1, 0.888 chosen by ROC-AUC); for several balanced classes log loss at each
    model's best temperature (``scaled_log_loss``), macro F1 for several imbalanced ones. Log loss scores every probability
    rather than each row's top class, so it ranks and blends far less noisily than accuracy or F1 on a few thousand rows
    (carData's Chile, 4 classes, ten seeded splits: mean test accuracy 0.673 ranked this way, 0.669 by macro F1 with
    CatBoost then stopped early on the folds, the portfolio otherwise the same); with a rare class, macro F1 keeps the class-weighted and
    resampled candidates in the running for it."""
    if task == "classification" and y.nunique(dropna=True) == 2:
        return "roc_auc"
    if task == "classification" and not is_imbalanced(y):
        return "scaled_log_loss"
    return METRIC_FOR_TASK[task]


def is_imbalanced(y: pd.Series, ratio: float = 0.2) -> bool:
    """The smallest class has fewer than ``ratio`` times the rows of the largest."""
    counts = y.value_counts()
    return len(counts) >= 2 and counts.min() < ratio * counts.max()


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    nonzero = np.abs(y_true) > 1e-12
    mape = float(np.mean(np.abs((y_true[nonzero] - y_pred[nonzero]) / y_true[nonzero]))) if nonzero.any() else float("nan")
    return {
        "r2": float(skm.r2_score(y_true, y_pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "mape": mape,
    }


def classification_metrics(y_true, proba: np.ndarray, classes: list) -> dict[str, float]:
    # Compare class codes, not labels: sklearn cannot type object arrays of booleans or mixed values.
    lookup = {str(c): i for i, c in enumerate(classes)}
    y_true = np.asarray([lookup.get(str(v), -1) for v in np.asarray(y_true, dtype=object)])
    y_pred = proba.argmax(axis=1)
    classes = list(range(len(classes)))
    out = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(skm.precision_score(y_true, y_pred, average="macro", zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, average="macro", zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    try:
        if len(classes) == 2:
            out["roc_auc"] = float(skm.roc_auc_score((y_true == classes[1]).astype(int), proba[:, 1]))
        else:
            # Some backends round probabilities; roc_auc_score wants rows that sum to one.
            normalised = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-15, None)
            out["roc_auc"] = float(skm.roc_auc_score(y_true, normalised, multi_class="ovr", labels=classes))
    except ValueError:
        pass
    return out


def score_predictions(metric: str, y_codes: np.ndarray, predicted: np.ndarray, n_classes: int | None) -> float:
    """Higher is better for every metric (errors are negated)."""
    if metric == "r2":
        return float(skm.r2_score(y_codes, predicted))
    if metric == "rmse":
        return -float(np.sqrt(skm.mean_squared_error(y_codes, predicted)))
    if metric == "mae":
        return -float(skm.mean_absolute_error(y_codes, predicted))
    labels = predicted.argmax(axis=1)
    if metric == "accuracy":
        return float(skm.accuracy_score(y_codes, labels))
    if metric == "f1":
        return float(skm.f1_score(y_codes, labels, average="macro", zero_division=0))
    if metric == "scaled_log_loss":
        return -scaled_log_loss(y_codes, predicted)
    if metric == "log_loss":
        clipped = np.clip(predicted, 1e-15, 1)
        return -float(skm.log_loss(y_codes, clipped / clipped.sum(axis=1, keepdims=True), labels=list(range(n_classes))))
    if metric == "roc_auc":
        try:
            if n_classes == 2:
                return float(skm.roc_auc_score(y_codes, predicted[:, 1]))
            present = np.unique(y_codes)
            proba = predicted[:, present]
            proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-15, None)
            return float(skm.roc_auc_score(y_codes, proba, multi_class="ovr", labels=present))
        except ValueError:
            return float(skm.accuracy_score(y_codes, labels))
    raise ValueError(f"unknown metric {metric!r}")


def scaled_log_loss(y_codes: np.ndarray, proba: np.ndarray) -> float:
    """Log loss once the probabilities are sharpened or softened by the one temperature that suits them best (p ** (1/T),
    renormalised). It ranks models by how well they separate the classes, not by how well their probabilities are
    scaled, which the calibration step sets right afterwards: a forest's averaged votes are timid (digits: extra trees
    most accurate of six candidates, log loss 0.31 against LightGBM's 0.09)."""
    from scipy.optimize import minimize_scalar

    y_codes = np.asarray(y_codes, dtype=int)
    log_p = np.log(np.clip(np.asarray(proba, dtype=float), 1e-15, None))
    rows = np.arange(len(y_codes))

    def loss(log_t: float) -> float:
        z = log_p / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, y_codes]))

    best = minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded", options={"xatol": 1e-3})
    return min(float(best.fun), loss(0.0))
