"""Enrichment: find lake tables that share the user's keys, join them, and keep those that help.

Joins are left joins on a synthesised key, so the user's row count and row order never change.
A lake table whose key is unique joins row to row (added columns ``<table>__<column>``); one with
several rows per key (a finer grain: counties for a state, hours for a day) is aggregated to one
row per key first: numbers by mean, sum, min and max, categories by count, distinct count and most
frequent value, plus the number of lake rows (``<table>__<column>__<aggregate>``, ``<table>__rows``).

With a target, each joinable table is scored by a quick cross-validated model; tables are then
added greedily (forward selection) while the cross-validated score keeps rising by at least
``MIN_LIFT``, up to ``max_tables``; added columns that the model never uses are pruned. A lake
table that holds the user's own rows or the target itself (a copy or a near copy) is never joined.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from automodel.errors import AutomodelError
from automodel.ingest.roles import is_number
from automodel.lake.keys import GRAINS, UTC_MARK, compute_key, zones_differ
from automodel.lake.matches import KeyMatch, SearchHit
from automodel.lake.search import IndexOutOfDate, load_crosswalks, search_datasets
from automodel.lake.tables import load_lake_table, table_entry
from automodel.lake.written import KEY_ONLY_ATTR, restore_for_keys, with_written_columns

MIN_CONTAINMENT = 0.5
MIN_LIFT = 0.005  # each kept table must raise the cross-validated score by at least this much (R² or accuracy points)
MAX_TABLES = 3
MAX_TRIED = 6
EVAL_ROWS = 5000
MODE_MAX_VALUES = 50  # a most-frequent value is only a feature for columns with few distinct values
LEAK_EQUAL_SHARE = 0.95
LEAK_CORRELATION = 0.995


@dataclass
class EnrichmentSpec:
    """Enough to apply the same enrichment again (e.g. when scoring new data)."""

    table: str
    lake_column: str
    user_column: str
    key_kind: str
    added_columns: list[str]
    user_columns: list[str] = field(default_factory=list)
    lake_columns: list[str] = field(default_factory=list)
    user_recipe: str | None = None
    lake_recipe: str | None = None
    bridge: dict | None = None

    def __post_init__(self):
        # Specs saved before composite keys existed name one column and one kind on each side.
        self.user_columns = self.user_columns or [self.user_column]
        self.lake_columns = self.lake_columns or [self.lake_column]
        self.user_recipe = self.user_recipe or self.key_kind
        self.lake_recipe = self.lake_recipe or self.key_kind


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
    metric: str | None = None
    plain_score: float | None = None
    enriched_score: float | None = None
    tables: list[dict] = field(default_factory=list)  # every kept table: key, grain, aggregation, coverage, lift, columns
    refused: list[dict] = field(default_factory=list)  # lake tables never joined, with the reason (leakage)
    # The lake read (automodel.lake.remembered): location, why it was chosen, and on scoring what changed or is gone.
    lake: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# ---- keys ---------------------------------------------------------------------------------------

def synthesise_join_keys(user: pd.DataFrame, lake: pd.DataFrame, match: KeyMatch, lake_dir: Path) -> tuple[pd.Series, pd.Series, EnrichmentSpec]:
    """Canonical key values for both sides of a join that ``search_datasets`` found, and the spec that reproduces them.

    The recipes come with the match: typed normalisers (state name/abbreviation/FIPS interchangeable,
    zero-padded zip and FIPS codes, zip to county through the lake's crosswalk, county cut to its state,
    city + state), any code or name normalised (case, whitespace, punctuation, leading zeros), moments
    at a common grain (an hourly lake table meets a user's dates at the day), and pairs of them.
    """
    user_recipe = match.user_recipe or _legacy_user_recipe(match)
    lake_recipe = match.lake_recipe or match.kind
    spec = EnrichmentSpec(table="", lake_column=match.lake_columns[0], user_column=match.user_columns[0], key_kind=match.kind,
                          added_columns=[], user_columns=list(match.user_columns), lake_columns=list(match.lake_columns),
                          user_recipe=user_recipe, lake_recipe=lake_recipe, bridge=match.bridge)
    return user_key_values(user, spec, lake_dir), compute_key(lake, spec.lake_columns, lake_recipe), spec


def _legacy_user_recipe(match: KeyMatch) -> str:
    if match.strategy != "direct":
        return "zip_to_county" if match.bridge else "county_to_state"
    return match.kind


def user_key_values(frame: pd.DataFrame, spec: EnrichmentSpec, lake_dir: Path) -> pd.Series:
    crosswalk = None
    if spec.user_recipe == "zip_to_county":
        bridge = spec.bridge or {}
        found = load_crosswalks(Path(lake_dir), {bridge.get("table"): {"from": bridge.get("from"), "to": bridge.get("to")}})
        if not found:
            raise AutomodelError(f"The lake has no crosswalk table {bridge.get('table')!r}, which this enrichment maps zips through; "
                                 "restore it to the lake or run without the enrichment.")
        crosswalk = found[0][3]
    return compute_key(frame, spec.user_columns, spec.user_recipe, crosswalk=crosswalk)


# ---- joining ------------------------------------------------------------------------------------

def aggregate_on_key(lake: pd.DataFrame, keys: pd.Series, drop: list[str], table: str) -> tuple[pd.DataFrame, pd.Series]:
    """One row per key value, columns named for people; and the number of lake rows behind each key.

    A unique key keeps the lake's columns as they are (``<table>__<column>``); a repeating one is
    aggregated: numbers by mean, sum, min and max, booleans by the share that is true, other values by
    count, distinct count and (when they have few distinct values) the most frequent one, plus ``<table>__rows``.
    """
    data = lake.drop(columns=[c for c in drop if c in lake.columns]).assign(__key=keys.to_numpy()).dropna(subset=["__key"])
    rows = data.groupby("__key", sort=False).size()
    columns = [c for c in data.columns if c != "__key"]
    if not len(rows) or rows.max() == 1:
        right = data.set_index("__key")[columns]
        right.columns = [f"{table}__{c}" for c in columns]
        return right, rows
    grouped = data.groupby("__key", sort=False)
    parts = []
    for column in columns:
        series = data[column]
        if pd.api.types.is_datetime64_any_dtype(series):
            continue
        if is_number(series):
            stats = grouped[column].agg(["mean", "sum", "min", "max"])
            stats.columns = [f"{table}__{column}__{s}" for s in stats.columns]
        elif pd.api.types.is_bool_dtype(series):
            stats = grouped[column].agg(lambda s: s.astype(float).mean()).to_frame(f"{table}__{column}__share")
        else:
            stats = grouped[column].agg(["count", "nunique"])
            stats.columns = [f"{table}__{column}__count", f"{table}__{column}__distinct"]
            if series.nunique(dropna=True) <= MODE_MAX_VALUES:
                pairs = data[["__key", column]].dropna().value_counts()
                top = pairs.reset_index().drop_duplicates("__key").set_index("__key")[column]
                stats[f"{table}__{column}__most_frequent"] = top.reindex(stats.index)
        parts.append(stats)
    parts.append(rows.to_frame(f"{table}__rows"))
    return pd.concat(parts, axis=1), rows


@dataclass
class JoinResult:
    enriched: pd.DataFrame
    added: pd.DataFrame
    coverage: float  # share of the user's rows that found their key in the lake table
    lake_rows_per_row: float  # mean lake rows behind a matched user row (1 for a many-to-one join)
    aggregated: bool


def join_table(frame: pd.DataFrame, lake_dir: Path, spec: EnrichmentSpec) -> JoinResult:
    """Left-join one lake table on a synthesised key: the user's rows, in order, with the lake's columns beside them."""
    lake = load_lake_table(lake_dir, table_entry(lake_dir, spec.table))
    lake_keys = compute_key(lake, spec.lake_columns, spec.lake_recipe)
    # Columns the lake's cleaning dropped (constants) are there for keys only, not as features.
    right, rows = aggregate_on_key(lake, lake_keys, drop=[*spec.lake_columns, *lake.attrs.get(KEY_ONLY_ATTR, [])], table=spec.table)
    if spec.added_columns:
        right = right[[c for c in right.columns if c in spec.added_columns]]
    user_keys = user_key_values(frame, spec, lake_dir)
    matched = user_keys.isin(right.index) & user_keys.notna()
    added = right.reindex(user_keys.to_numpy())
    added.index = frame.index
    behind = user_keys[matched].map(rows)
    enriched = pd.concat([frame, added], axis=1)
    return JoinResult(enriched, added, float(matched.mean()) if len(frame) else 0.0,
                      round(float(behind.mean()), 2) if len(behind) else 0.0, bool(len(rows) and rows.max() > 1))


def apply_join(frame: pd.DataFrame, lake_dir: Path, spec: EnrichmentSpec) -> tuple[pd.DataFrame, float]:
    """Left-join one lake table on a synthesised key; return the enriched frame and the coverage (share of rows matched)."""
    result = join_table(frame, lake_dir, spec)
    return result.enriched, result.coverage


def apply_specs(frame: pd.DataFrame, lake_dir: Path, spec: dict, written: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[float]]:
    """Apply a saved enrichment (one table, or ``{"tables": [...]}``) to new rows; the coverage of each table.

    ``written``: the rows as loaded, before cleaning, whose dropped columns may still be part of a key."""
    specs = spec.get("tables", [spec])
    keyed = restore_for_keys(frame, written)
    restored = list(keyed.attrs[KEY_ONLY_ATTR])
    coverages = []
    for one in specs:
        keyed, coverage = apply_join(keyed, lake_dir, EnrichmentSpec(**one))
        coverages.append(coverage)
    return keyed.drop(columns=restored), coverages


def spec_user_columns(spec: dict) -> list[str]:
    specs = spec.get("tables", [spec])
    return [c for one in specs for c in EnrichmentSpec(**one).user_columns]


# ---- leakage ------------------------------------------------------------------------------------

def _reproduces(added: pd.Series, original: pd.Series) -> float:
    """How nearly a lake column repeats a user column on the rows where both have values (0 to 1)."""
    both = added.notna() & original.notna()
    if both.sum() < 10:
        return 0.0
    a, b = added[both], original[both]
    if is_number(a) and is_number(b):
        a, b = a.astype(float), b.astype(float)
        equal = float((np.abs(a - b) <= 1e-9 + 1e-6 * np.abs(b)).mean())
        if a.std() > 0 and b.std() > 0 and b.nunique() > 10:
            correlation = float(np.corrcoef(a, b)[0, 1])
            equal = max(equal, correlation if np.isfinite(correlation) else 0.0)
        return equal
    return float((a.astype(str).str.strip().str.lower() == b.astype(str).str.strip().str.lower()).mean())


def leak_reason(frame: pd.DataFrame, added: pd.DataFrame, table: str, target: str | None, key_columns: list[str]) -> str | None:
    """Why joining this lake table would leak (it holds the target or the user's own rows), or None."""
    sample = frame.sample(EVAL_ROWS, random_state=0).index if len(frame) > EVAL_ROWS else frame.index
    rows, lake = frame.loc[sample], added.loc[sample]
    if target and target in frame.columns:
        for column in lake.columns:
            share = _reproduces(lake[column], rows[target])
            threshold = LEAK_CORRELATION if is_number(rows[target]) and is_number(lake[column]) else LEAK_EQUAL_SHARE
            if share >= threshold:
                return (f"{column.split('__', 1)[1]!r} in {table} repeats the target {target!r} "
                        f"({share:.1%} agreement on the joined rows): a copy of what is being predicted")
    others = [c for c in frame.columns if c not in key_columns and c != target]
    copied = [c for c in others if any(_reproduces(lake[a], rows[c]) >= 0.999 for a in lake.columns)]
    if len(others) >= 2 and len(copied) >= max(2, len(others) / 2):
        return f"{table} holds the user's own rows ({len(copied)} of {len(others)} columns repeated value for value)"
    return None


# ---- proving it helps ---------------------------------------------------------------------------

def _features(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    """A small numeric design for the quick check: numbers and booleans as they are, short categoricals as codes."""
    out = {}
    for column in frame.columns:
        if column == target:
            continue
        series = frame[column]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            out[column] = series.astype(float)
        elif pd.api.types.is_datetime64_any_dtype(series):
            out[column] = series.dt.hour.astype(float) if series.dt.hour.nunique() > 1 else series.dt.dayofyear.astype(float)
        elif series.nunique(dropna=True) <= 60:
            out[column] = series.astype("category").cat.codes.replace(-1, np.nan).astype(float)
    return pd.DataFrame(out, index=frame.index)


def is_classification(y: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y) or y.nunique(dropna=True) <= 10


def quick_cv_score(frame: pd.DataFrame, target: str, folds: int = 3, seed: int = 0, validation=None) -> tuple[float, str]:
    """Mean 3-fold score of a small LightGBM model: R² for a numeric target, accuracy for classes. ``validation`` (an
    analyzers.validation.ValidationPlan) makes the folds the run's own: forward in time, or grouped by entity."""
    import lightgbm as lgb
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

    data = frame[frame[target].notna()]
    if len(data) > EVAL_ROWS:
        data = data.sample(EVAL_ROWS, random_state=seed)
    X, y = _features(data, target), data[target]
    params = {"n_estimators": 80, "learning_rate": 0.1, "num_leaves": 15, "min_child_samples": max(3, min(20, len(data) // 30)),
              "subsample": 1.0, "colsample_bytree": 1.0, "random_state": seed, "verbose": -1, "n_jobs": 1}
    if is_classification(y):
        y = y.astype(str)
        smallest = y.value_counts().min()
        splitter = StratifiedKFold(min(folds, smallest), shuffle=True, random_state=seed) if smallest >= 2 else KFold(folds, shuffle=True, random_state=seed)
        model, metric = lgb.LGBMClassifier(**params), "accuracy"
    else:
        y = y.astype(float)
        splitter, model, metric = KFold(folds, shuffle=True, random_state=seed), lgb.LGBMRegressor(**params), "r2"
    if X.shape[1] == 0:
        X = pd.DataFrame({"__constant": np.zeros(len(data))}, index=data.index)
    # Small tables give noisy folds: repeating the split with other shuffles steadies the score, so that
    # choosing among several tables does not reward the luckiest split.
    repeats = 3 if len(data) < 1000 else 1
    scores = []
    scheme_folds = _scheme_folds(data, validation, folds, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if scheme_folds is not None:  # the run's scheme: the lift a table gives is the lift on later periods or new entities
            scores.extend(cross_val_score(model, X, y, cv=scheme_folds, scoring=metric, error_score=np.nan))
        for repeat in range(repeats if scheme_folds is None else 0):
            splitter.random_state = seed + repeat
            scores.extend(cross_val_score(model, X, y, cv=splitter, scoring=metric, error_score=np.nan))
    scores = np.asarray(scores, dtype=float)
    return float(np.nanmean(scores)) if np.isfinite(scores).any() else float("nan"), metric


def _scheme_folds(data: pd.DataFrame, validation, folds: int, seed: int) -> list | None:
    if validation is None or validation.scheme == "random" or not all(c in data.columns for c in validation.columns):
        return None
    from analyzers.validation import as_stamps, entity_codes, forward_folds, grouped_folds

    if validation.scheme == "time":
        made = forward_folds(as_stamps(data[validation.columns[0]]).to_numpy(), n_folds=folds)
    else:
        made = grouped_folds(entity_codes(data, validation.columns), folds, seed)
    return made or None


# ---- choosing -----------------------------------------------------------------------------------

@dataclass
class _Attempt:
    hit: SearchHit
    spec: EnrichmentSpec
    join: JoinResult
    score: float | None = None
    lift: float | None = None


def rank_and_merge(frame: pd.DataFrame, metas, lake_dir: Path, db_path: Path, *, target: str | None = None,
                   category: str | None = None, min_lift: float = MIN_LIFT, max_tables: int = MAX_TABLES,
                   max_tried: int = MAX_TRIED, one_to_many: bool = True, written: pd.DataFrame | None = None,
                   validation=None) -> tuple[pd.DataFrame, MergeReport]:
    """Search the lake, join the joinable tables, and keep those that lift a quick cross-validated model.

    Tables are scored one by one against the plain frame, then added best first while each raises
    the score by ``min_lift`` (at most ``max_tables``); columns the final model never splits on are
    pruned. ``one_to_many=False`` allows only lake tables whose key is unique (no aggregation).
    Without a target there is nothing to prove the enrichment on, so nothing is kept (the best
    joinable table is still reported with its coverage). ``written`` is the table as loaded, before
    cleaning: columns cleaning dropped (a constant year) still form keys, and time columns whose values
    named their zone are matched as instants; the enriched frame never gets those columns back.
    """
    lake_dir, db_path = Path(lake_dir), Path(db_path)
    # The target is never a join key: a model has to predict it for rows where it is unknown.
    key_metas = [m for m in metas if m.name != target]
    keyed, key_metas, restored = with_written_columns(frame, key_metas, written)
    try:
        hits = search_datasets(key_metas, top_k=12, frame=keyed, db_path=db_path, lake_dir=lake_dir, category=category)
    except IndexOutOfDate as exc:  # enrichment is optional: the run goes on unenriched and says why
        return frame, MergeReport(reason=exc.message)
    if not hits:
        return frame, MergeReport(reason="the lake index is empty or missing; build it with `automodel index`")
    report = MergeReport(candidates=[_candidate_row(h) for h in hits])
    joinable = [h for h in hits if h.key is not None and h.key.containment >= MIN_CONTAINMENT
                and (one_to_many or h.key.lake_unique >= 0.999)]
    if not joinable:
        has_key = any(h.key is not None for h in hits)
        scope = f" in category {category!r}" if category else ""
        report.reason = (f"no lake table{scope} contains at least {MIN_CONTAINMENT:.0%} of the key values" if has_key
                         else f"no column's values match a key of a lake table{scope}")
        return frame, report
    clocks = _clock_ambiguities(joinable, report)
    plain_score = metric = None
    if target and target in frame.columns and frame[target].notna().sum() >= 12:
        plain_score, metric = quick_cv_score(frame, target, validation=validation)
    attempts: list[_Attempt] = []
    for hit in joinable[:max_tried]:
        row = next(r for r in report.candidates if r["table"] == hit.table)
        attempt = _try_join(keyed, hit, lake_dir)
        attempt.join.enriched = attempt.join.enriched.drop(columns=restored)
        leak = leak_reason(frame, attempt.join.added, hit.table, target, attempt.spec.user_columns)
        if leak:
            report.refused.append({"table": hit.table, "reason": leak})
            row.update({"tried": True, "refused": leak})
            continue
        if plain_score is not None:
            attempt.score = quick_cv_score(attempt.join.enriched, target, validation=validation)[0]
            attempt.lift = _lift(attempt.score, plain_score)
            attempt = _at_users_grain(frame, keyed, restored, attempt, lake_dir, target, plain_score, row)
        row.update({"tried": True, "coverage": round(attempt.join.coverage, 4), "lift": attempt.lift,
                    "lake_rows_per_row": attempt.join.lake_rows_per_row})
        attempts.append(attempt)
        if plain_score is None:
            break  # without a target only the best joinable table is reported
    report.metric = metric
    report.plain_score = None if plain_score is None else round(plain_score, 4)
    if not attempts:
        report.reason = "every joinable lake table was refused: " + "; ".join(r["reason"] for r in report.refused)
        return frame, _note_clocks(report, clocks)
    best = max(attempts, key=lambda a: a.lift if a.lift is not None else -np.inf) if plain_score is not None else attempts[0]
    _describe(report, best, best.lift)
    matched = _matched_text(best)
    if plain_score is None:
        report.reason = f"{matched}; not kept: no target to prove that it helps"
        return frame, _note_clocks(report, clocks)
    kept, current, current_score = _forward_select(frame, target, attempts, plain_score, min_lift, max_tables, validation)
    if not kept:
        report.enriched_score = None if best.score is None else round(best.score, 4)
        others = f" (nor did {len(attempts) - 1} other table{'s' if len(attempts) > 2 else ''})" if len(attempts) > 1 else ""
        report.reason = (f"{matched}; not kept: it did not improve a quick 3-fold model ({metric} {plain_score:.3f} -> "
                         f"{best.score:.3f}){others}")
        return frame, _note_clocks(report, clocks)
    current, current_score, pruned = _prune(frame, current, current_score, target, kept, min_lift, validation)
    for attempt, _ in kept:
        attempt.spec.added_columns = [c for c in attempt.join.added.columns if c in current.columns]
    report.kept = True
    report.added_columns = [c for c in current.columns if c not in frame.columns]
    report.tables = [_table_row(attempt, lift, pruned) for attempt, lift in kept]
    _describe(report, kept[0][0], _lift(current_score, plain_score))
    report.enriched_score = round(current_score, 4)
    # Only a kept enrichment carries a spec: `automodel score` re-applies exactly what the model was trained on.
    report.spec = {"tables": [asdict(attempt.spec) for attempt, _ in kept]}
    names = ", ".join(f"{a.hit.table} ({lift:+.3f})" for a, lift in kept)
    report.reason = f"{matched}; kept {names}: 3-fold {metric} {plain_score:.3f} -> {current_score:.3f}"
    if pruned:
        report.reason += f"; {len(pruned)} added column{'s' if len(pruned) != 1 else ''} the model never used pruned"
    return current, _note_clocks(report, clocks)


CLOCK_TIE = 0.02  # containments this close cannot tell two clocks apart


def _clock_ambiguities(joinable: list[SearchHit], report: MergeReport) -> list[list[str]]:
    """Groups of lake tables that matched the same user time key equally well when the clocks' zones are
    not all known (a local hour meets a UTC hour table as well as a local one: every hour of a year is in
    both). Each candidate row of such a table names the others (``same_key_other_clock``)."""
    groups: dict[tuple, list[SearchHit]] = {}
    for hit in joinable:
        key = hit.key
        # A clock's zone shifts hours and the edges of days; a month or a year hardly moves.
        if {"hour", "date"} & set(key.kind.split("+")):
            groups.setdefault((tuple(key.user_columns), key.kind), []).append(hit)
    found = []
    for hits in groups.values():
        best = max(h.key.containment for h in hits)
        tied = [h for h in hits if best - h.key.containment <= CLOCK_TIE]
        # A table whose times name their zone, met by user times that name theirs, is on the user's clock for sure:
        # the tie is only between tables whose clock is not known.
        unknown = [h for h in tied if not (UTC_MARK in (h.key.user_recipe or "") and UTC_MARK in (h.key.lake_recipe or ""))]
        if len(unknown) > 1:
            tied = unknown
            tables = [h.table for h in tied]
            for row in report.candidates:
                if row["table"] in tables:
                    row["same_key_other_clock"] = [t for t in tables if t != row["table"]]
            found.append(tables)
    return found


def _note_clocks(report: MergeReport, clocks: list[list[str]]) -> MergeReport:
    """The reason, with a sentence for each group of tables whose clocks the values cannot tell apart."""
    for tables in clocks:
        rows = [r for r in report.candidates if r["table"] in tables]
        names = ", ".join(tables[:-1]) + f" and {tables[-1]}"
        columns = "+".join(rows[0].get("user_columns") or [])
        lifts = [f"{r['table']} {r['lift']:+.3f}" for r in rows if r.get("lift") is not None]
        if lifts:
            settled = f"the one whose joined values fit the target best goes first ({', '.join(lifts)})"
        else:
            settled = "nothing here tells which clock is yours: give a target, or times with their zone (Z, +00:00)"
        report.reason += (f"; {names} matched {columns!r} equally ({rows[0]['containment']:.0%}) and may keep time in "
                          f"different zones: {settled}")
    return report


def _forward_select(frame, target, attempts, plain_score, min_lift, max_tables, validation=None):
    """Tables added best first while each raises the cross-validated score by at least ``min_lift``."""
    kept, current, current_score = [], frame, plain_score
    for attempt in sorted([a for a in attempts if a.lift is not None and a.lift >= min_lift], key=lambda a: -a.lift):
        if len(kept) >= max_tables:
            break
        if not kept:
            candidate, score = attempt.join.enriched, attempt.score
        else:
            candidate = pd.concat([current, attempt.join.added], axis=1)
            score = quick_cv_score(candidate, target, validation=validation)[0]
        if np.isfinite(score) and score - current_score >= min_lift:
            kept.append((attempt, round(score - current_score, 4)))
            current, current_score = candidate, score
    return kept, current, current_score


def _prune(frame, current, current_score, target, kept, min_lift, validation=None):
    """Drop added columns a model fitted on the enriched frame never splits on, if the score holds without them."""
    added = [c for c in current.columns if c not in frame.columns]
    importance = feature_splits(current, target)
    unused = [c for c in added if importance.get(c, 0) == 0]
    if not unused or len(unused) == len(added):
        return current, current_score, []
    pruned_frame = current.drop(columns=unused)
    score = quick_cv_score(pruned_frame, target, validation=validation)[0]
    if np.isfinite(score) and score >= current_score - min_lift / 2:
        return pruned_frame, score, unused
    return current, current_score, []


def _at_users_grain(frame, keyed, restored, attempt: _Attempt, lake_dir: Path, target: str, plain_score: float, row: dict) -> _Attempt:
    """The attempt, or one on a composite key at the user's grain (automodel.lake.grain) when that lifts more."""
    from dataclasses import replace

    from automodel.lake.grain import composite_alternatives

    lake = load_lake_table(lake_dir, table_entry(lake_dir, attempt.hit.table))
    best = attempt
    for key in composite_alternatives(keyed, attempt.hit.key, lake, target):
        other = _try_join(keyed, replace(attempt.hit, key=key), lake_dir)
        other.join.enriched = other.join.enriched.drop(columns=restored)
        tried = {"user_columns": key.user_columns, "lake_columns": key.lake_columns, "containment": key.containment}
        row.setdefault("composite_keys", []).append(tried)
        if leak_reason(frame, other.join.added, attempt.hit.table, target, other.spec.user_columns):
            tried["refused"] = True
            continue
        other.score = quick_cv_score(other.join.enriched, target)[0]
        other.lift = _lift(other.score, plain_score)
        tried.update({"coverage": round(other.join.coverage, 4), "lift": other.lift,
                      "single_key_lift": attempt.lift})
        if other.lift is not None and (best.lift is None or other.lift > best.lift):
            best = other
    if best is not attempt:
        row.update({"user_columns": best.hit.key.user_columns, "lake_columns": best.hit.key.lake_columns, "kind": best.hit.key.kind,
                    "strategy": describe_strategy(best.hit.key), "composite_kept": True})
    return best


def _try_join(frame: pd.DataFrame, hit: SearchHit, lake_dir: Path) -> _Attempt:
    lake = load_lake_table(lake_dir, table_entry(lake_dir, hit.table))
    _, _, spec = synthesise_join_keys(frame, lake, hit.key, lake_dir)
    spec.table = hit.table
    join = join_table(frame, lake_dir, spec)
    spec.added_columns = list(join.added.columns)
    return _Attempt(hit, spec, join)


def _lift(score: float | None, plain: float | None) -> float | None:
    if score is None or plain is None or np.isnan(score) or np.isnan(plain):
        return None
    return round(score - plain, 4)


def _matched_text(attempt: _Attempt) -> str:
    spec, hit = attempt.spec, attempt.hit
    return f"{hit.key.containment:.0%} of {'+'.join(spec.user_columns)!r} values found in {hit.table}.{'+'.join(spec.lake_columns)}"


def _describe(report: MergeReport, attempt: _Attempt, lift: float | None) -> None:
    spec = attempt.spec
    report.table, report.keys = attempt.hit.table, ["+".join(spec.user_columns), "+".join(spec.lake_columns)]
    report.strategy = describe_strategy(attempt.hit.key, attempt.join.aggregated)
    report.coverage, report.lift = round(attempt.join.coverage, 4), lift


def _table_row(attempt: _Attempt, lift: float, pruned: list[str]) -> dict:
    spec, join = attempt.spec, attempt.join
    kinds = attempt.hit.key.kind.split("+")
    grain = next((k for k in kinds if k in GRAINS), None)
    return {"table": spec.table, "keys": ["+".join(spec.user_columns), "+".join(spec.lake_columns)],
            "strategy": describe_strategy(attempt.hit.key, join.aggregated), "kept": True,
            "grain": (f"{grain}; " if grain else "") + (f"{join.lake_rows_per_row:g} lake rows per user row, aggregated"
                                                       if join.aggregated else "one lake row per user row"),
            "aggregation": "mean, sum, min, max; count, distinct, most frequent; rows" if join.aggregated else "none (many-to-one)",
            "coverage": round(join.coverage, 4), "lake_rows_per_row": join.lake_rows_per_row, "lift": lift,
            "added_columns": list(spec.added_columns), "pruned_columns": [c for c in pruned if c in join.added.columns]}


_KIND_WORDS = {"state": "state match (name, abbreviation or FIPS)", "fips_code": "county FIPS match", "zip_code": "zip code match",
               "country": "country match", "city_state": "city + state match", "generic": "value match (case, spaces, punctuation, leading zeros ignored)",
               "hour": "clock hour match", "date": "day match", "month": "month match", "year": "year match"}
_PART_WORDS = {"state": "state", "fips_code": "county FIPS", "zip_code": "zip", "country": "country", "generic": "code",
               "hour": "clock hour", "date": "day", "month": "month", "year": "year", "city_state": "city + state"}


def describe_strategy(key: KeyMatch, aggregated: bool = False) -> str:
    if key.strategy != "direct":
        text = key.strategy
    elif "+" in key.kind:
        text = " + ".join(_PART_WORDS.get(k, k) for k in key.kind.split("+")) + " match"
    else:
        text = _KIND_WORDS.get(key.kind, f"{key.kind} match")
    return text + _recipe_notes(key) + ("; lake rows aggregated to the user's grain" if aggregated else "")


def _recipe_notes(key: KeyMatch) -> str:
    """What the recipes did beyond the kind's normaliser: type words dropped, a clock read as UTC."""
    notes = []
    for side, recipe in (("your", key.user_recipe), ("the lake's", key.lake_recipe)):
        words = [w for found in re.findall(r"generic~([^&@]+)", recipe or "") for w in found.split(",") if w]
        if words:
            notes.append(f"type word{'s' if len(words) > 1 else ''} {', '.join(repr(w) for w in words)} dropped from {side} values")
    if zones_differ(key.user_recipe, key.lake_recipe):
        zoned = "the lake's" if UTC_MARK in (key.lake_recipe or "") else "your"
        other = "yours" if zoned == "the lake's" else "the lake's"
        notes.append(f"only {zoned} times name their zone: {other} are read as UTC")
    return "".join(f"; {n}" for n in notes)


def _candidate_row(hit: SearchHit) -> dict:
    row = {"table": hit.table, "score": hit.score, "name_similarity": hit.name_similarity, "containment": hit.containment}
    if hit.key:
        row.update({"user_columns": hit.key.user_columns, "lake_columns": hit.key.lake_columns, "kind": hit.key.kind,
                    "strategy": describe_strategy(hit.key), "lake_unique": hit.key.lake_unique})
    return row


def feature_splits(frame: pd.DataFrame, target: str, seed: int = 0) -> dict[str, int]:
    """How often a quick LightGBM model fitted on the frame splits on each column (0: it never uses it)."""
    import lightgbm as lgb

    data = frame[frame[target].notna()]
    if len(data) > EVAL_ROWS:
        data = data.sample(EVAL_ROWS, random_state=seed)
    X, y = _features(data, target), data[target]
    if X.shape[1] == 0:
        return {}
    params = {"n_estimators": 80, "learning_rate": 0.1, "num_leaves": 15, "min_child_samples": max(3, min(20, len(data) // 30)),
              "random_state": seed, "verbose": -1, "n_jobs": 1}
    model = lgb.LGBMClassifier(**params) if is_classification(y) else lgb.LGBMRegressor(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y.astype(str) if is_classification(y) else y.astype(float))
    return dict(zip(X.columns, (int(v) for v in model.booster_.feature_importance("split"))))
