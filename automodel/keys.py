"""Join-key normalisation: the same place written different ways maps to one canonical value.

States (name, abbreviation or FIPS) become 2-digit FIPS; county FIPS and zips are zero-padded
to 5 digits; names are case- and whitespace-folded.
"""

from __future__ import annotations

import re
from functools import lru_cache

import pandas as pd


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
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip()
    if re.fullmatch(r"\d+\.0+", text):
        text = text.split(".")[0]
    text = text.split("-")[0] if re.fullmatch(r"\d{5}-\d{4}", text) else text
    return text if text.isdigit() else None


def normalize_key(values: pd.Series, kind: str) -> pd.Series:
    """Canonical join values for one column; missing where a value cannot be read."""
    if kind == "state":
        lookup = _state_lookup()
        return values.map(lambda v: lookup.get(str(v).strip().lower().replace("  ", " ")) if pd.notna(v) else None, na_action=None).astype(object)
    if kind in ("fips_code", "zip_code"):
        def pad(value):
            digits = _digits(value)
            return digits.zfill(5) if digits and len(digits) <= 5 else None

        return values.map(pad).astype(object)
    return values.map(lambda v: re.sub(r"\s+", " ", str(v).strip().lower()) if pd.notna(v) and str(v).strip() else None).astype(object)


KEY_KINDS = ("state", "fips_code", "zip_code", "city", "country")
