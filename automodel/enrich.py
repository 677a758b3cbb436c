"""Enrichment: find the lake table whose keys contain the user's key values, and left-join it.

Many-to-one only: the lake side is deduplicated on the key, so the user's row count never changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from automodel.keys import KEY_KINDS, normalize_key
from automodel.lake import connect, load_lake_table, table_entry

MIN_CONTAINMENT = 0.5


@dataclass
class JoinCandidate:
    table: str
    lake_column: str
    user_column: str
    key_kind: str
    containment: float  # share of the user's distinct key values found in the lake column


@dataclass
class EnrichmentSpec:
    """Enough to apply the same enrichment again (e.g. when scoring new data)."""

    table: str
    lake_column: str
    user_column: str
    key_kind: str
    added_columns: list[str]


@dataclass
class MergeReport:
    table: str | None = None
    keys: list[str] = field(default_factory=list)
    strategy: str | None = None
    coverage: float = 0.0
    kept: bool = False
    lift: float | None = None
    added_columns: list[str] = field(default_factory=list)
    candidates: list[dict] = field(default_factory=list)
    reason: str = ""
    spec: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def find_candidates(frame: pd.DataFrame, metas, db_path: Path, top_k: int = 5) -> list[JoinCandidate]:
    key_columns = [m for m in metas if m.role in KEY_KINDS]
    if not key_columns or not Path(db_path).exists():
        return []
    con = connect(db_path, read_only=True)
    try:
        found = []
        for meta in key_columns:
            values = pd.Series(normalize_key(frame[meta.name], meta.role).dropna().unique(), dtype=object)
            if values.empty:
                continue
            con.register("user_keys", pd.DataFrame({"value": values.astype(str)}))
            rows = con.execute(
                """SELECT table_name, column_name, count(DISTINCT k.value) AS hits
                   FROM lake_key_values k JOIN user_keys u ON k.value = u.value
                   WHERE k.key_kind = ? GROUP BY table_name, column_name ORDER BY hits DESC""",
                [meta.role],
            ).fetchall()
            con.unregister("user_keys")
            for table, column, hits in rows:
                found.append(JoinCandidate(table, column, meta.name, meta.role, round(hits / len(values), 4)))
    finally:
        con.close()
    found.sort(key=lambda c: (-c.containment, c.table))
    return found[:top_k]


def apply_join(frame: pd.DataFrame, lake_dir: Path, spec: EnrichmentSpec) -> tuple[pd.DataFrame, float]:
    """Left-join one lake table on a normalised key; return the enriched frame and the coverage."""
    lake = load_lake_table(lake_dir, table_entry(lake_dir, spec.table))
    lake = lake.assign(__key=normalize_key(lake[spec.lake_column], spec.key_kind)).dropna(subset=["__key"])
    lake = lake.drop_duplicates("__key", keep="first")
    key_like = [c for c in lake.columns if c != "__key" and c != spec.lake_column]
    renamed = {c: f"{spec.table}__{c}" for c in key_like}
    right = lake[["__key", *key_like]].rename(columns=renamed)
    added = [renamed[c] for c in key_like if not spec.added_columns or renamed[c] in spec.added_columns]
    right = right[["__key", *added]]
    left = frame.assign(__key=normalize_key(frame[spec.user_column], spec.key_kind))
    merged = left.merge(right, on="__key", how="left", validate="many_to_one")
    coverage = float(merged["__key"].isin(right["__key"]).mean())
    merged = merged.drop(columns="__key")
    merged.index = frame.index
    return merged, coverage


def rank_and_merge(frame: pd.DataFrame, metas, lake_dir: Path, db_path: Path) -> tuple[pd.DataFrame, MergeReport]:
    """Pick the best-contained lake table and left-join it; report what happened either way."""
    candidates = find_candidates(frame, metas, db_path)
    report = MergeReport(candidates=[asdict(c) for c in candidates])
    usable = [c for c in candidates if c.containment >= MIN_CONTAINMENT]
    if not usable:
        report.reason = "no lake table shares enough key values" if candidates else "no join key (state, county FIPS, zip, city, country) found"
        return frame, report
    best = usable[0]
    spec = EnrichmentSpec(best.table, best.lake_column, best.user_column, best.key_kind, added_columns=[])
    enriched, coverage = apply_join(frame, lake_dir, spec)
    spec.added_columns = [c for c in enriched.columns if c not in frame.columns]
    report.table, report.keys, report.strategy = best.table, [best.user_column, best.lake_column], f"{best.key_kind} match"
    report.coverage, report.kept, report.added_columns = round(coverage, 4), True, spec.added_columns
    report.spec = asdict(spec)
    report.reason = f"{best.containment:.0%} of {best.user_column!r} values found in {best.table}.{best.lake_column}"
    return enriched, report
