"""Answering a question about a run's data: ``answer`` parses the question (``automodel.outputs.ask_intent``),
computes the answer with pandas on the rows it selects, and draws its chart (``automodel.outputs.ask_charts``);
``write_answer_chart`` writes the answer and its chart as a page in the run report's style.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automodel.atomic import write_text_atomic
from automodel.ingest.roles import is_number
from automodel.outputs.ask_charts import answer_figure, histogram, prediction_bar, ranked_values, row_label, select_visualization
from automodel.outputs.ask_intent import Intent, QuestionError, parse_intent
from automodel.outputs.llm import ChatProvider
from automodel.outputs.report_page import figure_html, page_html, style_figure


@dataclass
class Answer:
    question: str
    intent: Intent
    text: str
    value: Any = None
    chart: str | None = None
    figure: Any = None
    chart_path: str | None = None

    def to_dict(self) -> dict:
        return {"question": self.question, "intent": self.intent.to_dict(), "answer": self.text, "value": _jsonable(self.value),
                "chart": self.chart, "chart_path": self.chart_path}


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def _fmt(value) -> str:
    if isinstance(value, (float, np.floating)):
        if value != value:
            return "n/a"
        return f"{value:,.2f}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    return str(value)


def _aggregate(series: pd.Series, how: str):
    if how == "count":
        return int(series.notna().sum())
    if how == "missing":
        return int(series.isna().sum())
    if how == "nunique":
        return int(series.nunique(dropna=True))
    return getattr(series.dropna(), how)()


def _scope(intent: Intent) -> str:
    return f" where {' and '.join(f.describe() for f in intent.filters)}" if intent.filters else ""


def answer(question: str, frame: pd.DataFrame, *, target: str | None = None, task: str | None = None, predictions: pd.DataFrame | None = None,
           importance: list[dict] | None = None, fitted=None, provider: ChatProvider | None = None) -> Answer:
    """Parse the question, compute the answer on ``frame`` and build its chart (a plotly figure)."""
    intent = parse_intent(question, frame, target=target, provider=provider)
    rows = frame
    if not intent.confident:
        shown = ", ".join(map(str, list(frame.columns)[:6]))
        raise QuestionError(f"No column, value or question word was recognised in {question!r}; name a column ({shown}, ...) "
                            "or ask e.g. \"how many rows\", \"average X by Y\", \"plot X vs Y\", \"what drives the target\".")
    if intent.filters:
        mask = pd.Series(True, index=frame.index)
        for item in intent.filters:
            mask &= item.mask(frame).to_numpy()
        rows = frame[mask.to_numpy()]
    if intent.action == "explain":
        return _explain(question, intent, target, importance)
    if intent.action == "predict":
        return _predict(question, intent, frame, rows, target, task, predictions, fitted)
    if rows.empty:
        return Answer(question, intent, f"No rows match{_scope(intent)}.", value=0)
    chart = select_visualization(intent, frame)
    text, value = _describe(intent, rows)
    return Answer(question, intent, text, value, chart, answer_figure(chart, intent, rows, question))


def _describe(intent: Intent, rows: pd.DataFrame) -> tuple[str, Any]:
    how, group, columns, scope = intent.aggregation, intent.group_by, intent.columns, _scope(intent)
    numeric = [c for c in columns if is_number(rows[c])]
    if intent.limit and numeric:
        ranked = ranked_values(intent, rows)
        label = row_label(rows)
        shown = ", ".join(f"row {i}" + (f" ({rows.at[i, label]})" if label else "") + f" {_fmt(v)}" for i, v in ranked.items())
        word = "highest" if intent.rank == "max" else "lowest"
        return f"The {len(ranked)} {word} {numeric[0]} values{scope}: {shown}.", [float(v) for v in ranked.to_numpy()]
    if how == "correlation":
        if len(numeric) >= 2:
            a, b = numeric[:2]
            r = float(rows[a].corr(rows[b]))
            return f"The Pearson correlation between {a} and {b} is {r:.3f}{scope} ({len(rows[[a, b]].dropna()):,} rows).", round(r, 4)
        corr = rows.select_dtypes(include=[np.number]).corr()
        upper = corr.where(np.triu(np.ones(corr.shape, dtype=bool), k=1)).stack()
        (a, b), r = upper.abs().idxmax(), float(upper[upper.abs().idxmax()])
        return f"The strongest correlation is between {a} and {b} (Pearson {r:.3f}).", round(r, 4)
    if how == "missing":
        if columns:
            counts = {c: int(rows[c].isna().sum()) for c in columns}
        else:
            counts = {str(c): int(n) for c, n in rows.isna().sum().items() if n > 0}
        if not counts:
            return "No values are missing.", {}
        return "Missing values: " + ", ".join(f"{c} {n:,}" for c, n in counts.items()) + ".", counts
    if how in (None, "count", "nunique") and not numeric and not columns and not group:
        return f"There are {len(rows):,} rows{scope}.", int(len(rows))
    if how == "count" and group and not numeric:
        counts = rows.groupby(group, dropna=True).size().sort_values(ascending=False)
        value = {str(k): int(v) for k, v in counts.items()}
        text = f"Rows per {group}{scope}: " + ", ".join(f"{k} {v:,}" for k, v in value.items()) + "."
        if intent.rank:
            best = counts.idxmax() if intent.rank == "max" else counts.idxmin()
            return f"{best} has the {'most' if intent.rank == 'max' else 'fewest'} rows ({int(counts[best]):,}){scope}. " + text, str(best)
        return text, value
    if how in ("count", "nunique") and columns and not numeric and not group:
        column = columns[0]
        if how == "nunique" or not intent.filters:
            values = rows[column].dropna().astype(str).value_counts()
            return f"{column} has {len(values):,} distinct values{scope}: {', '.join(values.index[:10])}.", int(len(values))
        return f"There are {len(rows):,} rows{scope}.", int(len(rows))
    if not numeric and columns and group is not None and how in (None, "count"):
        table = pd.crosstab(rows[group].astype(str), rows[columns[0]].astype(str))
        value = {k: {c: int(n) for c, n in row.items()} for k, row in table.to_dict(orient="index").items()}
        parts = "; ".join(f"{k}: " + ", ".join(f"{c} {n:,}" for c, n in row.items() if n) for k, row in value.items())
        return f"{columns[0]} by {group}{scope}: {parts}.", value
    if not numeric and columns and group is None:
        column = columns[0]
        counts = rows[column].dropna().astype(str).value_counts()
        value = {k: int(v) for k, v in counts.items()}
        return f"{column}{scope}: " + ", ".join(f"{k} {v:,}" for k, v in list(value.items())[:10]) + ".", value
    if not numeric:
        if group:
            counts = rows.groupby(group, dropna=True).size()
            value = {str(k): int(v) for k, v in counts.items()}
            return f"Rows per {group}{scope}: " + ", ".join(f"{k} {v:,}" for k, v in value.items()) + ".", value
        return f"There are {len(rows):,} rows{scope}.", int(len(rows))
    if len(numeric) >= 2 and how is None:
        a, b = numeric[:2]
        r = float(rows[a].corr(rows[b]))
        return f"{b} against {a}{scope}: Pearson correlation {r:.3f} over {len(rows[[a, b]].dropna()):,} rows.", round(r, 4)
    column = numeric[0]
    if group:
        grouped = rows.groupby(group, dropna=True)[column]
        how = how or "mean"
        values = grouped.agg(lambda s: _aggregate(s, how))
        value = {str(k): (round(float(v), 4) if isinstance(v, (float, np.floating)) else int(v)) for k, v in values.items()}
        text = f"{how} of {column} by {group}{scope}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()) + "."
        if intent.rank:
            best = values.idxmax() if intent.rank == "max" else values.idxmin()
            return f"{best} has the {'highest' if intent.rank == 'max' else 'lowest'} {how} {column} ({_fmt(values[best])}){scope}. " + text, str(best)
        return text, value
    if how is None:
        stats = rows[column].describe()
        value = {k: round(float(v), 4) for k, v in stats.items()}
        return (f"{column}{scope}: mean {_fmt(stats['mean'])}, median {_fmt(rows[column].median())}, min {_fmt(stats['min'])}, "
                f"max {_fmt(stats['max'])} over {int(stats['count']):,} rows."), value
    result = _aggregate(rows[column], how)
    value = round(float(result), 4) if isinstance(result, (float, np.floating)) else int(result)
    return f"The {how} of {column}{scope} is {_fmt(result)}.", value


def _explain(question: str, intent: Intent, target: str | None, importance: list[dict] | None) -> Answer:
    import plotly.graph_objects as go

    if not importance:
        return Answer(question, intent, "This run has no feature importance (no predictive model was trained, or explanations are off).")
    top = importance[:10]
    names = [str(row["feature"]) for row in top]
    fig = go.Figure(go.Bar(x=[round(float(row["importance"]), 6) for row in top], y=names, orientation="h"))
    fig.update_layout(title=f"What drives {target}", xaxis_title=str(top[0].get("method", "importance")))
    fig.update_yaxes(autorange="reversed")
    text = f"The features that most influence {target} are {', '.join(names[:3])} (by {top[0].get('method', 'importance')})."
    return Answer(question, intent, text, names[:3], "bar", fig)


def _predict(question: str, intent: Intent, frame: pd.DataFrame, rows: pd.DataFrame, target: str | None, task: str | None,
             predictions: pd.DataFrame | None, fitted) -> Answer:
    import plotly.graph_objects as go

    if intent.assignments:
        if fitted is None:
            raise QuestionError("This run has no saved predictive model to score a new example; ask about its data instead.")
        example = {}
        for column in fitted.feature_columns:
            series = frame[column] if column in frame else pd.Series(dtype=float)
            if column in intent.assignments:
                example[column] = intent.assignments[column]
            elif is_number(series):
                example[column] = float(series.median())
            else:
                example[column] = series.mode().iloc[0] if not series.mode().empty else None
        scored = fitted.predict_frame(pd.DataFrame([example]))
        prediction = scored["prediction"].iloc[0]
        given = ", ".join(f"{k} {v}" for k, v in intent.assignments.items())
        if fitted.task == "classification":
            proba = {str(c)[len("proba_"):]: round(float(scored[c].iloc[0]), 4) for c in scored.columns if str(c).startswith("proba_")}
            fig = go.Figure(go.Bar(x=list(proba), y=list(proba.values())))
            fig.update_layout(title=f"Predicted {fitted.target} for {given}", yaxis_title="probability")
            return Answer(question, intent, f"With {given} (other features at their typical values) the model predicts {fitted.target} = "
                          f"{prediction} (probability {proba[str(prediction)]:.2f}).", str(prediction), "bar", fig)
        fig = go.Figure(go.Bar(x=[str(fitted.target)], y=[float(prediction)]))
        fig.update_layout(title=f"Predicted {fitted.target} for {given}")
        return Answer(question, intent, f"With {given} (other features at their typical values) the model predicts {fitted.target} = "
                      f"{_fmt(float(prediction))}.", round(float(prediction), 4), "bar", fig)
    if predictions is None or "prediction" not in predictions:
        raise QuestionError("This run has no predictions; ask about its data instead.")
    selected = predictions.iloc[np.flatnonzero(frame.index.isin(rows.index))] if len(rows) != len(frame) else predictions
    scope = _scope(intent)
    if intent.predicted is not None:
        hits = int((selected["prediction"].astype(str).str.lower() == str(intent.predicted).lower()).sum())
        return Answer(question, intent, f"{hits:,} of {len(selected):,} rows{scope} are predicted {target} = {intent.predicted}.", hits, "bar",
                      prediction_bar(selected, target, scope))
    if task == "classification" or not is_number(selected["prediction"]):
        counts = selected["prediction"].astype(str).value_counts()
        value = {k: int(v) for k, v in counts.items()}
        text = f"Predicted {target or 'label'}{scope}: " + ", ".join(f"{k} {v:,}" for k, v in value.items()) + "."
        if target and target in rows and rows[target].notna().any():
            known = rows[target].notna().to_numpy()
            accuracy = float((selected["prediction"].astype(str).to_numpy()[known] == rows[target].astype(str).to_numpy()[known]).mean())
            text += f" They match the recorded {target} in {accuracy:.1%} of {int(known.sum()):,} rows."
        return Answer(question, intent, text, value, "bar", prediction_bar(selected, target, scope))
    mean = float(selected["prediction"].mean())
    x, y, _ = histogram(selected["prediction"])
    fig = go.Figure(go.Bar(x=x, y=y))
    fig.update_layout(title=f"Predicted {target}{scope}", xaxis_title=f"predicted {target}", yaxis_title="rows")
    return Answer(question, intent, f"The mean predicted {target}{scope} is {_fmt(mean)} over {len(selected):,} rows.", round(mean, 4), "histogram", fig)


def write_answer_chart(result: Answer, path: Path) -> Path | None:
    """A self-contained HTML page with the answer and its chart, in the run report's style (plotly.js inlined)."""
    import html as html_lib

    if result.figure is None:
        return None
    body = (f"<h1>{html_lib.escape(result.question)}</h1><p id='answer'>{html_lib.escape(result.text)}</p>"
            + figure_html("answer", style_figure(result.figure)))
    write_text_atomic(path, page_html(result.question, body))
    result.chart_path = str(path)
    return path
