"""Reading a question about a run's data: what it asks for (an ``Intent``), from heuristics or a language model.

``parse_intent`` reads a question with heuristics (column names and their plain-English forms,
category values, comparisons, "by X" groupings, aggregation words) and, only when those find
nothing to work with, asks the configured language model for the same structure as JSON.
Answering the intent is ``automodel.outputs.ask``; its chart, ``automodel.outputs.ask_charts``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

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


def is_datetime(series: pd.Series) -> bool:
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
        timeline = [c for c in frame.columns if is_datetime(frame[c])] + year_columns
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
