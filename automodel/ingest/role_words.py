"""The words column roles are named and told by: the role names, the column description every profile carries, US
state names and abbreviations, and how a header splits into words. Shared by the rule-based inference
(``automodel.ingest.roles``) and its MiniLM second opinion (``automodel.ingest.embed_roles``)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache

ROLES = (
    "numeric", "categorical", "boolean", "date", "datetime", "text", "identifier", "zip_code", "fips_code",
    "state", "city", "country", "latitude", "longitude", "email", "phone", "url", "currency", "percent",
)
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


@lru_cache(maxsize=1)
def _state_words() -> frozenset[str]:
    """Lower-case US state and territory names, postal and AP abbreviations (from the ``us`` package)."""
    import us

    words = set(US_STATE_NAMES) | {a.lower() for a in US_STATE_ABBRS}
    for state in us.states.STATES_AND_TERRITORIES + us.states.OBSOLETE + [us.states.DC]:
        for value in (state.name, state.abbr, getattr(state, "ap_abbr", None)):
            if value:
                words.add(str(value).lower())
    words |= {"washington dc", "washington d.c.", "d.c.", "u.s.", "united states"}
    return frozenset(words)


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
