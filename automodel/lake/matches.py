"""What a lake search finds: a lake table (``SearchHit``) and the key it joins the user's table on (``KeyMatch``).

Plain records with no imports of the lake's modules, so the key and grain logic that builds on a match
(``automodel.lake.grain``) and enrichment can use them without loading the search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class KeyMatch:
    user_columns: list[str]
    lake_columns: list[str]
    kind: str
    strategy: str
    containment: float  # share of the user's distinct key values found in the lake key
    user_distinct: int
    lake_unique: float = 1.0  # distinct key values per lake row: 1 when the table's grain is the key, lower when it must be aggregated
    bridge: dict | None = None
    user_recipe: str | None = None
    lake_recipe: str | None = None
    weight: float = 1.0  # how much a match on this key says (see key_weight)


@dataclass
class SearchHit:
    table: str
    score: float
    name_similarity: float
    containment: float
    description: str = ""
    tags: list[str] = field(default_factory=list)
    key: KeyMatch | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["key"] = asdict(self.key) if self.key else None
        return out
