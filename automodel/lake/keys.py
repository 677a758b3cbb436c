"""Join keys: the same place or moment written different ways maps to one canonical value.

Key kinds and their canonical form:
- ``state``: 2-digit state FIPS (from a name, a postal abbreviation or a FIPS number);
- ``fips_code``: 5-digit county FIPS; ``zip_code``: 5-digit zip (leading zeros restored, ZIP+4 cut);
- ``country``, ``city``: case- and whitespace-folded names;
- ``city_state``: folded city and state FIPS (``"springfield|17"``);
- ``hour``: a clock hour ``"2013-01-01 05"`` (a timestamp truncated to the hour, a date plus an hour,
  or year/month/day/hour parts); ``code_hour``: a code (an airport, a store) plus an hour.

``lake_keys`` lists the keys a lake table offers; ``user_keys`` lists the keys a user's table can
be joined on, including derived ones (a zip mapped to its county through a crosswalk table, a
county FIPS cut to its state). ``compute_key`` recomputes any of them from a recipe, so a saved
enrichment can be applied to new data the same way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

KEY_KINDS = ("state", "fips_code", "zip_code", "city", "country")
SINGLE_KINDS = ("state", "fips_code", "zip_code", "country")
_HOUR_NAMES = {"hour", "hr", "hour_of_day"}
_MAX_CODE_UNIQUE = 500


@lru_cache(maxsize=1)
def _state_lookup() -> dict[str, str]:
    import us

    lookup = {}
    for state in us.states.STATES_AND_TERRITORIES + [us.states.DC]:
        for key in (state.name, state.abbr, state.fips, str(int(state.fips))):
            lookup[str(key).strip().lower()] = state.fips
    lookup["washington dc"] = lookup["washington d.c."] = lookup["d.c."] = us.states.DC.fips
    return lookup


def _digits(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    if re.fullmatch(r"\d+\.0+", text):
        text = text.split(".")[0]
    text = text.split("-")[0] if re.fullmatch(r"\d{5}-\d{4}", text) else text
    return text if text.isdigit() else None


def _fold(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = re.sub(r"\s+", " ", str(value).strip().lower())
    return text or None


def _on_distinct(values: pd.Series, function) -> pd.Series:
    """Apply ``function`` (a Series -> Series normaliser) once per distinct value and spread the results back."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if len(uniques) == len(values):
        return function(values)
    normalised = function(pd.Series(uniques, dtype=values.dtype if len(uniques) else object)).to_numpy(dtype=object)
    out = pd.Series(normalised[codes] if len(normalised) else [None] * len(values), index=values.index, dtype=object)
    return out.where(codes >= 0, None)


def normalize_key(values: pd.Series, kind: str) -> pd.Series:
    """Canonical join values for one column; missing where a value cannot be read."""
    return _on_distinct(values, lambda distinct: _normalize(distinct, kind))


def _normalize(values: pd.Series, kind: str) -> pd.Series:
    if kind == "state":
        lookup = _state_lookup()

        def state(value):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                return None
            digits = _digits(value)
            key = str(int(digits)) if digits is not None and len(digits) <= 2 else str(value).strip().lower()
            return lookup.get(key) or lookup.get(re.sub(r"[\s_]+", " ", key).replace(".", ""))

        return values.map(state).astype(object)
    if kind in ("fips_code", "zip_code"):
        # Vectorised: 1001, 1001.0, "1001", " 01001 " and "01001-1234" (ZIP+4) all become "01001".
        text = values.astype(str).str.strip().str.replace(r"^(\d+)\.0+$", r"\1", regex=True)
        text = text.str.replace(r"^(\d{5})-\d{4}$", r"\1", regex=True)
        readable = text.str.fullmatch(r"\d{1,5}") & text.str.strip("0").ne("") & values.notna()
        return text.str.zfill(5).where(readable, None).astype(object)
    return values.map(_fold).astype(object)


def _to_hour(values: pd.Series) -> pd.Series:
    """Timestamps truncated to the hour as ``YYYY-MM-DD HH``; time zones dropped (wall-clock hours are compared)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return _hour_of(values)
    return _on_distinct(values, _hour_of)


def _hour_of(values: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(values, errors="coerce", format="mixed") if not pd.api.types.is_datetime64_any_dtype(values) else values
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    hours = np.datetime_as_string(parsed.dt.floor("h").to_numpy(dtype="datetime64[ns]"), unit="h")
    out = pd.Series(np.char.replace(hours.astype(str), "T", " "), index=values.index, dtype=object)
    return out.where(parsed.notna(), None).astype(object)


def _hour_values(frame: pd.DataFrame, columns: list[str], recipe: str) -> pd.Series:
    if recipe == "hour":
        return _to_hour(frame[columns[0]])
    if recipe == "date_hour":
        dates = pd.to_datetime(frame[columns[0]], errors="coerce", format="mixed")
        if getattr(dates.dt, "tz", None) is not None:
            dates = dates.dt.tz_localize(None)
        hours = pd.to_numeric(frame[columns[1]], errors="coerce")
        stamp = dates.dt.normalize() + pd.to_timedelta(hours, unit="h")
        return _to_hour(stamp.where(hours.between(0, 23)))
    if recipe == "parts":
        parts = {name: pd.to_numeric(frame[col], errors="coerce") for name, col in zip(("year", "month", "day", "hour"), columns)}
        stamp = pd.to_datetime(pd.DataFrame({k: v for k, v in parts.items() if k != "hour"}), errors="coerce")
        if "hour" in parts:
            stamp = stamp + pd.to_timedelta(parts["hour"], unit="h")
        return _to_hour(stamp)
    raise ValueError(recipe)


def compute_key(frame: pd.DataFrame, columns: list[str], recipe: str, crosswalk: pd.DataFrame | None = None) -> pd.Series:
    """One canonical key value per row of ``frame`` (None where it cannot be formed), as a recipe says."""
    if recipe in SINGLE_KINDS or recipe == "city":
        return normalize_key(frame[columns[0]], recipe)
    if recipe == "city_state":
        city, state = normalize_key(frame[columns[0]], "city"), normalize_key(frame[columns[1]], "state")
        return (city + "|" + state).where(city.notna() & state.notna(), None).astype(object)
    if recipe in ("hour", "date_hour", "parts"):
        return _hour_values(frame, columns, recipe)
    if recipe.startswith("code_"):
        code = normalize_key(frame[columns[0]], "code")
        hour = _hour_values(frame, columns[1:], recipe.removeprefix("code_"))
        return (code + "|" + hour).where(code.notna() & hour.notna(), None).astype(object)
    if recipe == "county_to_state":
        county = normalize_key(frame[columns[0]], "fips_code")
        return county.str[:2].where(county.notna(), None).astype(object)
    if recipe == "zip_to_county":
        if crosswalk is None:
            raise ValueError("zip_to_county needs the crosswalk table")
        mapping = crosswalk if isinstance(crosswalk, pd.Series) else crosswalk_mapping(crosswalk)
        zips = normalize_key(frame[columns[0]], "zip_code")
        return zips.map(mapping).where(zips.notna(), None).astype(object)
    raise ValueError(f"unknown key recipe {recipe!r}")


def crosswalk_mapping(crosswalk: pd.DataFrame) -> pd.Series:
    """A zip -> county FIPS lookup from a crosswalk's first two columns, both normalised; one county per zip."""
    mapping = pd.DataFrame({"zip": normalize_key(crosswalk.iloc[:, 0], "zip_code"), "county": normalize_key(crosswalk.iloc[:, 1], "fips_code")})
    return mapping.dropna().drop_duplicates("zip").set_index("zip")["county"]


RECIPE_KIND = {
    "state": "state", "fips_code": "fips_code", "zip_code": "zip_code", "country": "country", "city": "city",
    "city_state": "city_state", "hour": "hour", "date_hour": "hour", "parts": "hour",
    "code_hour": "code_hour", "code_date_hour": "code_hour", "code_parts": "code_hour",
    "county_to_state": "state", "zip_to_county": "fips_code",
}


@dataclass
class KeyColumns:
    """A way to key a frame: its columns, the recipe that turns them into canonical values, and those values."""

    columns: list[str]
    recipe: str
    values: pd.Series
    strategy: str = "direct"
    bridge: dict | None = field(default=None)

    @property
    def kind(self) -> str:
        return RECIPE_KIND[self.recipe]


def _is_number_meta(meta) -> bool:
    return str(meta.dtype).lower().startswith(("int", "float", "uint"))


def _time_sources(frame: pd.DataFrame, metas) -> list[tuple[list[str], str]]:
    """Column groups that give a clock hour: a timestamp, a date plus an hour column, or year/month/day[/hour] parts."""
    by_lower = {str(m.name).lower(): m for m in metas}
    hour_col = next((by_lower[n].name for n in _HOUR_NAMES if n in by_lower and _is_number_meta(by_lower[n])), None)
    by_lower = {key: meta.name for key, meta in by_lower.items()}
    sources = []
    for meta in metas:
        if meta.role == "datetime":
            sources.append(([meta.name], "hour"))
        elif meta.role == "date" and hour_col is not None:
            sources.append(([meta.name, hour_col], "date_hour"))
    if not sources and all(n in by_lower for n in ("year", "month", "day")):
        parts = [by_lower["year"], by_lower["month"], by_lower["day"]] + ([hour_col] if hour_col is not None else [])
        if hour_col is not None:
            sources.append((parts, "parts"))
    return sources


def _code_columns(frame: pd.DataFrame, metas) -> list[str]:
    """Short text codes (an airport, a store, a region) that can pair with a time to key a row."""
    codes = []
    for meta in metas:
        if meta.role == "categorical" and not _is_number_meta(meta) and 2 <= meta.unique_count <= _MAX_CODE_UNIQUE:
            codes.append(meta.name)
    return codes[:5]


@lru_cache(maxsize=1)
def _county_fips() -> frozenset[str]:
    import us

    return frozenset(c.fips for s in us.states.STATES_AND_TERRITORIES + [us.states.DC] for c in (s.counties or []))


@lru_cache(maxsize=1)
def _zip_codes() -> frozenset[str]:
    import zipcodes

    return frozenset(r["zip_code"] for r in zipcodes.list_all())


def detect_key_role(series: pd.Series) -> str | None:
    """A join-key role read from the values themselves, for columns whose header does not say it.

    County FIPS written as integers (1001 for Autauga County), zips that lost their leading zeros,
    state names written in capitals with underscores: at least 90 % of the distinct values must be
    real codes or names, so ordinary numbers are not mistaken for keys.
    """
    distinct = pd.Series(series.dropna().unique())
    if len(distinct) > 2000:
        distinct = distinct.sample(2000, random_state=0)
    if len(distinct) < 5:
        return None
    if pd.api.types.is_numeric_dtype(distinct) and not pd.api.types.is_bool_dtype(distinct):
        values = distinct.to_numpy(dtype=float)
        if len(distinct) < 20 or not np.all(np.mod(values, 1) == 0) or values.min() < 1 or values.max() > 99999:
            return None
        padded = pd.Series(values.astype(np.int64)).astype(str).str.zfill(5)
    else:
        text = distinct.astype(str).str.strip()
        if text.str.contains(r"[A-Za-z]", regex=True).mean() > 0.5:
            return "state" if normalize_key(text, "state").notna().mean() >= 0.9 else None
        if len(distinct) < 20 or not text.str.fullmatch(r"\d{1,5}").all():
            return None
        padded = text.str.zfill(5)
    counties, zips = _county_fips(), _zip_codes()
    if np.mean([v in counties for v in padded]) >= 0.9:
        return "fips_code"
    if np.mean([v in zips for v in padded]) >= 0.9 and padded.str[:1].nunique() > 1:
        return "zip_code"
    return None


_NOT_KEYS = {"numeric", "date", "datetime", "boolean", "latitude", "longitude", "text", "email", "url", "phone", "currency", "percent"}


def key_roles(frame: pd.DataFrame, metas) -> dict[str, str]:
    """Each column's role, with join-key roles found from values where the header gave none."""
    roles = {}
    for meta in metas:
        role = meta.role
        if role not in KEY_KINDS and not getattr(meta, "user_labelled", False) and (role not in _NOT_KEYS or _integer_like(frame[meta.name])):
            role = detect_key_role(frame[meta.name]) or role
        roles[meta.name] = role
    return roles


def _integer_like(series: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return False
    values = series.dropna()
    return len(values) > 0 and bool((values % 1 == 0).all()) and values.min() > 0 and values.max() <= 99999


def _keys(frame: pd.DataFrame, metas) -> list[KeyColumns]:
    keys = []
    roles = key_roles(frame, metas)
    for name, role in roles.items():
        if role in SINGLE_KINDS:
            keys.append(KeyColumns([name], role, compute_key(frame, [name], role)))
    cities = [c for c, r in roles.items() if r == "city"]
    states = [c for c, r in roles.items() if r == "state"]
    if cities and states:
        columns = [cities[0], states[0]]
        keys.append(KeyColumns(columns, "city_state", compute_key(frame, columns, "city_state")))
    for time_columns, time_recipe in _time_sources(frame, metas)[:2]:
        keys.append(KeyColumns(time_columns, time_recipe, compute_key(frame, time_columns, time_recipe)))
        for code in _code_columns(frame, metas):
            columns, recipe = [code, *time_columns], f"code_{time_recipe}"
            keys.append(KeyColumns(columns, recipe, compute_key(frame, columns, recipe)))
    return keys


def lake_keys(frame: pd.DataFrame, metas) -> list[KeyColumns]:
    """The keys a lake table can be joined on."""
    return _keys(frame, metas)


def user_keys(frame: pd.DataFrame, metas, crosswalk=None) -> list[KeyColumns]:
    """The keys a user's table can be joined on: its own, plus derived ones.

    ``crosswalk`` is a callable returning ``[(table, from_column, to_column, mapping), ...]`` for the
    lake's crosswalk tables, ``mapping`` a normalised zip -> county Series (loaded only when a zip column needs one).
    """
    keys = _keys(frame, metas)
    for key in list(keys):
        if key.recipe == "fips_code":
            keys.append(KeyColumns(key.columns, "county_to_state", compute_key(frame, key.columns, "county_to_state"),
                                   strategy="county FIPS cut to its state"))
        if key.recipe == "zip_code" and crosswalk is not None:
            for table, source, target, mapping in crosswalk():
                values = compute_key(frame, key.columns, "zip_to_county", crosswalk=mapping)
                keys.append(KeyColumns(key.columns, "zip_to_county", values, strategy=f"zip mapped to county FIPS through {table}",
                                       bridge={"table": table, "from": source, "to": target}))
    return keys
