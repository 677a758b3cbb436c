"""The chart of an answer to a question about a run's data: ``select_visualization`` picks the chart for an
intent and ``answer_figure`` draws it with plotly from the rows the question selected.

The helpers that rank rows and bin values are shared with the answer's text (``automodel.outputs.ask``),
so the chart and the sentence show the same rows and the same numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from automodel.ingest.roles import is_number
from automodel.outputs.ask_intent import Intent, is_datetime


def select_visualization(intent: Intent, frame: pd.DataFrame) -> str:
    """The chart for an intent: the one asked for when it suits the columns, else by the columns' kinds."""
    columns = list(intent.columns)
    numeric = [c for c in columns if is_number(frame[c])]
    dates = [c for c in columns if is_datetime(frame[c])]
    group = intent.group_by
    if intent.action == "explain" or (intent.limit and numeric):
        return "bar"
    if intent.aggregation == "correlation" and len(numeric) >= 2:
        return "scatter"
    if intent.aggregation == "correlation":
        return "heatmap"
    if intent.aggregation == "missing":
        return "bar"
    suits = {
        "histogram": bool(numeric), "box": bool(numeric), "scatter": len(numeric) >= 2, "line": bool(numeric) and bool(dates or group),
        "heatmap": len(numeric) >= 2 or (group is not None and len(columns) >= 1), "pie": bool(group or columns), "bar": True,
    }
    if intent.chart and suits.get(intent.chart):
        return intent.chart
    if dates and len(numeric) >= 1:
        return "line"
    if len(numeric) >= 2:
        return "scatter"
    if numeric and group and intent.aggregation in (None, "std") and intent.action == "visualize":
        return "box"
    if numeric and not group and intent.aggregation is None:
        return "histogram"
    return "bar"


def ranked_values(intent: Intent, rows: pd.DataFrame) -> pd.Series:
    column = next(c for c in intent.columns if is_number(rows[c]))
    values = rows[column].dropna()
    return values.nlargest(intent.limit, keep="first") if intent.rank == "max" else values.nsmallest(intent.limit, keep="first")


def row_label(rows: pd.DataFrame) -> str | None:
    """A column that names rows for people (an identifier-like text column, else the first category)."""
    text = [c for c in rows.columns if not is_number(rows[c]) and not is_datetime(rows[c])]
    unique = [c for c in text if rows[c].nunique() > 0.9 * len(rows)]
    return (unique or text or [None])[0]


def prediction_bar(selected: pd.DataFrame, target: str | None, scope: str):
    import plotly.graph_objects as go

    counts = selected["prediction"].astype(str).value_counts()
    fig = go.Figure(go.Bar(x=list(counts.index), y=counts.astype(int).tolist()))
    fig.update_layout(title=f"Predicted {target}{scope}", yaxis_title="rows")
    return fig


def histogram(values: pd.Series, bins: int = 30):
    numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    counts, edges = np.histogram(numbers, bins=bins)
    return ((edges[:-1] + edges[1:]) / 2).round(6).tolist(), counts.astype(int).tolist(), edges


def answer_figure(chart: str, intent: Intent, rows: pd.DataFrame, question: str):
    import plotly.graph_objects as go

    columns, group, how = intent.columns, intent.group_by, intent.aggregation
    numeric = [c for c in columns if is_number(rows[c])]
    title = question.strip()
    if intent.limit and numeric:
        ranked = ranked_values(intent, rows)
        label = row_label(rows)
        names = [f"row {i}" + (f" {rows.at[i, label]}" if label else "") for i in ranked.index]
        fig = go.Figure(go.Bar(x=names, y=ranked.round(6).tolist()))
        fig.update_layout(title=title, yaxis_title=numeric[0])
        return fig
    if chart == "scatter" and len(numeric) >= 2:
        a, b = numeric[:2]
        sample = rows if len(rows) <= 5000 else rows.sample(5000, random_state=0)
        if group:
            traces = [go.Scatter(x=g[a].tolist(), y=g[b].tolist(), mode="markers", name=str(k)) for k, g in sample.groupby(group)]
        else:
            traces = [go.Scatter(x=sample[a].tolist(), y=sample[b].tolist(), mode="markers", name=f"{b} vs {a}")]
        fig = go.Figure(traces)
        fig.update_layout(title=title, xaxis_title=a, yaxis_title=b)
        return fig
    if chart == "histogram" and numeric:
        column = numeric[0]
        if group:
            traces = []
            for key, part in rows.groupby(group):
                x, y, _ = histogram(part[column])
                traces.append(go.Bar(x=x, y=y, name=str(key), opacity=0.6))
            fig = go.Figure(traces)
            fig.update_layout(barmode="overlay")
        else:
            x, y, _ = histogram(rows[column])
            fig = go.Figure(go.Bar(x=x, y=y, name=column))
        fig.update_layout(title=title, xaxis_title=column, yaxis_title="rows")
        return fig
    if chart == "box" and numeric:
        column = numeric[0]
        parts = rows.groupby(group) if group else [("all rows", rows)]
        fig = go.Figure([go.Box(y=part[column].dropna().tolist(), name=str(key)) for key, part in parts])
        fig.update_layout(title=title, yaxis_title=column)
        return fig
    if chart == "line" and numeric:
        column = numeric[0]
        axis = next((c for c in columns if is_datetime(rows[c])), group)
        series = rows.groupby(axis)[column].agg(how if how in ("mean", "median", "sum", "min", "max") else "mean").sort_index()
        fig = go.Figure(go.Scatter(x=[str(k) for k in series.index], y=series.round(6).tolist(), mode="lines+markers"))
        fig.update_layout(title=title, xaxis_title=str(axis), yaxis_title=column)
        return fig
    if chart == "heatmap":
        if group and columns and not numeric:
            table = pd.crosstab(rows[group].astype(str), rows[columns[0]].astype(str))
            z, x, y = table.to_numpy().tolist(), list(table.columns), list(table.index)
        else:
            corr = rows[numeric or rows.select_dtypes(include=[np.number]).columns.tolist()].corr().round(3)
            z, x, y = corr.to_numpy().tolist(), list(map(str, corr.columns)), list(map(str, corr.index))
        fig = go.Figure(go.Heatmap(z=z, x=x, y=y, text=z, texttemplate="%{text}"))
        fig.update_layout(title=title)
        return fig
    # bar and pie: a value per category
    if how == "missing":
        counts = (rows[columns] if columns else rows).isna().sum()
        labels, values = [str(c) for c in counts.index], counts.astype(int).tolist()
    elif numeric and group:
        agg = how if how in ("mean", "median", "sum", "min", "max", "std", "count") else "mean"
        series = rows.groupby(group)[numeric[0]].agg(agg)
        labels, values = [str(k) for k in series.index], series.round(6).tolist()
    elif group or columns:
        column = group or columns[0]
        counts = rows[column].astype(str).value_counts() if not group or not columns else rows.groupby(group).size()
        labels, values = [str(k) for k in counts.index], counts.astype(int).tolist()
    else:
        labels, values = ["rows"], [int(len(rows))]
    fig = go.Figure(go.Pie(labels=labels, values=values) if chart == "pie" else go.Bar(x=labels, y=values))
    fig.update_layout(title=title)
    return fig
