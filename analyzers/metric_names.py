"""Metric names as people read them: the report, the summary, the fallback's reason (no dependencies, so the
command line can import it cheaply)."""

from __future__ import annotations


METRIC_LABELS = {
    "r2": "R²", "rmse": "RMSE", "mae": "MAE", "mape": "MAPE", "accuracy": "accuracy", "precision": "macro precision",
    "recall": "macro recall", "f1": "macro F1", "roc_auc": "ROC-AUC", "log_loss": "log loss",
    "scaled_log_loss": "log loss (temperature-scaled)", "silhouette": "silhouette", "clusters": "clusters",
    "anomalies": "anomalies", "anomaly_rate": "anomaly rate", "missing_cells_pct": "% cells empty",
}


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name)
