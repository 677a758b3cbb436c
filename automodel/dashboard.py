"""A self-contained plotly HTML report per run (plotly.js inlined, so it opens with no network)."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from automodel.atomic import write_text_atomic


def select_charts(task: str, frame: pd.DataFrame, target: str | None, predictions: pd.DataFrame | None, importance: list[dict] | None) -> list[str]:
    """The visualization selector: which charts suit this analyzer and data."""
    charts = []
    has_truth = bool(target) and target in frame and frame[target].notna().any()
    if has_truth:
        charts.append("target_distribution")
    if task == "regression" and predictions is not None and has_truth:
        charts += ["predicted_vs_actual", "residuals"]
    if task == "classification" and predictions is not None and has_truth:
        charts.append("confusion_matrix")
    if importance:
        charts.append("feature_importance")
    if task == "clustering":
        charts.append("clusters_2d")
    if task == "anomaly":
        charts.append("anomaly_scores")
    if frame.select_dtypes(include=[np.number]).shape[1] >= 2:
        charts.append("correlation_heatmap")
    if frame.isna().any().any():
        charts.append("missing_values")
    return charts


def build_figures(task, frame, target, predictions, importance) -> list[tuple[str, object]]:
    import plotly.express as px
    import plotly.graph_objects as go

    figures = []
    for chart in select_charts(task, frame, target, predictions, importance):
        if chart == "target_distribution":
            fig = px.histogram(frame, x=target, title=f"Distribution of {target}")
        elif chart == "predicted_vs_actual":
            known = frame[target].notna()
            fig = px.scatter(x=frame.loc[known, target], y=predictions.loc[known, "prediction"], labels={"x": "actual", "y": "predicted"}, title="Predicted vs actual")
        elif chart == "residuals":
            known = frame[target].notna()
            residual = frame.loc[known, target].astype(float) - predictions.loc[known, "prediction"].astype(float)
            fig = px.histogram(x=residual, labels={"x": "actual - predicted"}, title="Residuals")
        elif chart == "confusion_matrix":
            known = frame[target].notna()
            table = pd.crosstab(frame.loc[known, target].astype(str), predictions.loc[known, "prediction"].astype(str))
            fig = go.Figure(go.Heatmap(z=table.values, x=list(table.columns), y=list(table.index), colorscale="Blues", text=table.values, texttemplate="%{text}"))
            fig.update_layout(title="Confusion matrix (rows: actual, columns: predicted)")
        elif chart == "feature_importance":
            top = pd.DataFrame(importance[:15])
            fig = px.bar(top, x="importance", y="feature", orientation="h", title="Feature importance")
            fig.update_yaxes(autorange="reversed")
        elif chart == "clusters_2d":
            fig = px.scatter(predictions, x="component_1", y="component_2", color=predictions["prediction"].astype(str), title="Clusters (2-D projection)")
        elif chart == "anomaly_scores":
            fig = px.histogram(predictions, x="anomaly_score", color=predictions["prediction"].astype(str), title="Anomaly scores")
        elif chart == "correlation_heatmap":
            corr = frame.select_dtypes(include=[np.number]).corr().round(3)
            fig = go.Figure(go.Heatmap(z=corr.values, x=list(corr.columns), y=list(corr.index), zmin=-1, zmax=1, colorscale="RdBu"))
            fig.update_layout(title="Correlation heatmap (Pearson)")
        elif chart == "missing_values":
            missing = (frame.isna().mean() * 100).sort_values(ascending=False)
            fig = px.bar(x=missing.index, y=missing.values, labels={"x": "column", "y": "% missing"}, title="Missing values")
        else:
            continue
        figures.append((chart, fig))
    return figures


def write_dashboard(path: Path, title: str, headline: dict, summary: str, figures: list[tuple[str, object]]) -> Path:
    parts = [f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body style='font-family:sans-serif;max-width:1100px;margin:auto'>"]
    parts.append(f"<h1>{html.escape(title)}</h1>")
    parts.append("<table id='headline'>" + "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in headline.items()) + "</table>")
    parts.append(f"<p id='summary'>{html.escape(summary)}</p>")
    for i, (name, fig) in enumerate(figures):
        parts.append(f"<div class='chart' data-chart='{name}'>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs="inline" if i == 0 else False, div_id=f"chart-{name}"))
        parts.append("</div>")
    parts.append("</body></html>")
    return write_text_atomic(path, "\n".join(parts))
