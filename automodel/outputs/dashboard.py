"""A self-contained plotly HTML report per run (plotly.js inlined, so it opens with no network).

``select_charts`` is the visualization selector: it picks charts from the analyzer's task and the
data. Large data stays small in the HTML: histograms are binned here, scatter plots sampled.
``figures_in_html`` reads the figures back out of a written report (for checks and tests).
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from automodel.atomic import write_text_atomic

MAX_SCATTER_POINTS = 5_000
HISTOGRAM_BINS = 30
MAX_HEATMAP_COLUMNS = 30


def _proba_columns(predictions: pd.DataFrame | None) -> list[str]:
    return [c for c in (predictions.columns if predictions is not None else []) if str(c).startswith("proba_")]


def select_charts(task: str, frame: pd.DataFrame, target: str | None, predictions: pd.DataFrame | None, importance: list[dict] | None) -> list[str]:
    """The visualization selector: which charts suit this analyzer and data."""
    charts = []
    has_truth = bool(target) and target in frame and frame[target].notna().any()
    has_predictions = predictions is not None and "prediction" in predictions and predictions["prediction"].notna().any()
    if has_truth:
        charts.append("target_distribution")
    if task == "regression" and has_predictions and has_truth:
        charts += ["predicted_vs_actual", "residuals"]
    if task == "classification" and has_predictions and has_truth:
        charts.append("confusion_matrix")
        if _proba_columns(predictions) and frame[target].dropna().nunique() >= 2:
            charts.append("roc")
    if importance:
        charts.append("feature_importance")
    if task == "clustering" and predictions is not None and {"component_1", "component_2"} <= set(predictions.columns):
        charts.append("clusters_2d")
    if task == "anomaly" and predictions is not None and "anomaly_score" in predictions:
        charts.append("anomaly_scores")
    if frame.select_dtypes(include=[np.number]).shape[1] >= 2:
        charts.append("correlation_heatmap")
    if frame.isna().any().any():
        charts.append("missing_values")
    return charts


def _histogram(values: pd.Series, bins: int = HISTOGRAM_BINS, edges: np.ndarray | None = None) -> tuple[list[float], list[int], np.ndarray]:
    numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    counts, edges = np.histogram(numbers, bins=edges if edges is not None else bins)
    centers = ((edges[:-1] + edges[1:]) / 2).round(6)
    return centers.tolist(), counts.astype(int).tolist(), edges


def _sample_positions(n: int, limit: int = MAX_SCATTER_POINTS) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def _labels(values) -> list[str]:
    return [str(v) for v in values]


def confusion_table(truth: pd.Series, predicted: pd.Series) -> pd.DataFrame:
    """Counts of (actual, predicted) over rows with a known truth; both axes list every label seen, sorted."""
    known = truth.notna().to_numpy()
    actual = truth.to_numpy()[known].astype(str)
    guessed = predicted.to_numpy()[known].astype(str)
    labels = sorted(set(actual) | set(guessed))
    table = pd.crosstab(pd.Categorical(actual, categories=labels), pd.Categorical(guessed, categories=labels), dropna=False)
    table.index, table.columns = labels, labels
    return table


def build_figures(task, frame, target, predictions, importance) -> list[tuple[str, object]]:
    import plotly.graph_objects as go

    figures = []
    for chart in select_charts(task, frame, target, predictions, importance):
        if chart == "target_distribution":
            values = frame[target].dropna()
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values) and values.nunique() > 15:
                x, y, _ = _histogram(values)
            else:
                counts = values.astype(str).value_counts()
                x, y = _labels(counts.index), counts.astype(int).tolist()
            fig = go.Figure(go.Bar(x=x, y=y, name=str(target)))
            fig.update_layout(title=f"Distribution of {target}", xaxis_title=str(target), yaxis_title="rows")
        elif chart == "predicted_vs_actual":
            known = np.flatnonzero(frame[target].notna().to_numpy())
            shown = known[_sample_positions(len(known))]
            actual = pd.to_numeric(frame[target].iloc[shown], errors="coerce").to_numpy(dtype=float)
            guessed = pd.to_numeric(predictions["prediction"].iloc[shown], errors="coerce").to_numpy(dtype=float)
            low, high = float(np.nanmin([actual.min(), guessed.min()])), float(np.nanmax([actual.max(), guessed.max()]))
            fig = go.Figure([go.Scatter(x=actual.tolist(), y=guessed.tolist(), mode="markers", name="rows", marker={"opacity": 0.6}),
                             go.Scatter(x=[low, high], y=[low, high], mode="lines", name="perfect prediction")])
            fig.update_layout(title=f"Predicted vs actual {target}", xaxis_title="actual", yaxis_title="predicted")
        elif chart == "residuals":
            known = frame[target].notna().to_numpy()
            residual = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=float)[known] - pd.to_numeric(predictions["prediction"], errors="coerce").to_numpy(dtype=float)[known]
            x, y, _ = _histogram(pd.Series(residual))
            fig = go.Figure(go.Bar(x=x, y=y, name="residuals"))
            fig.update_layout(title="Residuals (actual - predicted)", xaxis_title="actual - predicted", yaxis_title="rows")
        elif chart == "confusion_matrix":
            table = confusion_table(frame[target], predictions["prediction"])
            z = table.to_numpy().astype(int).tolist()
            fig = go.Figure(go.Heatmap(z=z, x=list(table.columns), y=list(table.index), colorscale="Blues", text=z, texttemplate="%{text}"))
            fig.update_layout(title="Confusion matrix (rows: actual, columns: predicted)", xaxis_title="predicted", yaxis_title="actual")
        elif chart == "roc":
            from sklearn.metrics import auc, roc_curve

            known = frame[target].notna().to_numpy()
            truth = frame[target].to_numpy()[known].astype(str)
            columns = _proba_columns(predictions)
            if len(columns) == 2:  # binary: one curve for the second class, as sklearn's roc_auc does
                columns = columns[1:]
            traces = []
            for column in columns:
                label = column[len("proba_"):]
                positives = truth == label
                if positives.all() or not positives.any():
                    continue
                fpr, tpr, _ = roc_curve(positives, predictions[column].to_numpy(dtype=float)[known])
                traces.append(go.Scatter(x=fpr.round(6).tolist(), y=tpr.round(6).tolist(), mode="lines", name=f"{label} (AUC {auc(fpr, tpr):.3f})"))
            traces.append(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dash"}))
            fig = go.Figure(traces)
            fig.update_layout(title="ROC curves (one class against the rest)", xaxis_title="false positive rate", yaxis_title="true positive rate")
        elif chart == "feature_importance":
            top = pd.DataFrame(importance[:15])
            method = str(top["method"].iloc[0]) if "method" in top else "importance"
            label = "mean |SHAP value|" if method.startswith("shap") else "permutation importance"
            fig = go.Figure(go.Bar(x=top["importance"].astype(float).round(6).tolist(), y=_labels(top["feature"]), orientation="h"))
            fig.update_layout(title=f"Feature importance ({label})", xaxis_title=label)
            fig.update_yaxes(autorange="reversed")
        elif chart == "clusters_2d":
            shown = _sample_positions(len(predictions))
            rows = predictions.iloc[shown]
            traces = [go.Scatter(x=group["component_1"].round(6).tolist(), y=group["component_2"].round(6).tolist(), mode="markers", name=f"cluster {label}")
                      for label, group in rows.groupby("prediction", sort=True)]
            fig = go.Figure(traces)
            fig.update_layout(title="Clusters (2-D PCA projection)", xaxis_title="component 1", yaxis_title="component 2")
        elif chart == "anomaly_scores":
            scores = predictions["anomaly_score"].astype(float)
            _, _, edges = _histogram(scores)
            traces = []
            for flag, name in ((0, "normal"), (1, "anomalous")):
                x, y, _ = _histogram(scores[predictions["prediction"] == flag], edges=edges)
                traces.append(go.Bar(x=x, y=y, name=name))
            fig = go.Figure(traces)
            fig.update_layout(title="Anomaly scores", barmode="stack", xaxis_title="anomaly score", yaxis_title="rows")
        elif chart == "correlation_heatmap":
            numeric = frame.select_dtypes(include=[np.number])
            numeric = numeric.loc[:, numeric.nunique() > 1].iloc[:, :MAX_HEATMAP_COLUMNS]
            corr = numeric.corr().round(3)
            fig = go.Figure(go.Heatmap(z=corr.to_numpy().tolist(), x=_labels(corr.columns), y=_labels(corr.index), zmin=-1, zmax=1, colorscale="RdBu"))
            fig.update_layout(title="Correlation heatmap (Pearson)")
        elif chart == "missing_values":
            missing = (frame.isna().mean() * 100).round(3)
            missing = missing[missing > 0].sort_values(ascending=False)
            fig = go.Figure(go.Bar(x=_labels(missing.index), y=missing.tolist()))
            fig.update_layout(title="Missing values", xaxis_title="column", yaxis_title="% missing")
        else:
            continue
        figures.append((chart, fig))
    return figures


def key_figures(task: str, metrics: dict, rows: int, charts: list[str]) -> dict:
    """The numbers shown at the top of the dashboard and in the asset's UI metadata."""
    keep = {"regression": ("r2", "rmse", "mae", "mape"), "classification": ("accuracy", "f1", "roc_auc"),
            "clustering": ("clusters", "silhouette"), "anomaly": ("anomalies", "anomaly_rate")}.get(task, ("missing_cells_pct",))
    figures = {"rows": rows, "charts": len(charts)}
    for key in keep:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and value == value:
            figures[key] = round(float(value), 4)
    return figures


def prediction_overview(task: str, predictions: pd.DataFrame) -> dict:
    """What the predictions say at a glance: rows per predicted class or cluster, flagged rows, or the spread of values."""
    values = predictions["prediction"] if "prediction" in predictions else pd.Series(dtype=float)
    if values.dropna().empty:
        return {"rows": int(len(predictions)), "predicted": 0}
    if task in ("classification", "clustering"):
        return {f"predicted {k}": int(v) for k, v in values.astype(str).value_counts().items()}
    if task == "anomaly":
        return {"rows": int(len(values)), "flagged anomalous": int((values == 1).sum())}
    numbers = pd.to_numeric(values, errors="coerce")
    return {"mean": round(float(numbers.mean()), 4), "min": round(float(numbers.min()), 4), "max": round(float(numbers.max()), 4)}


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


# ---- reading a report back ------------------------------------------------------------------------

_DTYPES = {"i1": np.int8, "u1": np.uint8, "i2": np.int16, "u2": np.uint16, "i4": np.int32, "u4": np.uint32,
           "i8": np.int64, "u8": np.uint64, "f4": np.float32, "f8": np.float64}


def _decode_arrays(value):
    """plotly 6 writes numpy arrays as {"dtype", "bdata", "shape"}; turn them back into lists."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=_DTYPES[value["dtype"]])
            if value.get("shape"):
                array = array.reshape([int(s) for s in str(value["shape"]).split(",")])
            return array.tolist()
        return {k: _decode_arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_arrays(v) for v in value]
    return value


def figures_in_html(text: str) -> dict[str, dict]:
    """{chart name: {"data": [...traces], "layout": {...}}} for every chart in a report written by write_dashboard."""
    decoder = json.JSONDecoder()
    out = {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"chart-([\w-]+)",\s*', text):
        data, end = decoder.raw_decode(text, match.end())
        rest = re.match(r"\s*,\s*", text[end:])
        layout, _ = decoder.raw_decode(text, end + rest.end()) if rest else ({}, end)
        out[match.group(1)] = {"data": _decode_arrays(data), "layout": layout}
    return out
