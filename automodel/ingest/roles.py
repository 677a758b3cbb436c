"""Column roles: one ``ColumnMeta`` per column, with a confidence, plus target guessing and dataset tags."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pandas as pd

from automodel.ingest import embed_roles
from automodel.ingest.role_words import ColumnMeta, _name_tokens, _state_words

# Roles whose values can key a join with a lake table.
KEY_ROLES = ("state", "fips_code", "zip_code", "city", "country")

COUNTRY_NAMES = {
    "afghanistan", "albania", "algeria", "andorra", "angola", "antigua and barbuda", "argentina", "armenia", "australia",
    "austria", "azerbaijan", "bahamas", "bahrain", "bangladesh", "barbados", "belarus", "belgium", "belize", "benin",
    "bhutan", "bolivia", "bosnia and herzegovina", "botswana", "brazil", "brunei", "bulgaria", "burkina faso", "burundi",
    "cambodia", "cameroon", "canada", "cape verde", "central african republic", "chad", "chile", "china", "colombia",
    "comoros", "congo", "congo, dem. rep.", "congo, rep.", "democratic republic of the congo", "costa rica",
    "cote d'ivoire", "ivory coast", "croatia", "cuba", "cyprus", "czech republic", "czechia", "denmark", "djibouti",
    "dominica", "dominican republic", "ecuador", "egypt", "el salvador", "equatorial guinea", "eritrea", "estonia",
    "eswatini", "swaziland", "ethiopia", "fiji", "finland", "france", "gabon", "gambia", "georgia", "germany", "ghana",
    "greece", "grenada", "guatemala", "guinea", "guinea-bissau", "guyana", "haiti", "honduras", "hong kong", "hungary",
    "iceland", "india", "indonesia", "iran", "iraq", "ireland", "israel", "italy", "jamaica", "japan", "jordan",
    "kazakhstan", "kenya", "kiribati", "north korea", "south korea", "korea", "korea, rep.", "korea, dem. rep.", "kosovo",
    "kuwait", "kyrgyzstan", "laos", "latvia", "lebanon", "lesotho", "liberia", "libya", "liechtenstein", "lithuania",
    "luxembourg", "macedonia", "north macedonia", "madagascar", "malawi", "malaysia", "maldives", "mali", "malta",
    "marshall islands", "mauritania", "mauritius", "mexico", "micronesia", "moldova", "monaco", "mongolia", "montenegro",
    "morocco", "mozambique", "myanmar", "burma", "namibia", "nauru", "nepal", "netherlands", "new zealand", "nicaragua",
    "niger", "nigeria", "norway", "oman", "pakistan", "palau", "palestine", "panama", "papua new guinea", "paraguay",
    "peru", "philippines", "poland", "portugal", "puerto rico", "qatar", "romania", "russia", "russian federation",
    "rwanda", "saint kitts and nevis", "saint lucia", "saint vincent and the grenadines", "samoa", "san marino",
    "sao tome and principe", "saudi arabia", "senegal", "serbia", "seychelles", "sierra leone", "singapore", "slovakia",
    "slovenia", "solomon islands", "somalia", "south africa", "south sudan", "spain", "sri lanka", "sudan", "suriname",
    "sweden", "switzerland", "syria", "taiwan", "tajikistan", "tanzania", "thailand", "timor-leste", "east timor", "togo",
    "tonga", "trinidad and tobago", "tunisia", "turkey", "turkiye", "turkmenistan", "tuvalu", "uganda", "ukraine",
    "united arab emirates", "united kingdom", "uk", "great britain", "england", "scotland", "wales", "united states",
    "united states of america", "usa", "us", "u.s.", "u.s.a.", "uruguay", "uzbekistan", "vanuatu", "vatican city",
    "venezuela", "vietnam", "viet nam", "yemen", "zambia", "zimbabwe", "greenland", "west germany", "east germany",
    "soviet union", "ussr", "yugoslavia", "czechoslovakia", "macao", "macau", "bermuda", "aruba", "curacao",
}
COUNTRY_HINTS = COUNTRY_NAMES  # kept for callers of the first version
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_URL = re.compile(r"^(https?://|www\.)\S+$", re.IGNORECASE)
_PHONE = re.compile(r"^\+?[\d\s().-]{7,20}$")
_ZIP = re.compile(r"^\d{5}(-\d{4})?$")
_CURRENCY = re.compile(r"^\(?[-+]?\s?(?:[$€£¥]\s?[\d,]+(?:\.\d+)?|[\d,]+(?:\.\d+)?\s?(?:USD|EUR|GBP))\)?$", re.IGNORECASE)
_PERCENT = re.compile(r"^\(?[-+]?[\d.,]+\s?%\)?$")
_CODE = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_-]{4,}$")

# Header words. They only decide between roles the values allow.
ID_WORDS = {"id", "pid", "uid", "fid", "cid", "sid", "key", "uuid", "guid", "index", "idx", "rownames", "rowid", "pk", "no", "number", "num", "code"}
CODE_WORDS = {"month", "mo", "mon", "precinct", "district", "region", "zone", "code", "type", "class", "category", "group", "tz",
              "quarter", "qtr", "weekday", "dow", "level", "grade", "rank", "cluster", "division", "ward", "sector", "status", "flag"}
PERCENT_WORDS = {"percent", "percentage", "pct", "perc"}
TEXT_WORDS = {"note", "notes", "comment", "comments", "description", "desc", "remarks", "remark", "text", "review", "message",
              "summary", "details", "reason", "body", "feedback", "address"}
NAME_HEADERS = {"name", "title", "movie", "film", "full name", "fullname", "item", "product", "product name", "item name"}
PERSON_NAME_WORDS = {"forename", "surname", "firstname", "lastname", "given", "family"}
KEY_WORDS = {"id", "uuid", "guid", "pid", "uid"}
NOT_A_POSITION = {"delta", "diff", "change", "offset", "error", "err", "sd", "se", "var", "std"}
LAT_WORDS, LON_WORDS = {"lat", "latitude"}, {"lon", "lng", "long", "longitude"}
ZIP_WORDS = {"zip", "zipcode", "postal", "postcode", "zcta", "zip5"}
FIPS_WORDS = {"fips", "geoid"}
STATE_WORDS = {"state", "st", "province"}
CITY_WORDS = {"city", "town", "municipality", "capital", "village"}
COUNTRY_WORDS = {"country", "nation", "nationality"}


@lru_cache(maxsize=1)
def _state_fips() -> frozenset[str]:
    import us

    return frozenset(s.fips for s in us.states.STATES_AND_TERRITORIES + [us.states.DC] if s.fips)


@lru_cache(maxsize=1)
def county_fips() -> frozenset[str]:
    """Every county's five-digit FIPS code; the District of Columbia counts as a state with one county (11001), named
    explicitly since older releases of ``us`` leave it out of STATES_AND_TERRITORIES."""
    import us

    return frozenset(c.fips for s in us.states.STATES_AND_TERRITORIES + [us.states.DC] for c in (s.counties or []))


@lru_cache(maxsize=1)
def _zip_codes_and_cities() -> tuple[frozenset[str], frozenset[str]]:
    import zipcodes

    rows = zipcodes.list_all()
    return frozenset(r["zip_code"] for r in rows), frozenset(r["city"].lower() for r in rows if r.get("city"))


def is_number(series: pd.Series) -> bool:
    """Quantities: a numeric dtype, booleans excluded (pandas counts them as numbers)."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _header(name: str) -> str:
    return " ".join(re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name)).lower())).strip()


def _share(values: pd.Series, pattern: re.Pattern) -> float:
    if values.empty:
        return 0.0
    return float(values.astype(str).str.strip().str.match(pattern).mean())


def _share_in(values: pd.Series, words) -> float:
    if values.empty:
        return 0.0
    # A plain set lookup per value: Series.isin on pyarrow strings converts every word of the set on each call (a quarter
    # second for the US city or zip code sets, on every text column of every run).
    normalized = values.astype(str).str.strip().str.lower()
    return float(np.fromiter((value in words for value in normalized), dtype=bool, count=len(normalized)).mean())


def _has_percent_word(tokens: set[str]) -> bool:
    return any(t in PERCENT_WORDS or (t.startswith("perc") and not t.startswith("percept")) or t.startswith("pct") for t in tokens)


def infer_role(name: str, raw: pd.Series | None, clean: pd.Series) -> tuple[str, float, str]:
    """Return (role, confidence, reason) for one column.

    ``raw`` holds the values as loaded (text), ``clean`` the typed values after cleaning. Values decide
    first; the header decides between the roles the values allow.
    """
    tokens = _name_tokens(name)
    header = _header(name)
    present = clean.dropna()
    n = max(len(present), 1)
    try:
        unique = int(present.nunique()) if len(present) else 0
    except TypeError:
        unique = int(present.astype(str).nunique())
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

    if pd.api.types.is_numeric_dtype(clean) and len(present):
        return _numeric_role(tokens, present.astype(float), sample, unique)
    if not len(present):
        return "categorical", 0.3, "no values"
    return _text_role(tokens, header, present.astype(str), sample, unique, n)


def _numeric_role(tokens: set[str], values: pd.Series, sample: pd.Series, unique: int) -> tuple[str, float, str]:
    n = len(values)
    integral = bool(np.all(np.mod(values.to_numpy(), 1) == 0))
    if tokens & LAT_WORDS and not tokens & NOT_A_POSITION and values.between(-90, 90).all():
        return "latitude", 0.95, "named latitude, values in [-90, 90]"
    if tokens & LON_WORDS and not tokens & NOT_A_POSITION and values.between(-180, 180).all():
        return "longitude", 0.95, "named longitude, values in [-180, 180]"
    if tokens & ZIP_WORDS and integral and values.between(0, 99999).all():
        return "zip_code", 0.95, "named zip, five-digit codes"
    if tokens & FIPS_WORDS and integral:
        if values.max() < 100:
            return "state", 0.85, "named fips, two-digit state codes"
        return "fips_code", 0.95, "named fips"
    if tokens & STATE_WORDS and integral and values.between(1, 78).all() and unique <= 56:
        return "state", 0.8, "named state, state FIPS numbers"
    if _has_percent_word(tokens) and values.between(0, 100).all():
        return "percent", 0.8, "named as a percentage, values in [0, 100]"
    if integral and unique == n and n > 20 and (tokens & ID_WORDS or _is_sequence(values)):
        return "identifier", 0.9, "unique integers named or ordered like an id"
    if integral and tokens & KEY_WORDS and unique > 20:
        return "identifier", 0.8, "integers named as an id (a key, possibly repeated)"
    raw_lengths = sample.str.len() if len(sample) else pd.Series(dtype=int)
    if len(raw_lengths) and integral and (raw_lengths == 5).mean() > 0.95 and sample.str.startswith("0").any() and values.max() <= 99999:
        return ("zip_code" if tokens & ZIP_WORDS else "fips_code"), 0.7, "five-digit codes with leading zeros"
    if integral and tokens & CODE_WORDS and unique <= 100:
        return "categorical", 0.8, f"integer codes named {'/'.join(sorted(tokens & CODE_WORDS))} ({unique} values)"
    if integral and unique <= 10:
        return "numeric", 0.7, f"few distinct integers ({unique}): counts or codes"
    return "numeric", 0.95, "numbers"


def _text_role(tokens: set[str], header: str, text: pd.Series, sample: pd.Series, unique: int, n: int) -> tuple[str, float, str]:
    values = sample if len(sample) else text
    stripped = values.str.strip()
    ratio = unique / n
    digits = stripped.str.fullmatch(r"\d+").mean()
    if tokens & COUNTRY_WORDS:
        return "country", 0.9, "named country"
    if tokens & ZIP_WORDS and stripped.str.match(_ZIP).mean() > 0.9:
        return "zip_code", 0.95, "named zip, zip-shaped values"
    if tokens & FIPS_WORDS and digits > 0.9:
        lengths = stripped.str.len()
        if (lengths <= 2).mean() > 0.9:
            return "state", 0.9, "named fips, two-digit state codes"
        return "fips_code", 0.9, "named fips, digit codes"
    state_share = _share_in(stripped, _state_words())
    if state_share > 0.9 or (tokens & STATE_WORDS and state_share > 0.6):
        return "state", 0.95 if state_share > 0.9 else 0.8, "US state names or abbreviations"
    if tokens & CITY_WORDS and not tokens & CODE_WORDS:
        return "city", 0.85, "named city"
    if digits > 0.95 and (stripped.str.len() == 5).mean() > 0.95:
        zips, _ = _zip_codes_and_cities()
        zip_share, county_share = _share_in(stripped, zips), _share_in(stripped, county_fips())
        if county_share > 0.9 and county_share > zip_share:
            return "fips_code", 0.8, "five-digit county FIPS codes"
        if zip_share > 0.9:
            return "zip_code", 0.8, "five-digit US zip codes"
    if digits > 0.95 and (stripped.str.len() == 2).mean() > 0.95 and _share_in(stripped, _state_fips()) > 0.95 and tokens & STATE_WORDS:
        return "state", 0.85, "named state, two-digit state FIPS"
    if _share_in(stripped, COUNTRY_NAMES) > 0.7:
        return "country", 0.85, "country names"
    if len(values) and _share(values, _PHONE) > 0.9 and values.str.count(r"\d").mean() >= 7 and tokens & {"phone", "tel", "telephone", "mobile", "fax", "cell"}:
        return "phone", 0.9, "named phone, phone-shaped values"
    if (header in NAME_HEADERS and (ratio > 0.3 or unique > 100)) or (
            tokens & PERSON_NAME_WORDS or ({"first", "last", "full"} & tokens and "name" in tokens)):
        return "identifier", 0.75, "names of the rows' entities or people"
    words = text.str.split().str.len().mean()
    if words >= 4 and ratio > 0.5:
        return "text", 0.85, "long free text"
    if tokens & TEXT_WORDS and words >= 2:
        return "text", 0.75, f"named {'/'.join(sorted(tokens & TEXT_WORDS))}, several words per value"
    if ratio > 0.95 and n > 20:
        return "identifier", 0.8, "nearly every value unique"
    if tokens & {"id", "uuid", "guid"} and ratio > 0.5:
        return "identifier", 0.8, "named id"
    if unique > 50 and ratio > 0.3 and stripped.str.match(_CODE).mean() > 0.9:
        return "identifier", 0.75, "many distinct letter-and-digit codes"
    if digits < 0.5 and unique >= 5:
        _, cities = _zip_codes_and_cities()
        if _share_in(stripped, cities) > 0.9 and _share_in(stripped, _state_words()) < 0.3:
            return "city", 0.7, "US city names"
    confidence = 0.9 if ratio < 0.05 or unique <= 20 else 0.6
    return "categorical", confidence, f"{unique} distinct labels"


def _is_sequence(values: pd.Series) -> bool:
    """Strictly increasing in row order: a row number, even when sampled."""
    diffs = np.diff(values.to_numpy())
    return len(diffs) > 0 and bool(np.all(diffs > 0))


def infer_column_meta(clean: pd.DataFrame, raw: pd.DataFrame | None = None, user_labels: dict[str, str] | None = None,
                      use_embeddings: bool | None = None) -> list[ColumnMeta]:
    """One ColumnMeta per column: the user's label where given, else the inferred role. Ambiguous columns with a
    meaningful header can get a second opinion from MiniLM (automodel.ingest.embed_roles, AUTOMODEL_EMBED_ROLES=1)."""
    from automodel.safety import redact_value

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
        # Samples are shown in the UI and in notifications: personal data is redacted there.
        samples = [redact_value(v, role, column=str(col)) for v in (_plain(v) for v in series.dropna().head(5).tolist())]
        try:
            unique = int(series.nunique(dropna=True))
        except TypeError:  # unhashable cells (lists from JSON)
            unique = int(series.dropna().astype(str).nunique())
        metas.append(ColumnMeta(
            name=col, role=role, dtype=str(series.dtype), missing_count=int(series.isna().sum()),
            unique_count=unique, sample_values=samples, confidence=round(confidence, 3),
            reason=reason, user_labelled=labelled,
        ))
    if (embed_roles.enabled() if use_embeddings is None else use_embeddings):
        embed_roles.refine_with_embeddings(metas, clean, raw)
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
