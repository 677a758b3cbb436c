"""A second opinion on ambiguous columns: what the header means (MiniLM) or what a language model says.

Rule-based inference (automodel.ingest.roles) decides most columns with confidence. Where it is unsure
(confidence below ``AMBIGUOUS_BELOW``) and the header is a real word or phrase, the header is
embedded with the packaged all-MiniLM-L6-v2 model and compared with short descriptions of each
role. A suggestion is taken only when it is clearly the closest role, the values allow it
(latitudes lie in [-90, 90], a city column holds text, ...) and the user has not labelled the
column. The model is loaded lazily, once per process, and only when such a column exists, so
plain runs on clear tables never load it.

It is off by default (AUTOMODEL_EMBED_ROLES=1 turns it on): on the 570 labelled real columns of
bench/role_labels.csv it changed no correct role into a better one and turned one categorical into
a city (accuracy 0.991 -> 0.990), and loading the model costs seconds. Widening it to override
confident generic roles when a header reads like a specific one cost 0.012 (price -> currency,
continent -> country). Its use is headers the rules do not know (``telefono``, ``ciudad``).

``refine_with_llm`` does the same with a chat model behind ENABLE_LLM_PREPROCESSING: it is asked
for one role per ambiguous column as JSON and held to the same value checks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from automodel.errors import AutomodelError
from automodel.ingest.role_words import ROLES, ColumnMeta, _name_tokens, _state_words
from resources.settings import current as current_settings

AMBIGUOUS_BELOW = 0.7
MIN_SIMILARITY = 0.5
MIN_MARGIN = 0.04
_GENERIC = {"column", "col", "field", "var", "variable", "unnamed", "value", "values", "data", "x", "y", "z", "v", "item", "other", "misc"}

ROLE_PHRASES = {
    "numeric": ["amount", "quantity", "measurement", "count", "total"],
    "categorical": ["category", "type", "class", "group", "kind"],
    "boolean": ["yes or no flag", "indicator", "true or false"],
    "date": ["date", "calendar day"],
    "datetime": ["timestamp", "date and time"],
    "text": ["free text comment", "description", "notes"],
    "identifier": ["identifier", "id", "record key", "serial number"],
    "zip_code": ["zip code", "postal code", "postcode"],
    "fips_code": ["county fips code", "geoid"],
    "state": ["US state", "state abbreviation", "province"],
    "city": ["city", "town", "municipality"],
    "country": ["country", "nation"],
    "latitude": ["latitude"],
    "longitude": ["longitude"],
    "email": ["email address", "e-mail"],
    "phone": ["phone number", "telephone", "mobile number"],
    "url": ["website url", "web link", "homepage"],
    "currency": ["price in dollars", "cost", "money amount"],
    "percent": ["percentage", "percent share"],
}


def enabled() -> bool:
    return current_settings().embed_roles


def informative_header(name: str) -> bool:
    """A header worth embedding: a word of three or more letters that is not a placeholder such as column_3."""
    if re.fullmatch(r"(column|col|field|var|unnamed)[\s_:.-]*\d*", str(name).strip(), re.IGNORECASE):
        return False
    return any(len(t) >= 3 and t.isalpha() and t not in _GENERIC for t in _name_tokens(name))


def _readable(name: str) -> str:
    return " ".join(sorted(_name_tokens(name), key=lambda t: str(name).lower().find(t)))


@lru_cache(maxsize=1)
def _role_vectors() -> tuple[list[str], np.ndarray]:
    from automodel.embedder import embed

    roles, phrases = [], []
    for role, texts in ROLE_PHRASES.items():
        for text in texts:
            roles.append(role)
            phrases.append(text)
    return roles, embed(phrases)


def suggest_roles(headers: list[str]) -> list[tuple[str, float, float]]:
    """(role, similarity, margin over the next role) for each header, from MiniLM embeddings."""
    from automodel.embedder import embed

    if not headers:
        return []
    roles, vectors = _role_vectors()
    queries = embed([_readable(h) or str(h) for h in headers])
    scores = queries @ vectors.T
    out = []
    for row in scores:
        best: dict[str, float] = {}
        for role, score in zip(roles, row):
            best[role] = max(best.get(role, -1.0), float(score))
        ranked = sorted(best.items(), key=lambda kv: -kv[1])
        out.append((ranked[0][0], ranked[0][1], ranked[0][1] - ranked[1][1]))
    return out


def values_allow(role: str, clean: pd.Series, raw: pd.Series | None) -> bool:
    """Whether the column's values can hold ``role`` (a header never overrides what the values rule out)."""
    present = clean.dropna()
    if present.empty:
        return False
    numeric = pd.api.types.is_numeric_dtype(clean) and not pd.api.types.is_bool_dtype(clean)
    text = present.astype(str).str.strip()
    if role in ("latitude", "longitude"):
        limit = 90 if role == "latitude" else 180
        return numeric and bool(present.astype(float).between(-limit, limit).all())
    if role in ("zip_code", "fips_code"):
        source = (raw.dropna().astype(str).str.strip() if raw is not None else text)
        return bool(source.str.fullmatch(r"\d{4,5}(-\d{4})?").mean() > 0.95)
    if role == "percent":
        return numeric and bool(present.astype(float).between(-100, 100).all())
    if role in ("numeric", "currency"):
        return numeric
    if role == "boolean":
        return present.nunique() == 2
    if role in ("date", "datetime"):
        return pd.api.types.is_datetime64_any_dtype(clean)
    if role == "state":
        return bool(text.str.lower().isin(_state_words()).mean() > 0.5) or (numeric and bool(present.astype(float).between(1, 78).all()))
    if role in ("city", "country", "text"):
        return not numeric and bool(text.str.contains(r"[A-Za-z]", regex=True).mean() > 0.9)
    if role == "email":
        return bool(text.str.contains("@").mean() > 0.8)
    if role == "url":
        return bool(text.str.match(r"(?i)^(https?://|www\.)").mean() > 0.8)
    if role == "phone":
        return bool(text.str.count(r"\d").mean() >= 7)
    if role == "identifier":
        return present.nunique() > 0.5 * len(present)
    if role == "categorical":
        return present.nunique() <= max(50, 0.05 * len(present))
    return False


@dataclass
class Refinement:
    column: str
    old_role: str
    new_role: str
    similarity: float
    source: str


def _ambiguous(metas: list[ColumnMeta]) -> list[ColumnMeta]:
    """Columns the rules were unsure of, or gave a generic role without understanding the header."""
    return [m for m in metas if not m.user_labelled and informative_header(m.name) and m.confidence < AMBIGUOUS_BELOW]


def refine_with_embeddings(metas: list[ColumnMeta], clean: pd.DataFrame, raw: pd.DataFrame | None = None) -> list[Refinement]:
    """Re-decide ambiguous columns by what their header means; returns what changed (metas are updated in place)."""
    candidates = _ambiguous(metas)
    if not candidates:
        return []
    changes = []
    for meta, (role, similarity, margin) in zip(candidates, suggest_roles([m.name for m in candidates])):
        if similarity < MIN_SIMILARITY or margin < MIN_MARGIN:
            continue
        raw_series = raw[meta.name] if raw is not None and meta.name in raw.columns else None
        if role == meta.role or not values_allow(role, clean[meta.name], raw_series):
            continue
        changes.append(Refinement(meta.name, meta.role, role, round(similarity, 3), "minilm"))
        meta.role, meta.confidence = role, round(min(0.85, 0.5 + similarity / 2), 3)
        meta.reason = f"header reads as {role.replace('_', ' ')} (MiniLM similarity {similarity:.2f}); values allow it"
    return changes


def refine_with_llm(metas: list[ColumnMeta], clean: pd.DataFrame, provider, raw: pd.DataFrame | None = None) -> list[Refinement]:
    """Ask a chat model (ENABLE_LLM_PREPROCESSING) for the roles of ambiguous columns; keep answers the values allow."""
    candidates = [m for m in metas if not m.user_labelled and m.confidence < AMBIGUOUS_BELOW]
    if not candidates:
        return []
    from automodel.safety import redact_pii

    columns = [{"column": m.name, "current_role": m.role, "examples": [redact_pii(str(v))[:40] for v in m.sample_values[:5]]} for m in candidates]
    system = ("You classify table columns. Answer with one JSON object mapping each column name to one role from this list: "
              + ", ".join(ROLES) + ". No other text.")
    try:
        answer = provider.complete(system, json.dumps(columns))
        parsed = json.loads(answer[answer.index("{"): answer.rindex("}") + 1])
    except (AutomodelError, ValueError, OSError):  # an unreachable or rambling model leaves the rule-based roles as they are
        return []
    changes = []
    for meta in candidates:
        role = parsed.get(meta.name) if isinstance(parsed, dict) else None
        raw_series = raw[meta.name] if raw is not None and meta.name in raw.columns else None
        if role in ROLES and role != meta.role and values_allow(role, clean[meta.name], raw_series):
            changes.append(Refinement(meta.name, meta.role, role, 0.0, "llm"))
            meta.role, meta.confidence, meta.reason = role, 0.75, f"language model: {role}; values allow it"
    return changes
