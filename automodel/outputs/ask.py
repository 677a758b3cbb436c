"""Questions about a run's data: an intent parser, a visualization selector and the answer.

``parse_intent`` reads a question with heuristics (column names and their plain-English forms,
category values, comparisons, "by X" groupings, aggregation words) and, only when those find
nothing to work with, asks the configured language model for the same structure as JSON.
``answer`` computes the answer with pandas and ``select_visualization`` picks the chart.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from automodel.atomic import write_text_atomic
from automodel.errors import AutomodelError
from automodel.ingest.roles import is_number
from automodel.outputs.llm import ChatProvider, LLMError

ACTIONS = ("visualize", "predict", "explain", "describe")
AGGREGATIONS = ("count", "nunique", "mean", "median", "sum", "min", "max", "std", "missing", "correlation")
CHARTS = ("histogram", "bar", "box", "scatter", "line", "heatmap", "pie")


class QuestionError(AutomodelError):
    """The question cannot be answered from this run's data."""


@dataclass
class Filter:
    column: str
    op: str  # ==, !=, >, >=, <, <=, in
    value: Any

    def mask(self, frame: pd.DataFrame) -> pd.Series:
        series = frame[self.column]
        if self.op == "in":
            return series.astype(str).str.lower().isin([str(v).lower() for v in self.value])
        if self.op in ("==", "!=") and not isinstance(self.value, (int, float)):
            equal = series.astype(str).str.lower() == str(self.value).lower()
            return equal if self.op == "==" else ~equal & series.notna()
        numbers = pd.to_numeric(series, errors="coerce")
        value = float(self.value)
        return {"==": numbers == value, "!=": numbers != value, ">": numbers > value, ">=": numbers >= value,
                "<": numbers < value, "<=": numbers <= value}[self.op].fillna(False)

    def describe(self) -> str:
        value = ", ".join(map(str, self.value)) if self.op == "in" else self.value
        return f"{self.column} {self.op} {value}"


@dataclass
class Intent:
    action: str = "describe"
    columns: list[str] = field(default_factory=list)
    filters: list[Filter] = field(default_factory=list)
    aggregation: str | None = None
    group_by: str | None = None
    rank: str | None = None  # "max" or "min": which group ranks first ("which species is heaviest")
    limit: int | None = None  # "top 5 heaviest": the rows ranked by a measure
    chart: str | None = None  # a chart type the question asked for
    assignments: dict[str, Any] = field(default_factory=dict)  # feature values for a prediction
    predicted: Any = None  # a predicted value asked about ("how many are predicted Gentoo")
    source: str = "heuristic"
    confident: bool = True

    def to_dict(self) -> dict:
        out = asdict(self)
        out["filters"] = [asdict(f) for f in self.filters]
        return out


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


# ---- vocabulary -----------------------------------------------------------------------------------

_AGG_WORDS = [
    (r"\bstandard deviation\b|\bstd\b|\bspread\b|\bvariab", "std"),
    (r"\bhow many (?:different|distinct|unique)\b|\bnumber of (?:different|distinct|unique)\b|\bdistinct\b|\bunique\b", "nunique"),
    (r"\bmissing\b|\bnulls?\b|\bempty\b|\bblank\b", "missing"),
    (r"\bcorrelat|\brelationship between\b", "correlation"),
    (r"\baverage\b|\bmean\b|\btypical\b|\bavg\b", "mean"),
    (r"\bmedian\b", "median"),
    (r"\btotal\b|\bsum\b|\bcombined\b", "sum"),
    (r"\bhow many\b|\bnumber of\b|\bcount\b", "count"),
    (r"\bmax(?:imum)?\b|\bhighest\b|\blargest\b|\bbiggest\b|\bheaviest\b|\blongest\b|\bgreatest\b|\btallest\b|\boldest\b|\bmost\b", "max"),
    (r"\bmin(?:imum)?\b|\blowest\b|\bsmallest\b|\blightest\b|\bshortest\b|\bleast\b|\bfewest\b|\byoungest\b", "min"),
]
_SUPERLATIVE = {"max": r"\bhighest\b|\blargest\b|\bbiggest\b|\bheaviest\b|\blongest\b|\bgreatest\b|\bmost\b|\bmax(?:imum)?\b|\btallest\b",
                "min": r"\blowest\b|\bsmallest\b|\blightest\b|\bshortest\b|\bleast\b|\bfewest\b|\bmin(?:imum)?\b"}
_EXPLAIN = r"\bwhy\b|\bimportan|\bdrivers?\b|\bdrives?\b|\binfluen|\baffects?\b|\bexplain|\bwhat matters\b|\bshap\b|\bfeatures? matter"
_PREDICT = r"\bpredict|\bforecast|\bwould\b[^.]*\bbe\b|\bestimate|\bwhat will\b|\bexpected\b|\bscore (?:a|this)\b"
_VISUALIZE = r"\bplot|\bchart|\bgraph|\bshow\b|\bvisuali|\bdraw\b|\bdistribution\b|\bhistogram|\bscatter|\bvs\.?\b|\bversus\b|\bagainst\b|\btrend|\bover time\b|\bbreakdown\b"
_CHART_WORDS = [(r"\bhistogram", "histogram"), (r"\bbox ?plot|\bboxplot|\bbox chart", "box"), (r"\bscatter", "scatter"),
                (r"\bline (?:chart|plot|graph)|\btrend|\bover time\b", "line"), (r"\bheat ?map", "heatmap"), (r"\bpie\b", "pie"),
                (r"\bbar (?:chart|plot|graph)", "bar")]
_COMPARATORS = [
    (r"(?:greater than or equal to|at least|no less than|>=)", ">="), (r"(?:less than or equal to|at most|no more than|<=)", "<="),
    (r"(?:greater than|more than|over|above|exceeding|heavier than|longer than|bigger than|larger than|higher than|>)", ">"),
    (r"(?:less than|fewer than|under|below|lighter than|shorter than|smaller than|lower than|<)", "<"),
    (r"(?:not equal to|other than|except|!=)", "!="), (r"(?:equal to|equals|=|is|of)", "=="),
]
_UNIT_TOKENS = {"mm", "cm", "m", "km", "g", "kg", "lb", "lbs", "pct", "usd", "eur", "s", "ms", "in", "ft", "id", "num", "no"}
_NUMBER = r"(-?\d+(?:\.\d+)?)"


# Everyday words for common measures: "weighs more than 5000" means a mass column.
_SYNONYMS = {"mass": ("weight", "weigh", "weighs", "weighed"), "weight": ("weigh", "weighs", "weighed"), "age": ("old",),
             "price": ("cost", "costs"), "qty": ("quantity",)}


_IMPLIED_COMPARISONS = {"heavier": (">", "weight"), "lighter": ("<", "weight"), "older": (">", "old"), "younger": ("<", "old"),
                        "more expensive": (">", "cost"), "cheaper": ("<", "cost")}


def column_aliases(column: str) -> list[str]:
    """Plain-English forms of a column name: 'body_mass_g' -> 'body mass g', 'body mass'; plural forms too."""
    base = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(column))
    words = [w for w in re.split(r"[\s_\-.]+", base.lower()) if w]
    aliases = {str(column).lower(), " ".join(words)}
    for word in words:
        aliases.update(_SYNONYMS.get(word, ()))
    while len(words) > 1 and words[-1] in _UNIT_TOKENS:
        words = words[:-1]
        aliases.add(" ".join(words))
    for alias in list(aliases):
        if alias and not alias.endswith("s"):
            aliases.add(alias + "s")
            aliases.add(alias + "es")
        if alias.endswith("ies"):
            aliases.add(alias[:-3] + "y")
    return sorted((a for a in aliases if a), key=len, reverse=True)


def _is_categorical(series: pd.Series, limit: int = 50) -> bool:
    if pd.api.types.is_bool_dtype(series):
        return True
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
        return False
    return series.nunique(dropna=True) <= limit


def _is_datetime(series: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(series)


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


class _Question:
    """The question's text with positions of what has been recognised, so nothing is read twice."""

    def __init__(self, text: str):
        self.raw = text
        self.text = " " + re.sub(r"[?!,;:'\"()]", " ", text.lower()).replace("’", " ") + " "
        self.taken = np.zeros(len(self.text), dtype=bool)

    def find(self, pattern: str) -> list[re.Match]:
        return [m for m in re.finditer(pattern, self.text) if not self.taken[m.start():m.end()].any()]

    def take(self, match: re.Match) -> None:
        self.taken[match.start():match.end()] = True


def _mentions(question: _Question, frame: pd.DataFrame) -> list[tuple[int, str, str]]:
    """(position, column, alias) for each column named in the question, longest names first, in question order."""
    candidates = sorted(((alias, column) for column in frame.columns for alias in column_aliases(column)), key=lambda p: len(p[0]), reverse=True)
    found = []
    for alias, column in candidates:
        for match in question.find(rf"(?<![\w]){re.escape(alias)}(?![\w])"):
            question.take(match)
            found.append((match.start(), column, alias))
    return sorted(found)


def _value_mentions(question: _Question, frame: pd.DataFrame) -> list[tuple[int, str, Any]]:
    """(position, column, value) for each category value named in the question (e.g. 'Adelie' -> species)."""
    found = []
    pairs = []
    for column in frame.columns:
        series = frame[column]
        if not _is_categorical(series):
            continue
        for value in series.dropna().unique():
            text = str(value).strip().lower()
            if len(text) >= 2 and not text.replace(".", "").isdigit():
                pairs.append((text, column, value))
    for text, column, value in sorted(pairs, key=lambda p: len(p[0]), reverse=True):
        for match in question.find(rf"(?<![\w]){re.escape(text)}(?:s|es)?(?![\w])"):
            question.take(match)
            found.append((match.start(), column, value))
    return sorted(found, key=lambda item: item[0])


# ---- the intent parser ----------------------------------------------------------------------------

def parse_intent(question: str, frame: pd.DataFrame, *, target: str | None = None, provider: ChatProvider | None = None) -> Intent:
    """Heuristics first; the language model only when they recognise nothing to answer with."""
    if not question or not question.strip():
        raise QuestionError("The question is empty; ask something like \"average body_mass_g by species\".")
    intent = _heuristic_intent(question, frame, target)
    if intent.confident or provider is None:
        return intent
    try:
        return _llm_intent(question, frame, provider)
    except LLMError:
        return intent


def _heuristic_intent(question: str, frame: pd.DataFrame, target: str | None) -> Intent:
    q = _Question(question)
    text = q.text
    intent = Intent()
    if re.search(_EXPLAIN, text):
        intent.action = "explain"
    elif re.search(_PREDICT, text):
        intent.action = "predict"
    for pattern, chart in _CHART_WORDS:
        if re.search(pattern, text):
            intent.chart = chart
            break

    # Groupings: "by species", "per island", "for each sex", "which species ..."
    group_match = None
    for pattern in (r"\b(?:by|per|for each|for every|across|each|within each|between)\s+", r"\bwhich\s+", r"\bwhat\s+"):
        for match in re.finditer(pattern, text):
            rest = text[match.end():]
            for column in frame.columns:
                for alias in column_aliases(column):
                    if re.match(rf"{re.escape(alias)}(?![\w])", rest):
                        if pattern.startswith(r"\bwhat") and not _is_categorical(frame[column]):
                            continue
                        if not _is_categorical(frame[column]) and frame[column].nunique() > 30:  # "by bill depth" ranks, it does not group
                            continue
                        if pattern.startswith(r"\b(?:by") and "between" in match.group(0) and not _is_categorical(frame[column]):
                            continue
                        if group_match is None or match.start() < group_match[0]:
                            group_match = (match.start(), column, match.end(), match.end() + len(alias))
                        break
        if group_match:
            break
    if group_match and intent.action != "predict":
        intent.group_by = group_match[1]
        q.taken[group_match[2]:group_match[3]] = True

    # Comparisons: "<column> over 4000", "body mass at least 4000", "in 2008" (a year column)
    example = intent.action == "predict" and re.search(r"\b(?:a|an|one|new)\b[^.]*\bwith\b|\bwith\b[^.]*\d", text) is not None
    mentions = _mentions(q, frame)
    for position, column, alias in mentions:
        if not is_number(frame[column]):
            continue
        after = text[position + len(alias):]
        for pattern, op in _COMPARATORS:
            match = re.match(rf"\s+(?:is\s+|was\s+|are\s+|of\s+)?{pattern}\s+{_NUMBER}\b", after)
            if match:
                value = _number(match.group(1))
                if intent.action == "predict" and op == "==":
                    intent.assignments[column] = value
                else:
                    intent.filters.append(Filter(column, op, value))
                q.taken[position + len(alias): position + len(alias) + match.end()] = True
                break
        else:
            bare = re.match(rf"\s+{_NUMBER}\b", after)
            if bare and intent.action == "predict":
                intent.assignments[column] = _number(bare.group(1))
                q.taken[position + len(alias): position + len(alias) + bare.end()] = True
    # Comparisons whose adjective names the measure: "penguins heavier than 5000" -> the mass/weight column.
    for word, (op, implied) in _IMPLIED_COMPARISONS.items():
        for match in q.find(rf"\b{word}\s+than\s+{_NUMBER}\b"):
            column = next((c for c in frame.columns if is_number(frame[c]) and implied in column_aliases(c)), None)
            if column is not None and not any(f.column == column for f in intent.filters):
                intent.filters.append(Filter(column, op, _number(match.group(1))))
                q.take(match)
    year_columns = [c for c in frame.columns if str(c).lower() in ("year", "yr") and is_number(frame[c])]
    if year_columns:
        for match in q.find(r"\b(?:in|during|for)\s+(1[89]\d\d|2[01]\d\d)\b"):
            intent.filters.append(Filter(year_columns[0], "==", int(match.group(1))))
            q.take(match)

    # Category values: 'Adelie' -> species == Adelie; two values of one column -> species in [...]
    by_column: dict[str, list] = {}
    for _, column, value in _value_mentions(q, frame):
        if column == intent.group_by and intent.action != "predict":
            continue
        by_column.setdefault(column, []).append(value)
    negated = bool(re.search(r"\b(?:not|except|other than|excluding)\b", text))
    example = example or bool(intent.assignments)
    for column, values in by_column.items():
        if intent.action == "predict" and column == target:
            intent.predicted = values[0]
        elif intent.action == "predict" and example:
            intent.assignments[column] = values[0]
        elif len(values) > 1 and intent.group_by is None and re.search(r"\bcompare\b|\bvs\.?\b|\bversus\b|\band\b", text):
            intent.filters.append(Filter(column, "in", values))
            intent.group_by = column
        elif len(values) > 1:
            intent.filters.append(Filter(column, "in", values))
        else:
            intent.filters.append(Filter(column, "!=" if negated else "==", values[0]))

    # Columns named and not used as filters or assignments, in question order.
    used = {f.column for f in intent.filters if f.op != "in"} | set(intent.assignments)
    for _, column, _ in mentions:
        if column not in intent.columns and column != intent.group_by and column not in used:
            intent.columns.append(column)

    for pattern, aggregation in _AGG_WORDS:
        if re.search(pattern, text):
            intent.aggregation = aggregation
            break
    has_numeric = any(is_number(frame[c]) for c in intent.columns)
    if intent.aggregation in ("max", "min") and intent.group_by and _is_categorical(frame[intent.group_by]):
        intent.rank = intent.aggregation
        intent.aggregation = "mean" if has_numeric else "count"
    for rank, pattern in _SUPERLATIVE.items():
        if intent.group_by and intent.aggregation in ("mean", "median", "sum", "count") and re.search(pattern, text):
            intent.rank = rank
    # "top 5 heaviest penguins", "the 3 longest flippers", "bottom 10 by bill depth": rows ranked by a measure
    top = re.search(r"\b(top|bottom|first|the)\s+(\d{1,4})\b", text)
    if top and not intent.group_by:
        superlative = next((r for r, pattern in _SUPERLATIVE.items() if re.search(pattern, text)), None)
        measure = next((c for c in intent.columns if is_number(frame[c])), None)
        if measure is None and superlative:
            word = re.search(_SUPERLATIVE[superlative], text).group(0)
            implied = {"heaviest": "weight", "lightest": "weight", "longest": "length", "shortest": "length", "oldest": "old", "youngest": "old"}.get(word)
            candidates = [c for c in frame.columns if implied and is_number(frame[c]) and implied in " ".join(column_aliases(c))]
            # "longest flippers": of the length columns, the one whose other words the question uses
            named = [c for c in candidates if any(re.search(rf"\b{re.escape(w)}", text) for w in re.split(r"[\s_]+", str(c).lower()) if len(w) > 2 and w != implied)]
            measure = (named or candidates or [None])[0]
            if measure is not None:
                intent.columns.insert(0, measure)
        if measure is not None and (superlative or top.group(1) in ("top", "bottom")):
            intent.limit = int(top.group(2))
            intent.rank = superlative or ("min" if top.group(1) == "bottom" else "max")
            intent.aggregation = None
    if intent.action not in ("explain", "predict"):
        plot_words = re.search(_VISUALIZE, text) is not None or intent.chart is not None
        intent.action = "visualize" if plot_words and (intent.aggregation in (None, "correlation") or intent.chart) else "describe"
    if intent.action == "predict" and not intent.columns and target and target in frame:
        intent.columns = [target]
    if (intent.chart == "line" or re.search(r"\bover time\b|\btrend", text)) and not intent.group_by:
        timeline = [c for c in frame.columns if _is_datetime(frame[c])] + year_columns
        if timeline and timeline[0] not in intent.columns:
            intent.group_by = timeline[0]
            intent.chart = "line"
    intent.confident = bool(intent.columns or intent.filters or intent.group_by or intent.aggregation or intent.assignments
                            or intent.action in ("explain", "predict"))
    return intent


LLM_INTENT_SYSTEM = (
    "You turn a question about a table into JSON with keys: action (visualize, predict, explain or describe), columns (list of "
    "column names from the table), aggregation (count, nunique, mean, median, sum, min, max, std, missing, correlation or null), "
    "group_by (a column name or null), filters (list of {column, op, value} with op one of ==, !=, >, >=, <, <=), chart "
    "(histogram, bar, box, scatter, line, heatmap, pie or null). Use only column names that exist. Reply with the JSON only."
)


def _llm_intent(question: str, frame: pd.DataFrame, provider: ChatProvider) -> Intent:
    columns = {str(c): str(frame[c].dtype) for c in frame.columns}
    reply = provider.complete(LLM_INTENT_SYSTEM, f"Columns: {json.dumps(columns)}\nQuestion: {question}")
    match = re.search(r"\{.*\}", reply, re.S)
    if not match:
        raise LLMError("the language model's reply held no JSON")
    try:
        data = json.loads(match.group(0))
    except ValueError as exc:
        raise LLMError("the language model's reply was not valid JSON") from exc
    known = {str(c): c for c in frame.columns}
    intent = Intent(source="llm")
    intent.action = data.get("action") if data.get("action") in ACTIONS else "describe"
    intent.columns = [known[c] for c in data.get("columns") or [] if c in known]
    intent.aggregation = data.get("aggregation") if data.get("aggregation") in AGGREGATIONS else None
    intent.group_by = known.get(data.get("group_by")) if isinstance(data.get("group_by"), str) else None
    intent.chart = data.get("chart") if data.get("chart") in CHARTS else None
    for item in data.get("filters") or []:
        if isinstance(item, dict) and item.get("column") in known and item.get("op") in ("==", "!=", ">", ">=", "<", "<="):
            intent.filters.append(Filter(known[item["column"]], item["op"], item.get("value")))
    intent.confident = bool(intent.columns or intent.filters or intent.group_by or intent.aggregation)
    return intent


# ---- the visualization selector -------------------------------------------------------------------

def select_visualization(intent: Intent, frame: pd.DataFrame) -> str:
    """The chart for an intent: the one asked for when it suits the columns, else by the columns' kinds."""
    columns = list(intent.columns)
    numeric = [c for c in columns if is_number(frame[c])]
    dates = [c for c in columns if _is_datetime(frame[c])]
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


# ---- answering ------------------------------------------------------------------------------------

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
    return Answer(question, intent, text, value, chart, _figure(chart, intent, rows, question))


def _describe(intent: Intent, rows: pd.DataFrame) -> tuple[str, Any]:
    how, group, columns, scope = intent.aggregation, intent.group_by, intent.columns, _scope(intent)
    numeric = [c for c in columns if is_number(rows[c])]
    if intent.limit and numeric:
        ranked = _ranked(intent, rows)
        label = _row_label(rows)
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


def _ranked(intent: Intent, rows: pd.DataFrame) -> pd.Series:
    column = next(c for c in intent.columns if is_number(rows[c]))
    values = rows[column].dropna()
    return values.nlargest(intent.limit, keep="first") if intent.rank == "max" else values.nsmallest(intent.limit, keep="first")


def _row_label(rows: pd.DataFrame) -> str | None:
    """A column that names rows for people (an identifier-like text column, else the first category)."""
    text = [c for c in rows.columns if not is_number(rows[c]) and not _is_datetime(rows[c])]
    unique = [c for c in text if rows[c].nunique() > 0.9 * len(rows)]
    return (unique or text or [None])[0]


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
                      _prediction_bar(selected, target, scope))
    if task == "classification" or not is_number(selected["prediction"]):
        counts = selected["prediction"].astype(str).value_counts()
        value = {k: int(v) for k, v in counts.items()}
        text = f"Predicted {target or 'label'}{scope}: " + ", ".join(f"{k} {v:,}" for k, v in value.items()) + "."
        if target and target in rows and rows[target].notna().any():
            known = rows[target].notna().to_numpy()
            accuracy = float((selected["prediction"].astype(str).to_numpy()[known] == rows[target].astype(str).to_numpy()[known]).mean())
            text += f" They match the recorded {target} in {accuracy:.1%} of {int(known.sum()):,} rows."
        return Answer(question, intent, text, value, "bar", _prediction_bar(selected, target, scope))
    mean = float(selected["prediction"].mean())
    x, y, _ = _hist(selected["prediction"])
    fig = go.Figure(go.Bar(x=x, y=y))
    fig.update_layout(title=f"Predicted {target}{scope}", xaxis_title=f"predicted {target}", yaxis_title="rows")
    return Answer(question, intent, f"The mean predicted {target}{scope} is {_fmt(mean)} over {len(selected):,} rows.", round(mean, 4), "histogram", fig)


def _prediction_bar(selected: pd.DataFrame, target: str | None, scope: str):
    import plotly.graph_objects as go

    counts = selected["prediction"].astype(str).value_counts()
    fig = go.Figure(go.Bar(x=list(counts.index), y=counts.astype(int).tolist()))
    fig.update_layout(title=f"Predicted {target}{scope}", yaxis_title="rows")
    return fig


def _hist(values: pd.Series, bins: int = 30):
    numbers = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    counts, edges = np.histogram(numbers, bins=bins)
    return ((edges[:-1] + edges[1:]) / 2).round(6).tolist(), counts.astype(int).tolist(), edges


def _figure(chart: str, intent: Intent, rows: pd.DataFrame, question: str):
    import plotly.graph_objects as go

    columns, group, how = intent.columns, intent.group_by, intent.aggregation
    numeric = [c for c in columns if is_number(rows[c])]
    title = question.strip()
    if intent.limit and numeric:
        ranked = _ranked(intent, rows)
        label = _row_label(rows)
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
                x, y, _ = _hist(part[column])
                traces.append(go.Bar(x=x, y=y, name=str(key), opacity=0.6))
            fig = go.Figure(traces)
            fig.update_layout(barmode="overlay")
        else:
            x, y, _ = _hist(rows[column])
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
        axis = next((c for c in columns if _is_datetime(rows[c])), group)
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


def write_answer_chart(result: Answer, path: Path) -> Path | None:
    """A self-contained HTML page with the answer and its chart, in the run report's style (plotly.js inlined)."""
    import html as html_lib

    from automodel.outputs.report_page import figure_html, page_html, style_figure

    if result.figure is None:
        return None
    body = (f"<h1>{html_lib.escape(result.question)}</h1><p id='answer'>{html_lib.escape(result.text)}</p>"
            + figure_html("answer", style_figure(result.figure)))
    write_text_atomic(path, page_html(result.question, body))
    result.chart_path = str(path)
    return path
