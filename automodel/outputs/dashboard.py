"""A self-contained plotly HTML report per run (plotly.js inlined once, so it opens with no network and
prints to PDF from the browser).

The report reads as a page: a headline (task, target, the metric with the basis it was measured on,
trusted or not and why), a table of contents, then sections for the evaluation, the explanations,
the leaderboard, the data, the enrichment, the predictions and the actions. Every number in it comes
from the run's facts (automodel.outputs.facts), the same object the summary and the run JSON use.

Evaluation charts are drawn from the chosen model's held-out predictions (out-of-fold under
cross-validation) and say so; a chart drawn from training rows says that instead. A baseline model
gets no evaluation or explanation charts: they would only repeat the target's distribution.

``select_charts`` is the visualization selector. Large data stays small in the HTML: histograms are
binned here, scatter plots sampled. ``figures_in_html`` reads the figures back out of a written report.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from automodel.atomic import write_text_atomic
from automodel.outputs.facts import headline_metric_text, metric_label, metric_text, time_baseline_sentence, validation_sentence

MAX_SCATTER_POINTS = 5_000
HISTOGRAM_BINS = 30
MAX_HEATMAP_COLUMNS = 30
CHART_HEIGHT = 420
TOP_FEATURES = 3  # residual and SHAP dependence charts for this many features
MAX_SEGMENTS = 12
PREVIEW_ROWS = 10
CALIBRATION_BINS = 10

EVALUATION_CHARTS = ("confusion_matrix", "roc", "precision_recall", "calibration", "gain", "predicted_vs_actual", "residuals",
                     "residuals_vs_predicted", "error_by_segment")

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1040px;margin:0 auto;padding:0 20px 40px;color:#1f2933;line-height:1.45}
h1{font-size:1.6em;margin:24px 0 8px}h2{font-size:1.25em;margin:32px 0 8px;border-bottom:1px solid #d9dee3;padding-bottom:4px}
h3{font-size:1.05em;margin:18px 0 6px}
nav.toc{background:#f5f7f9;border:1px solid #d9dee3;padding:8px 14px;margin:12px 0}nav.toc ol{margin:4px 0;padding-left:20px}
nav.toc li{display:inline-block;margin-right:18px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:.92em}th,td{border:1px solid #d9dee3;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f5f7f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{padding:8px 12px;border-left:4px solid;margin:10px 0}.trusted{border-color:#2f9e44;background:#ebfbee}
.untrusted{border-color:#e8590c;background:#fff4e6}.note{color:#52606d;font-size:.92em}
.chart{margin:8px 0 18px;page-break-inside:avoid;break-inside:avoid}
@media print{nav.toc{display:none}body{max-width:none;padding:0}h2{page-break-after:avoid}}
"""
# Plotly sizes its charts when drawn; printing needs them redrawn to the page's width.
PRINT_SCRIPT = ("window.addEventListener('beforeprint',function(){document.querySelectorAll('.js-plotly-plot')"
                ".forEach(function(d){Plotly.Plots.resize(d);});});")


def style_figure(fig, height: int = CHART_HEIGHT):
    """The report's look, shared with the charts of `automodel ask`."""
    fig.update_layout(template="plotly_white", height=height, margin={"l": 70, "r": 30, "t": 60, "b": 60},
                      font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13},
                      title={"x": 0.01, "xanchor": "left", "font": {"size": 15}})
    return fig


def page_html(title: str, body: str) -> str:
    """A whole page: the style, plotly.js once, and ``body``."""
    from plotly.offline import get_plotlyjs

    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style><script type='text/javascript'>{get_plotlyjs()}</script>"
            f"<script>{PRINT_SCRIPT}</script></head><body>{body}</body></html>")


def figure_html(name: str, fig) -> str:
    from automodel.safety import redact_figure

    fig = redact_figure(fig)  # labels, hover text and categories that are e-mails, phones or SSNs are redacted like every output
    return (f"<div class='chart' data-chart='{html.escape(name)}'>"
            + fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"chart-{name}", config={"displaylogo": False, "responsive": True})
            + "</div>")


def _proba_columns(predictions: pd.DataFrame | None) -> list[str]:
    return [c for c in (predictions.columns if predictions is not None else []) if str(c).startswith("proba_")]


# ---- the rows the evaluation charts are drawn from ---------------------------------------------------

@dataclass
class Evaluation:
    """Actual and predicted values of the rows an evaluation is drawn from, and what those rows are."""

    rows: np.ndarray  # positions in the run's frame
    actual: pd.Series
    prediction: pd.Series
    proba: pd.DataFrame = field(default_factory=pd.DataFrame)
    basis: str = "training rows (in-sample)"
    held_out: bool = False

    @property
    def caption(self) -> str:
        return ("held-out: " if self.held_out else "") + self.basis


def evaluation_rows(frame: pd.DataFrame, target: str | None, predictions: pd.DataFrame | None, holdout: pd.DataFrame | None = None,
                    basis: str | None = None, scored_new_rows: bool = False) -> Evaluation | None:
    """The held-out predictions when the search kept them; else the predictions on rows with a known target,
    labelled as training rows (or, for a scoring run, as rows the model never saw)."""
    if holdout is not None and not holdout.empty:
        return Evaluation(holdout["row"].to_numpy(dtype=int), holdout["actual"].reset_index(drop=True),
                          holdout["prediction"].reset_index(drop=True), holdout[_proba_columns(holdout)].reset_index(drop=True),
                          basis or "held-out rows", True)
    if not target or target not in frame or predictions is None or "prediction" not in predictions:
        return None
    known = np.flatnonzero(frame[target].notna().to_numpy() & predictions["prediction"].notna().to_numpy())
    if len(known) == 0:
        return None
    what = "rows of this file, which the model never saw" if scored_new_rows else "training rows (in-sample)"
    return Evaluation(known, frame[target].iloc[known].reset_index(drop=True), predictions["prediction"].iloc[known].reset_index(drop=True),
                      predictions[_proba_columns(predictions)].iloc[known].reset_index(drop=True), what, scored_new_rows)


def _importance_features(importance: list[dict] | None, frame: pd.DataFrame, n: int = TOP_FEATURES) -> list[str]:
    return [str(f["feature"]) for f in (importance or []) if f.get("importance", 0) > 0 and str(f["feature"]) in frame.columns][:n]


def select_charts(task: str, frame: pd.DataFrame, target: str | None, predictions: pd.DataFrame | None, importance: list[dict] | None,
                  evaluation: Evaluation | None = None, baseline: bool = False, shap: pd.DataFrame | None = None) -> list[str]:
    """The visualization selector: which charts suit this analyzer, its evidence and the data."""
    charts = []
    has_truth = bool(target) and target in frame and frame[target].notna().any()
    if has_truth:
        charts.append("target_distribution")
    if evaluation is None and not baseline and task in ("regression", "classification"):
        evaluation = evaluation_rows(frame, target, predictions)
    if evaluation is not None and not baseline and len(evaluation.rows):
        if task == "regression":
            charts += ["predicted_vs_actual", "residuals", "residuals_vs_predicted"]
            charts += [f"residuals_vs_feature_{i + 1}" for i in range(len(_importance_features(importance, frame)))]
            if _segment_column(frame, importance, target) is not None:
                charts.append("error_by_segment")
        if task == "classification":
            charts.append("confusion_matrix")
            if len(evaluation.proba.columns) >= 2 and evaluation.actual.astype(str).nunique() >= 2:
                charts += ["roc", "precision_recall", "calibration", "gain"]
    if importance and not baseline and any(f.get("importance", 0) > 0 for f in importance):
        charts.append("feature_importance")
    if shap is not None and not shap.empty and not baseline:
        charts.append("shap_beeswarm")
        charts += [f"shap_dependence_{i + 1}" for i in range(min(TOP_FEATURES, shap["feature"].nunique()))]
    if task == "clustering" and predictions is not None and {"component_1", "component_2"} <= set(predictions.columns):
        charts.append("clusters_2d")
    if task == "anomaly" and predictions is not None and "anomaly_score" in predictions:
        charts.append("anomaly_scores")
    from analyzers.selection import MIN_ROWS

    if frame.select_dtypes(include=[np.number]).shape[1] >= 2 and len(frame) >= MIN_ROWS:  # fewer rows: correlations are noise
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


def _numbers(values) -> np.ndarray:
    return pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)


def confusion_table(truth: pd.Series, predicted: pd.Series, labels: list | None = None) -> pd.DataFrame:
    """Counts of (actual, predicted) over rows with a known truth; both axes list every label seen (or ``labels``,
    the model's classes in their order, followed by any other label seen)."""
    known = truth.notna().to_numpy()
    actual = truth.to_numpy()[known].astype(str)
    guessed = predicted.to_numpy()[known].astype(str)
    seen = sorted(set(actual) | set(guessed))
    order = [str(c) for c in labels] if labels else []
    labels = order + [c for c in seen if c not in order]
    table = pd.crosstab(pd.Categorical(actual, categories=labels), pd.Categorical(guessed, categories=labels), dropna=False)
    table.index, table.columns = labels, labels
    return table


def _segment_column(frame: pd.DataFrame, importance: list[dict] | None, target: str | None) -> str | None:
    """The column to break errors down by: the most important categorical feature, else the most important one."""
    ranked = _importance_features(importance, frame, n=50)
    for column in ranked:
        series = frame[column]
        if not pd.api.types.is_numeric_dtype(series) and 2 <= series.nunique() <= 50:
            return column
    numeric = [c for c in ranked if pd.api.types.is_numeric_dtype(frame[c]) and frame[c].nunique() > 1 and c != target]
    return numeric[0] if numeric else None


def _segments(values: pd.Series) -> pd.Series:
    """Readable groups of a column: its top categories (the rest as 'other'), or quintiles of a number."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values) and values.nunique() > MAX_SEGMENTS:
        binned = pd.qcut(values, 5, duplicates="drop")
        return binned.astype(str).where(values.notna(), "missing")
    text = values.astype(object).where(values.notna(), "missing").astype(str)
    top = text.value_counts().index[:MAX_SEGMENTS - 1]
    return text.where(text.isin(top), "other")


def _class_curves(evaluation: Evaluation):
    """(label, is-this-class truth, that class's probability) for each class shown: the second class for a binary
    target (as ROC-AUC is computed), every class against the rest otherwise."""
    truth = evaluation.actual.astype(str).to_numpy()
    columns = list(evaluation.proba.columns)
    if len(columns) == 2:
        columns = columns[1:]
    for column in columns:
        label = column[len("proba_"):]
        positives = truth == label
        if positives.all() or not positives.any():
            continue
        yield label, positives, evaluation.proba[column].to_numpy(dtype=float)


def build_figures(task, frame, target, predictions, importance, *, evaluation: Evaluation | None = None, baseline: bool = False,
                  shap: pd.DataFrame | None = None, classes: list | None = None) -> list[tuple[str, object]]:
    """(chart name, plotly figure) for every chart ``select_charts`` picks. Evaluation charts use ``evaluation``
    (held-out predictions); without it, the predictions on training rows, labelled so."""
    import plotly.graph_objects as go
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    if evaluation is None and not baseline and task in ("regression", "classification"):
        evaluation = evaluation_rows(frame, target, predictions)
    caption = f" — {evaluation.caption}" if evaluation is not None else ""
    top = _importance_features(importance, frame)
    figures = []
    for chart in select_charts(task, frame, target, predictions, importance, evaluation, baseline, shap):
        if chart == "target_distribution":
            values = frame[target].dropna()
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values) and values.nunique() > 15:
                x, y, _ = _histogram(values)
            else:
                counts = values.astype(str).value_counts()
                x, y = _labels(counts.index), counts.astype(int).tolist()
            fig = go.Figure(go.Bar(x=x, y=y, name=str(target)))
            fig.update_layout(title=f"Distribution of {target} (all rows)", xaxis_title=str(target), yaxis_title="rows")
        elif chart == "predicted_vs_actual":
            shown = _sample_positions(len(evaluation.rows))
            actual, guessed = _numbers(evaluation.actual.iloc[shown]), _numbers(evaluation.prediction.iloc[shown])
            low, high = float(np.nanmin([actual.min(), guessed.min()])), float(np.nanmax([actual.max(), guessed.max()]))
            fig = go.Figure([go.Scatter(x=actual.tolist(), y=guessed.tolist(), mode="markers", name="rows", marker={"opacity": 0.6}),
                             go.Scatter(x=[low, high], y=[low, high], mode="lines", name="perfect prediction")])
            fig.update_layout(title=f"Predicted vs actual {target}{caption}", xaxis_title=f"actual {target}", yaxis_title=f"predicted {target}")
        elif chart == "residuals":
            residual = _numbers(evaluation.actual) - _numbers(evaluation.prediction)
            x, y, _ = _histogram(pd.Series(residual))
            fig = go.Figure(go.Bar(x=x, y=y, name="residuals"))
            fig.update_layout(title=f"Residuals (actual - predicted){caption}", xaxis_title="actual - predicted", yaxis_title="rows")
        elif chart == "residuals_vs_predicted":
            shown = _sample_positions(len(evaluation.rows))
            guessed = _numbers(evaluation.prediction.iloc[shown])
            residual = _numbers(evaluation.actual.iloc[shown]) - guessed
            fig = go.Figure([go.Scatter(x=guessed.tolist(), y=residual.tolist(), mode="markers", name="rows", marker={"opacity": 0.5}),
                             go.Scatter(x=[float(np.nanmin(guessed)), float(np.nanmax(guessed))], y=[0, 0], mode="lines", name="no error")])
            fig.update_layout(title=f"Residuals vs predicted{caption}", xaxis_title=f"predicted {target}", yaxis_title="actual - predicted")
        elif chart.startswith("residuals_vs_feature_"):
            column = top[int(chart.rsplit("_", 1)[1]) - 1]
            shown = _sample_positions(len(evaluation.rows))
            residual = _numbers(evaluation.actual.iloc[shown]) - _numbers(evaluation.prediction.iloc[shown])
            values = frame[column].iloc[evaluation.rows[shown]]
            if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                fig = go.Figure(go.Scatter(x=_numbers(values).tolist(), y=residual.tolist(), mode="markers", name="rows", marker={"opacity": 0.5}))
            else:
                groups = _segments(values.reset_index(drop=True))
                fig = go.Figure(go.Box(x=groups.tolist(), y=residual.tolist(), name="residuals", boxpoints=False))
            fig.update_layout(title=f"Residuals vs {column}{caption}", xaxis_title=column, yaxis_title="actual - predicted")
        elif chart == "error_by_segment":
            column = _segment_column(frame, importance, target)
            groups = _segments(frame[column].iloc[evaluation.rows].reset_index(drop=True))
            errors = pd.DataFrame({"segment": groups, "error": np.abs(_numbers(evaluation.actual) - _numbers(evaluation.prediction))})
            table = errors.groupby("segment", sort=False)["error"].agg(["mean", "size"]).sort_values("mean", ascending=False)
            fig = go.Figure(go.Bar(x=_labels(table.index), y=table["mean"].round(6).tolist(), customdata=table["size"].tolist(),
                                   hovertemplate="%{x}: mean absolute error %{y:.3f} over %{customdata} rows<extra></extra>"))
            fig.update_layout(title=f"Mean absolute error by {column}{caption}", xaxis_title=column, yaxis_title="mean |actual - predicted|")
        elif chart == "confusion_matrix":
            table = confusion_table(evaluation.actual, evaluation.prediction, classes)
            z = table.to_numpy().astype(int).tolist()
            fig = go.Figure(go.Heatmap(z=z, x=list(table.columns), y=list(table.index), colorscale="Blues", text=z, texttemplate="%{text}"))
            fig.update_layout(title=f"Confusion matrix{caption}", xaxis_title="predicted", yaxis_title="actual")
            fig.update_yaxes(autorange="reversed")
        elif chart == "roc":
            traces = []
            for label, positives, scores in _class_curves(evaluation):
                fpr, tpr, _ = roc_curve(positives, scores)
                traces.append(go.Scatter(x=fpr.round(6).tolist(), y=tpr.round(6).tolist(), mode="lines", name=f"{label} (AUC {auc(fpr, tpr):.3f})"))
            traces.append(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dash"}))
            fig = go.Figure(traces)
            fig.update_layout(title=f"ROC curves, each class against the rest{caption}", xaxis_title="false positive rate",
                              yaxis_title="true positive rate")
        elif chart == "precision_recall":
            traces = []
            for label, positives, scores in _class_curves(evaluation):
                precision, recall, _ = precision_recall_curve(positives, scores)
                ap = average_precision_score(positives, scores)
                traces.append(go.Scatter(x=recall.round(6).tolist(), y=precision.round(6).tolist(), mode="lines",
                                         name=f"{label} (average precision {ap:.3f}; base rate {positives.mean():.3f})"))
            fig = go.Figure(traces)
            fig.update_layout(title=f"Precision-recall, each class against the rest{caption}", xaxis_title="recall", yaxis_title="precision",
                              showlegend=True)
        elif chart == "calibration":
            fig = go.Figure()
            for label, positives, scores in _class_curves(evaluation):
                # Bins of equal row counts (deciles of the predicted probability), so no point rests on a handful of rows.
                edges = np.unique(np.quantile(scores, np.linspace(0, 1, CALIBRATION_BINS + 1))[1:-1])
                bins = np.searchsorted(edges, scores, side="right")
                table = pd.DataFrame({"bin": bins, "p": scores, "y": positives}).groupby("bin").agg(p=("p", "mean"), y=("y", "mean"), n=("y", "size"))
                fig.add_trace(go.Scatter(x=table["p"].round(6).tolist(), y=table["y"].round(6).tolist(), mode="lines+markers", name=label,
                                         customdata=table["n"].tolist(),
                                         hovertemplate="predicted %{x:.2f}, observed %{y:.2f} over %{customdata} rows<extra></extra>"))
            fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated", line={"dash": "dash"}))
            fig.update_layout(title=f"Calibration: predicted probability vs observed share (deciles){caption}", xaxis_title="mean predicted probability",
                              yaxis_title="observed share of the class")
        elif chart == "gain":
            fig = go.Figure()
            for label, positives, scores in _class_curves(evaluation):
                order = np.argsort(-scores, kind="stable")
                captured = np.concatenate([[0.0], np.cumsum(positives[order]) / positives.sum()])
                reached = np.arange(len(order) + 1) / len(order)
                keep = _sample_positions(len(reached), 500)
                fig.add_trace(go.Scatter(x=reached[keep].round(6).tolist(), y=captured[keep].round(6).tolist(), mode="lines", name=label))
            fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="random order", line={"dash": "dash"}))
            fig.update_layout(title=f"Cumulative gain: share of each class found in the top-scored rows{caption}",
                              xaxis_title="share of rows, highest probability first", yaxis_title="share of the class found")
        elif chart == "feature_importance":
            ranked = pd.DataFrame(importance[:15])
            method = str(ranked["method"].iloc[0]) if "method" in ranked else "importance"
            label = "mean |SHAP value|" if method.startswith("shap") else "permutation importance"
            fig = go.Figure(go.Bar(x=ranked["importance"].astype(float).round(6).tolist(), y=_labels(ranked["feature"]), orientation="h"))
            fig.update_layout(title=f"Feature importance ({label}, on a sample of rows)", xaxis_title=label)
            fig.update_yaxes(autorange="reversed")
        elif chart == "shap_beeswarm":
            fig = _beeswarm(shap)
        elif chart.startswith("shap_dependence_"):
            fig = _dependence(shap, int(chart.rsplit("_", 1)[1]) - 1)
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
        figures.append((chart, style_figure(fig)))
    return figures


def _shap_order(shap: pd.DataFrame) -> list[str]:
    return shap.assign(magnitude=shap["shap"].abs()).groupby("feature")["magnitude"].mean().sort_values(ascending=False).index.tolist()


def _beeswarm(shap: pd.DataFrame, features: int = 12):
    """One row of dots per feature (most important on top), x the SHAP value, colour the feature's value
    (low to high within the feature), jittered vertically so dense regions show as a swarm."""
    import plotly.graph_objects as go

    order = _shap_order(shap)[:features]
    rng = np.random.default_rng(0)
    fig = go.Figure()
    for i, feature in enumerate(order):
        part = shap[shap["feature"] == feature]
        values = part["value"].to_numpy(dtype=float)
        low, high = np.nanmin(values), np.nanmax(values)
        colour = (values - low) / (high - low) if high > low else np.full(len(values), 0.5)
        y = len(order) - 1 - i + rng.uniform(-0.3, 0.3, len(part))
        fig.add_trace(go.Scatter(x=part["shap"].round(6).tolist(), y=y.round(4).tolist(), mode="markers", name=feature, showlegend=False,
                                 text=part["label"].tolist(), hovertemplate=f"{feature} = %{{text}}<br>SHAP %{{x:.3f}}<extra></extra>",
                                 marker={"size": 5, "color": np.nan_to_num(colour, nan=0.5).round(4).tolist(), "colorscale": "RdBu_r",
                                         "cmin": 0, "cmax": 1, "showscale": i == 0,
                                         "colorbar": {"title": "feature value", "tickvals": [0, 1], "ticktext": ["low", "high"]}}))
    fig.update_layout(title=f"SHAP values per row ({shap['row'].nunique()} sampled rows; pushes {shap['output'].iloc[0]})",
                      xaxis_title="SHAP value (impact on the model's output)")
    fig.update_yaxes(tickvals=list(range(len(order))), ticktext=list(reversed(order)), range=[-0.7, len(order) - 0.3])
    return style_figure(fig, height=max(CHART_HEIGHT, 40 * len(order) + 140))


def _dependence(shap: pd.DataFrame, index: int):
    """How the SHAP value of one top feature moves with its value."""
    import plotly.graph_objects as go

    feature = _shap_order(shap)[index]
    part = shap[shap["feature"] == feature]
    labels = part["label"].astype(str)
    numbers = pd.to_numeric(labels, errors="coerce")
    if numbers.notna().mean() > 0.9 and labels.nunique() > 12:
        fig = go.Figure(go.Scatter(x=numbers.round(6).tolist(), y=part["shap"].round(6).tolist(), mode="markers", marker={"opacity": 0.6}))
    else:
        fig = go.Figure(go.Box(x=labels.tolist(), y=part["shap"].round(6).tolist(), boxpoints="all", jitter=0.4, pointpos=0))
    fig.update_layout(title=f"SHAP dependence: {feature}", xaxis_title=feature, yaxis_title=f"SHAP value of {feature}", showlegend=False)
    return fig


def key_figures(task: str, metrics: dict, rows: int, charts: list[str] | None = None) -> dict:
    """The numbers shown at the top of the dashboard and in the asset's UI metadata."""
    keep = {"regression": ("r2", "rmse", "mae", "mape"), "classification": ("accuracy", "f1", "roc_auc"),
            "clustering": ("clusters", "silhouette"), "anomaly": ("anomalies", "anomaly_rate")}.get(task, ("missing_cells_pct",))
    figures = {"rows": rows}
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


# ---- the page ------------------------------------------------------------------------------------------

def _cell(value) -> str:
    from automodel.safety import redact_pii

    if isinstance(value, str):
        value = redact_pii(value)  # every table of the report (predictions preview, roles, leaderboard) shows cells redacted
    if isinstance(value, bool) or value is None:
        return f"<td>{'' if value is None else html.escape(str(value))}</td>"
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value) if isinstance(value, (float, np.floating)) else int(value)
        return f"<td class='num'>{html.escape(metric_text(number))}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def html_table(rows: list[dict], columns: list[str] | None = None, table_id: str | None = None) -> str:
    if not rows:
        return "<p class='note'>none</p>"
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    from automodel.safety import redact_pii

    head = "".join(f"<th>{html.escape(redact_pii(str(c)))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>" for row in rows)
    ident = f" id='{table_id}'" if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class Section:
    ident: str
    title: str
    body: str = ""
    figures: list = field(default_factory=list)

    def html(self) -> str:
        charts = "".join(figure_html(name, fig) for name, fig in self.figures)
        return f"<section id='{self.ident}'><h2>{html.escape(self.title)}</h2>{self.body}{charts}</section>"


def _metric_spans(facts: dict) -> str:
    spans = []
    for name, value in facts["metrics"].items():
        spans.append(f"<tr><th>{html.escape(metric_label(name))}</th><td class='num'><span class='metric' data-metric='{html.escape(name)}' "
                     f"data-value='{value!r}'>{html.escape(metric_text(value))}</span></td></tr>")
    return "<table id='metrics'>" + "".join(spans) + "</table>" if spans else ""


def headline_html(facts: dict, title: str, summary_text: str) -> str:
    rows = [("task", facts["task"]), ("target", facts.get("target") or "none"), ("analyzer", facts["analyzer"]),
            ("model", facts.get("model") or "none"), ("rows", f"{facts['rows']:,}"), ("columns", f"{facts['columns']:,}")]
    headline = headline_metric_text(facts)
    if headline:
        rows.append(("headline metric", headline))
    if facts.get("metric_interval"):
        rows.append(("metric interval", facts["metric_interval"]["text"]))
    if validation_sentence(facts):
        rows.append(("validation", validation_sentence(facts)))
    if facts.get("baseline"):
        rows.append(("against a baseline", facts["baseline"]["text"]))
    if time_baseline_sentence(facts):
        rows.append(("against time-order baselines", time_baseline_sentence(facts)))
    table = "<table id='headline'>" + "".join(f"<tr><th>{html.escape(k)}</th><td data-field='{html.escape(k)}'>{html.escape(str(v))}</td></tr>"
                                              for k, v in rows) + "</table>"
    verdict = ""
    if facts.get("no_model_reason"):
        verdict = f"<div class='verdict untrusted' id='no-model'>No predictive model was trained: {html.escape(facts['no_model_reason'])}.</div>"
    elif facts["task"] in ("regression", "classification"):
        kind = "trusted" if facts["trusted"] else "untrusted"
        verdict = f"<div class='verdict {kind}' id='trust' data-trusted='{str(facts['trusted']).lower()}'>{html.escape(facts['trust_reason'])}</div>"
    caveats = "".join(f"<li>{html.escape(c)}</li>" for c in facts.get("caveats") or [])
    caveats = f"<h3>Caveats</h3><ul id='caveats'>{caveats}</ul>" if caveats else ""
    basis = facts.get("holdout_basis")
    metrics_caption = f"<p class='note' id='basis'>Metrics measured on {html.escape(basis)}.</p>" if basis and facts["metrics"] else ""
    return (f"<h1>{html.escape(title)}</h1>{table}{verdict}{_metric_spans(facts)}{metrics_caption}"
            f"<p id='summary'>{html.escape(summary_text)}</p>{caveats}")


def _validation_html(facts: dict) -> str:
    """How the run measured itself: the scheme and its reason, the headline's interval, the time-order baselines."""
    parts = [p for p in (validation_sentence(facts), (facts.get("metric_interval") or {}).get("text"), time_baseline_sentence(facts)) if p]
    baselines = facts.get("time_baselines") or []
    table = html_table([{"baseline": b["model"], metric_label(b["metric"]): b["score"], "rows": b["rows"]} for b in baselines],
                       table_id="time-baselines") if baselines else ""
    return ("<div id='validation'>" + "".join(f"<p class='note'>{html.escape(p)}</p>" for p in parts) + table + "</div>") if parts else ""


def _leaderboard_html(facts: dict) -> str:
    rows = facts.get("leaderboard") or []
    if not rows:
        return "<p class='note'>No candidate models were compared in this run.</p>"
    label = metric_label(facts.get("leaderboard_metric") or facts.get("metric") or "score")
    shown = [{"model": r["model"], f"held-out {label}": r.get("score"), "training rows": r.get("rows"), "seconds": r.get("seconds"),
              "error": r.get("error") or ""} for r in rows]
    chosen = facts.get("model")
    note = f"<p class='note'>Chosen: {html.escape(str(chosen))}. Scores are on the search's validation rows; each row is one candidate fit.</p>"
    return note + html_table(shown, table_id="leaderboard")


def _data_html(facts: dict) -> str:
    roles = facts.get("roles") or {}
    missing = facts.get("missing") or {}
    excluded = facts.get("excluded") or {}
    rows = [{"column": c, "role": r, "missing": int(missing.get(c, 0)), "used by the model": "no: " + excluded[c] if c in excluded
             else ("target" if c == facts.get("target") else "")} for c, r in roles.items()]
    changes = cleaning_rows(facts.get("cleaning") or {})
    return (f"<p>{facts['rows']:,} rows, {facts['columns']:,} columns.</p><h3>Columns and roles</h3>" + html_table(rows, table_id="roles")
            + "<h3>What cleaning changed</h3>" + (html_table(changes, table_id="cleaning") if changes else "<p class='note'>Nothing.</p>"))


def cleaning_rows(cleaning: dict) -> list[dict]:
    """What cleaning changed, one row per step and column (the cleaned_frame asset's report)."""
    rows = []
    for step, columns in (cleaning.get("steps") or {}).items():
        rows += [{"change": step.replace("_", " "), "column": column, "values changed": int(n)}
                 for column, n in sorted(columns.items(), key=lambda kv: -kv[1])]
    rows += [{"change": "column dropped", "column": column, "values changed": why} for column, why in (cleaning.get("dropped_columns") or {}).items()]
    rows += [{"change": f"read as {kind}", "column": column, "values changed": ""} for column, kind in (cleaning.get("converted") or {}).items()]
    for key, what in (("duplicate_rows", "duplicate rows kept but left out of training"), ("outlier_rows", "outlier rows marked (kept, and trained on)")):
        if cleaning.get(key):
            rows.append({"change": what, "column": "", "values changed": int(cleaning[key])})
    return rows


def _enrichment_html(facts: dict) -> str:
    enrichment = facts.get("enrichment") or {}
    candidates = enrichment.get("candidates") or []
    rows = [{"table": c.get("table"), "search score": c.get("score"), "tried": "yes" if c.get("tried") else "no", "coverage": c.get("coverage"),
             "lift": c.get("lift")} for c in candidates]
    if enrichment.get("kept"):
        metric = metric_label(enrichment.get("metric") or "")
        lift = enrichment.get("lift")
        lift_text = (f"; quick 3-fold {metric} {metric_text(enrichment.get('plain_score'))} without it, "
                     f"{metric_text(enrichment.get('enriched_score'))} with it (lift {metric_text(lift)})") if lift is not None else ""
        kept = (f"<p id='enrichment-kept' data-lift='{lift!r}'>Kept: <b>{html.escape(str(enrichment['table']))}</b>, joined on "
                f"{html.escape(' = '.join(enrichment.get('keys') or []))} ({html.escape(str(enrichment.get('strategy') or ''))}), "
                f"{enrichment['coverage']:.0%} of rows matched{html.escape(lift_text)}; added "
                f"{len(enrichment.get('added_columns') or [])} column(s).</p>")
        if len(enrichment.get("tables") or []) > 1:
            kept += "<h3>Kept tables</h3>" + html_table([{"table": t.get("table"), "key": " = ".join(t.get("keys") or []),
                                                          "how": t.get("strategy"), "coverage": t.get("coverage"), "lift": t.get("lift")}
                                                         for t in enrichment["tables"]], table_id="enrichment-tables")
    else:
        kept = f"<p id='enrichment-kept'>No lake table was kept: {html.escape(str(enrichment.get('reason') or 'enrichment did not run'))}.</p>"
    refused = enrichment.get("refused") or []
    if refused:
        kept += "<h3>Refused</h3>" + html_table(refused, table_id="enrichment-refused")
    return kept + ("<h3>Candidates</h3>" + html_table(rows, table_id="enrichment-candidates") if rows else "")


def _predictions_html(predictions: pd.DataFrame | None, predictions_link: str | None, frame: pd.DataFrame, target: str | None) -> str:
    if predictions is None or predictions.empty:
        return "<p class='note'>No predictions.</p>"
    preview = predictions.head(PREVIEW_ROWS).copy()
    if target and target in frame:
        preview.insert(0, f"{target} (actual)", frame[target].head(PREVIEW_ROWS).to_numpy())
    link = (f"<p>All {len(predictions):,} rows: <a id='predictions-link' href='{html.escape(predictions_link)}'>the predictions CSV</a>, "
            "row-aligned with the input.</p>") if predictions_link else ""
    rows = [{str(k): (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in preview.to_dict(orient="records")]
    return link + html_table(rows, table_id="predictions-preview")


def actions_html(actions: list[dict] | None) -> str:
    if not actions:
        return "<p class='note' id='actions-none'>No action recipe ran for this run.</p>"
    rows = [{"recipe": a.get("recipe"), "triggered": "yes" if a.get("triggered") else "no", "what happened": a.get("message"),
             "notified": ", ".join(a.get("notified") or []) or "none"} for a in actions]
    return html_table(rows, table_id="actions-table")


def write_report(path: Path, facts: dict, summary_text: str, figures: list[tuple[str, object]], *, title: str,
                 predictions: pd.DataFrame | None = None, frame: pd.DataFrame | None = None, actions: list[dict] | None = None) -> Path:
    """The run's report: headline, contents, then the sections that have something to show."""
    by_name = dict(figures)
    evaluation = [(n, f) for n, f in figures if n in EVALUATION_CHARTS or n.startswith("residuals_vs_feature_")]
    explaining = [(n, f) for n, f in figures if n == "feature_importance" or n.startswith("shap_")]
    data_charts = [(n, by_name[n]) for n in ("target_distribution", "missing_values", "correlation_heatmap") if n in by_name]
    analysis = [(n, by_name[n]) for n in ("clusters_2d", "anomaly_scores") if n in by_name]
    sections = []
    fallback = facts.get("fallback")
    if facts["task"] in ("regression", "classification"):
        if fallback:
            body = (f"<p id='baseline-reason'>The predictions come from a baseline model ({html.escape(str(facts['model']))}): "
                    f"{html.escape(fallback['reason'])}. Evaluation and explanation charts are left out: a constant prediction has no "
                    "errors worth plotting and no features that matter.</p>")
        elif evaluation:
            basis = facts.get("holdout_basis")
            body = f"<p class='note'>Drawn from {html.escape(basis)}: rows the model was not trained on.</p>" if basis else ""
            body += _validation_html(facts)
        else:
            body = "<p class='note'>The file has no target values to evaluate the predictions against.</p>"
        sections.append(Section("evaluation", "Evaluation", body, evaluation))
        if explaining:
            method = facts.get("importance_method") or ""
            sections.append(Section("explanations", "Explanations",
                                    f"<p class='note'>Computed on a sample of rows ({html.escape(str(method))}).</p>", explaining))
        sections.append(Section("leaderboard", "Leaderboard", _leaderboard_html(facts)))
    if analysis:
        sections.append(Section("analysis", "Analysis", "", analysis))
    sections.append(Section("data", "Data", _data_html(facts), data_charts))
    sections.append(Section("enrichment", "Enrichment", _enrichment_html(facts)))
    link = None
    if facts.get("predictions_path"):
        link = Path(os.path.relpath(facts["predictions_path"], Path(path).parent)).as_posix()
    if frame is not None:
        sections.append(Section("predictions", "Predictions", _predictions_html(predictions, link, frame, facts.get("target"))))
    sections.append(Section("actions", "Actions taken", actions_html(actions)))
    toc = "<nav class='toc'><b>Contents</b><ol>" + "".join(f"<li><a href='#{s.ident}'>{html.escape(s.title)}</a></li>" for s in sections) + "</ol></nav>"
    from automodel.safety import redact_pii

    body = headline_html(facts, title, redact_pii(summary_text)) + toc + "".join(s.html() for s in sections)
    return write_text_atomic(path, page_html(title, body))


def write_dashboard(path: Path, title: str, headline: dict, summary: str, figures: list[tuple[str, object]]) -> Path:
    """A plain report: a table of key figures, a paragraph and the charts (for callers without a run's facts)."""
    from automodel.safety import redact_pii

    table = "<table id='headline'>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(redact_pii(str(v)))}</td></tr>"
                                              for k, v in headline.items()) + "</table>"
    body = f"<h1>{html.escape(title)}</h1>{table}<p id='summary'>{html.escape(redact_pii(summary))}</p>" + "".join(figure_html(n, f) for n, f in figures)
    return write_text_atomic(path, page_html(title, body))


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
    """{chart name: {"data": [...traces], "layout": {...}}} for every chart in a report written here."""
    decoder = json.JSONDecoder()
    out = {}
    for match in re.finditer(r'Plotly\.newPlot\(\s*"chart-([\w-]+)",\s*', text):
        data, end = decoder.raw_decode(text, match.end())
        rest = re.match(r"\s*,\s*", text[end:])
        layout, _ = decoder.raw_decode(text, end + rest.end()) if rest else ({}, end)
        out[match.group(1)] = {"data": _decode_arrays(data), "layout": layout}
    return out
