"""Column roles: one ``ColumnMeta`` per column, with a confidence, plus target guessing and dataset tags."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

ROLES = (
    "numeric", "categorical", "boolean", "date", "datetime", "text", "identifier", "zip_code", "fips_code",
    "state", "city", "country", "latitude", "longitude", "email", "phone", "url", "currency", "percent",
)
# Roles whose values can key a join with a lake table.
KEY_ROLES = ("state", "fips_code", "zip_code", "city", "country")

US_STATE_NAMES = {
    "alabama", "alaska", "arizona", "arkansas", "california", "colorado", "connecticut", "delaware",
    "district of columbia", "florida", "georgia", "hawaii", "idaho", "illinois", "indiana", "iowa", "kansas",
    "kentucky", "louisiana", "maine", "maryland", "massachusetts", "michigan", "minnesota", "mississippi",
    "missouri", "montana", "nebraska", "nevada", "new hampshire", "new jersey", "new mexico", "new york",
    "north carolina", "north dakota", "ohio", "oklahoma", "oregon", "pennsylvania", "rhode island",
    "south carolina", "south dakota", "tennessee", "texas", "utah", "vermont", "virginia", "washington",
    "west virginia", "wisconsin", "wyoming", "puerto rico",
}
US_STATE_ABBRS = {
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS", "KY",
    "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH",
    "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY", "PR",
}
COUNTRY_HINTS = {
    "united states", "usa", "canada", "mexico", "germany", "france", "united kingdom", "uk", "china", "japan",
    "india", "brazil", "italy", "spain", "australia", "russia", "netherlands", "sweden", "norway", "switzerland",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_URL = re.compile(r"^(https?://|www\.)\S+$", re.I)
_PHONE = re.compile(r"^\+?[\d\s().-]{7,20}$")
_ZIP = re.compile(r"^\d{5}(-\d{4})?$")
_CURRENCY = re.compile(r"^\(?[-+]?[$€£¥]\s?[\d,]+(\.\d+)?\)?$")
_PERCENT = re.compile(r"^[-+]?[\d.]+\s?%$")


@dataclass
class ColumnMeta:
    name: str
    role: str
    dtype: str
    missing_count: int
    unique_count: int
    sample_values: list = field(default_factory=list)
    confidence: float = 1.0
    reason: str = ""
    user_labelled: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _name_tokens(name: str) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))
    return {t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t}


def _share(values: pd.Series, pattern: re.Pattern) -> float:
    if values.empty:
        return 0.0
    return float(values.astype(str).str.strip().str.match(pattern).mean())


def infer_role(name: str, raw: pd.Series | None, clean: pd.Series) -> tuple[str, float, str]:
    """Return (role, confidence, reason) for one column.

    ``raw`` holds the values as loaded (text), ``clean`` the typed values after cleaning.
    """
    tokens = _name_tokens(name)
    present = clean.dropna()
    n = max(len(present), 1)
    unique = present.astype(str).nunique() if len(present) else 0
    raw_present = raw.dropna().astype(str).str.strip() if raw is not None else present.astype(str)
    raw_present = raw_present[raw_present != ""]
    sample = raw_present.sample(min(len(raw_present), 2000), random_state=0) if len(raw_present) else raw_present

    if pd.api.types.is_bool_dtype(clean) or (unique == 2 and set(present.astype(str).str.lower()) <= {"0", "1", "true", "false", "0.0", "1.0"}):
        return "boolean", 0.95, "two values"
    if pd.api.types.is_datetime64_any_dtype(clean):
        times = present.dt.time if len(present) else []
        has_time = len(present) and (pd.Series(times).astype(str) != "00:00:00").any()
        return ("datetime" if has_time else "date"), 0.95, "parsed as dates"

    if len(sample):
        if _share(sample, _EMAIL) > 0.9:
            return "email", 0.97, "values look like e-mail addresses"
        if _share(sample, _URL) > 0.9:
            return "url", 0.97, "values look like URLs"
        if _share(sample, _CURRENCY) > 0.8:
            return "currency", 0.9, "values carry a currency symbol"
        if _share(sample, _PERCENT) > 0.8:
            return "percent", 0.9, "values end with %"

    is_numeric = pd.api.types.is_numeric_dtype(clean)
    if is_numeric and len(present):
        values = present.astype(float)
        integral = bool(np.all(np.mod(values, 1) == 0))
        if tokens & {"lat", "latitude"} and values.between(-90, 90).all():
            return "latitude", 0.95, "named latitude, values in [-90, 90]"
        if tokens & {"lon", "lng", "long", "longitude"} and values.between(-180, 180).all():
            return "longitude", 0.95, "named longitude, values in [-180, 180]"
        raw_lengths = sample.str.len() if len(sample) else pd.Series(dtype=int)
        if tokens & {"zip", "zipcode", "postal", "postcode", "zcta"} and integral and values.between(0, 99999).all():
            return "zip_code", 0.95, "named zip, five-digit codes"
        if tokens & {"fips", "geoid"} and integral:
            if values.max() < 100:
                return "state", 0.85, "named fips, two-digit state codes"
            return "fips_code", 0.95, "named fips"
        if tokens & {"state", "st"} and integral and values.between(1, 78).all() and unique <= 56:
            return "state", 0.8, "named state, state FIPS numbers"
        if tokens & {"pct", "percent", "rate"} and values.between(0, 100).all():
            return "percent", 0.6, "named as a percent or rate"
        if integral and unique == len(present) and len(present) > 20 and (tokens & {"id", "key", "uuid", "index", "no", "number", "code"} or _is_sequence(values)):
            return "identifier", 0.9, "unique integers named or ordered like an id"
        if len(raw_lengths) and integral and (raw_lengths == 5).mean() > 0.95 and sample.str.startswith("0").any() and values.max() <= 99999:
            return "zip_code" if tokens & {"zip", "postal"} else "fips_code", 0.7, "five-digit codes with leading zeros"
        if integral and unique <= min(10, max(2, n // 20)) and not tokens & {"count", "amount", "price", "age", "year"}:
            return "categorical", 0.6, f"few distinct integers ({unique})"
        return "numeric", 0.95, "numbers"

    if not len(present):
        return "categorical", 0.3, "no values"
    text = present.astype(str)
    lowered = text.str.strip().str.lower()
    if lowered.isin(US_STATE_NAMES).mean() > 0.9 or text.str.strip().isin(US_STATE_ABBRS).mean() > 0.9:
        return "state", 0.95, "US state names or abbreviations"
    if tokens & {"country", "nation"} or lowered.isin(COUNTRY_HINTS).mean() > 0.5:
        return "country", 0.8, "named country or country names"
    if tokens & {"city", "town", "municipality"}:
        return "city", 0.85, "named city"
    if tokens & {"zip", "zipcode", "postal", "postcode"} and text.str.match(_ZIP).mean() > 0.9:
        return "zip_code", 0.95, "named zip, zip-shaped values"
    if tokens & {"fips", "geoid"} and text.str.fullmatch(r"\d{2,5}").mean() > 0.9:
        return "fips_code", 0.9, "named fips, digit codes"
    if len(sample) and _share(sample, _PHONE) > 0.9 and sample.str.count(r"\d").mean() >= 7 and tokens & {"phone", "tel", "mobile", "fax", "cell"}:
        return "phone", 0.9, "named phone, phone-shaped values"
    mean_words = text.str.split().str.len().mean()
    ratio = unique / n
    if mean_words >= 4 and ratio > 0.5:
        return "text", 0.85, "long free text"
    if ratio > 0.95 and len(present) > 20:
        return "identifier", 0.8, "nearly every value unique"
    if tokens & {"id", "uuid", "guid"} and ratio > 0.5:
        return "identifier", 0.8, "named id"
    confidence = 0.9 if ratio < 0.05 or unique <= 20 else 0.6
    return "categorical", confidence, f"{unique} distinct labels"


def _is_sequence(values: pd.Series) -> bool:
    diffs = np.diff(values.to_numpy())
    return len(diffs) > 0 and bool(np.all(diffs == 1))


def infer_column_meta(clean: pd.DataFrame, raw: pd.DataFrame | None = None, user_labels: dict[str, str] | None = None) -> list[ColumnMeta]:
    user_labels = user_labels or {}
    metas = []
    for col in clean.columns:
        series = clean[col]
        raw_series = raw[col] if raw is not None and col in raw.columns else None
        if col in user_labels:
            role, confidence, reason, labelled = user_labels[col], 1.0, "labelled by the user", True
        else:
            role, confidence, reason = infer_role(col, raw_series, series)
            labelled = False
        samples = [_plain(v) for v in series.dropna().head(5).tolist()]
        metas.append(ColumnMeta(
            name=col, role=role, dtype=str(series.dtype), missing_count=int(series.isna().sum()),
            unique_count=int(series.nunique(dropna=True)), sample_values=samples, confidence=round(confidence, 3),
            reason=reason, user_labelled=labelled,
        ))
    return metas


def _plain(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


TARGET_NAMES = ("target", "label", "class", "y", "outcome", "response", "churn", "default", "price", "sales", "species")
_NOT_TARGET_ROLES = {"identifier", "text", "email", "url", "phone", "date", "datetime", "zip_code", "fips_code", "state", "city", "country", "latitude", "longitude"}


def guess_target(frame: pd.DataFrame, metas: list[ColumnMeta]) -> tuple[str | None, str]:
    """Guess the target column; return (column or None, the reason)."""
    by_name = {m.name.lower(): m for m in metas}
    for name in TARGET_NAMES:
        meta = by_name.get(name)
        if meta and meta.role not in _NOT_TARGET_ROLES and meta.missing_count < len(frame):
            return meta.name, f"column is named {meta.name!r}, a usual target name"
    candidates = [m for m in metas if m.role not in _NOT_TARGET_ROLES and m.missing_count < len(frame) * 0.5 and m.unique_count > 1]
    if not candidates:
        return None, "no column looks like a target (all are identifiers, dates, keys or mostly empty)"
    last = candidates[-1]
    return last.name, f"last usable column ({last.role}); pass --target to choose another"


_TAG_WORDS = {
    "finance": {"price", "cost", "revenue", "sales", "income", "profit", "amount", "loan", "balance", "credit", "payment"},
    "health": {"patient", "diagnosis", "disease", "blood", "bmi", "glucose", "age", "hospital"},
    "retail": {"product", "sku", "order", "customer", "store", "quantity", "inventory", "stock"},
    "environment": {"temperature", "rain", "weather", "co2", "emission", "species", "island"},
    "demographics": {"population", "income", "unemployment", "census", "household", "education"},
}


def categorize_dataset(frame: pd.DataFrame, metas: list[ColumnMeta]) -> list[str]:
    """Category tags for the catalog: domain words from the headers plus shape tags."""
    tokens = set().union(*(_name_tokens(m.name) for m in metas)) if metas else set()
    tags = sorted(tag for tag, words in _TAG_WORDS.items() if tokens & words)
    roles = {m.role for m in metas}
    if roles & {"date", "datetime"}:
        tags.append("time_series")
    if roles & {"state", "fips_code", "zip_code", "city", "country", "latitude", "longitude"}:
        tags.append("geographic")
    if "text" in roles:
        tags.append("text")
    return tags
