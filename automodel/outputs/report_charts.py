"""The run report's charts: which suit the run (``select_charts``, the visualization selector) and the plotly
figures themselves (``build_figures``).

Evaluation charts are drawn from the chosen model's held-out predictions (out-of-fold under
cross-validation, ``evaluation_rows``) and say so; a chart drawn from training rows says that instead. A
baseline model gets no evaluation or explanation charts: they would only repeat the target's distribution.
Large data stays small in the HTML: histograms are binned here, scatter plots sampled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from automodel.outputs.report_page import CHART_HEIGHT, style_figure

MAX_SCATTER_POINTS = 5_000
HISTOGRAM_BINS = 30
MAX_HEATMAP_COLUMNS = 30
TOP_FEATURES = 3  # residual and SHAP dependence charts for this many features
MAX_SEGMENTS = 12
CALIBRATION_BINS = 10

EVALUATION_CHARTS = ("confusion_matrix", "roc", "precision_recall", "calibration", "gain", "predicted_vs_actual", "residuals",
                     "residuals_vs_predicted", "error_by_segment")


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
