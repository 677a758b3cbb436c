"""Enrichment: find the lake table that shares the user's keys, join it, and keep it only if it helps.

Many-to-one left joins only: the lake side is aggregated on the key (numbers averaged, other
values taken from the most common row), so the user's row count and row order never change.
Added columns are named ``<table>__<column>``. With a target, a quick cross-validated model on
the enriched frame must beat the same model on the plain frame for the enrichment to be kept;
the lift is reported either way.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from automodel.errors import AutomodelError
from automodel.lake.keys import compute_key
from automodel.lake.catalog import IndexOutOfDate, KeyMatch, SearchHit, load_crosswalks, load_lake_table, search_datasets, table_entry

MIN_CONTAINMENT = 0.5
MIN_LIFT = 0.005  # the enriched model must beat the plain one by at least this much (R² or accuracy points)
MAX_TRIED = 3
EVAL_ROWS = 5000


@dataclass
class JoinCandidate:
    table: str
    lake_column: str
    user_column: str
    key_kind: str
    containment: float  # share of the user's distinct key values found in the lake column
    score: float = 0.0
    strategy: str = "direct"


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

    def to_dict(self) -> dict:
        return asdict(self)


# ---- keys ---------------------------------------------------------------------------------------

_LAKE_RECIPE = {"hour": "hour", "code_hour": "code_hour", "city_state": "city_state"}


def synthesise_join_keys(user: pd.DataFrame, lake: pd.DataFrame, match: KeyMatch, lake_dir: Path) -> tuple[pd.Series, pd.Series, EnrichmentSpec]:
    """Canonical key values for both sides of a join that ``search_datasets`` found, and the spec that reproduces them.

    Strategies: direct role match (state name/abbreviation/FIPS interchangeable, zero-padded zip and FIPS
    codes); zip to county FIPS through the lake's crosswalk; county FIPS cut to its state; city + state;
    a code plus a clock hour (a timestamp truncated to the hour, a date plus an hour, or date parts).
    """
    user_recipe = _user_recipe(user, match)
    lake_recipe = _lake_recipe(lake, match)
    spec = EnrichmentSpec(table="", lake_column=match.lake_columns[0], user_column=match.user_columns[0], key_kind=match.kind,
                          added_columns=[], user_columns=list(match.user_columns), lake_columns=list(match.lake_columns),
                          user_recipe=user_recipe, lake_recipe=lake_recipe, bridge=match.bridge)
    return user_key_values(user, spec, lake_dir), compute_key(lake, spec.lake_columns, lake_recipe), spec


def _user_recipe(user: pd.DataFrame, match: KeyMatch) -> str:
    if match.strategy != "direct":
        return "zip_to_county" if match.bridge else "county_to_state"
    if match.kind in ("hour", "code_hour"):
        time_columns = match.user_columns[1:] if match.kind == "code_hour" else match.user_columns
        time_recipe = "hour" if len(time_columns) == 1 else ("date_hour" if len(time_columns) == 2 else "parts")
        return f"code_{time_recipe}" if match.kind == "code_hour" else time_recipe
    return match.kind


def _lake_recipe(lake: pd.DataFrame, match: KeyMatch) -> str:
    if match.kind in ("hour", "code_hour"):
        time_columns = match.lake_columns[1:] if match.kind == "code_hour" else match.lake_columns
        time_recipe = "hour" if len(time_columns) == 1 else ("date_hour" if len(time_columns) == 2 else "parts")
        return f"code_{time_recipe}" if match.kind == "code_hour" else time_recipe
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

def _aggregate_on_key(lake: pd.DataFrame, keys: pd.Series, drop: list[str]) -> pd.DataFrame:
    """One lake row per key value: numbers averaged, anything else from its most common value."""
    data = lake.drop(columns=[c for c in drop if c in lake.columns]).assign(__key=keys.to_numpy()).dropna(subset=["__key"])
    if not data["__key"].duplicated().any():
        return data.set_index("__key")
    numeric = [c for c in data.columns if c != "__key" and pd.api.types.is_numeric_dtype(data[c]) and not pd.api.types.is_bool_dtype(data[c])]
    other = [c for c in data.columns if c != "__key" and c not in numeric]
    grouped = data.groupby("__key", sort=False)
    parts = [grouped[numeric].mean()] if numeric else []
    if other:
        parts.append(grouped[other].agg(lambda s: s.mode(dropna=True).iloc[0] if s.notna().any() else None))
    return pd.concat(parts, axis=1)[[c for c in data.columns if c != "__key"]]


def apply_join(frame: pd.DataFrame, lake_dir: Path, spec: EnrichmentSpec) -> tuple[pd.DataFrame, float]:
    """Left-join one lake table on a synthesised key; return the enriched frame and the coverage (share of rows matched)."""
    lake = load_lake_table(lake_dir, table_entry(lake_dir, spec.table))
    lake_keys = compute_key(lake, spec.lake_columns, spec.lake_recipe)
    right = _aggregate_on_key(lake, lake_keys, drop=spec.lake_columns)
    right.columns = [f"{spec.table}__{c}" for c in right.columns]
    if spec.added_columns:
        right = right[[c for c in right.columns if c in spec.added_columns]]
    user_keys = user_key_values(frame, spec, lake_dir)
    matched = user_keys.isin(right.index) & user_keys.notna()
    added = right.reindex(user_keys.to_numpy())
    added.index = frame.index
    enriched = pd.concat([frame, added], axis=1)
    return enriched, float(matched.mean()) if len(frame) else 0.0


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


def quick_cv_score(frame: pd.DataFrame, target: str, folds: int = 3, seed: int = 0) -> tuple[float, str]:
    """Mean 3-fold score of a small LightGBM model: R² for a numeric target, accuracy for classes."""
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = cross_val_score(model, X, y, cv=splitter, scoring=metric, error_score=np.nan)
    return float(np.nanmean(scores)) if np.isfinite(scores).any() else float("nan"), metric


# ---- choosing -----------------------------------------------------------------------------------

def find_candidates(frame: pd.DataFrame, metas, db_path: Path, top_k: int = 5, lake_dir: Path | None = None,
                    category: str | None = None) -> list[JoinCandidate]:
    """Lake tables the frame can be joined with, best first (search hits that have a key)."""
    hits = search_datasets(metas, top_k=top_k, frame=frame, db_path=db_path, lake_dir=lake_dir, category=category)
    return [_candidate(h) for h in hits if h.key is not None]


def _candidate(hit: SearchHit) -> JoinCandidate:
    key = hit.key
    return JoinCandidate(hit.table, "+".join(key.lake_columns), "+".join(key.user_columns), key.kind, key.containment, hit.score, key.strategy)


def rank_and_merge(frame: pd.DataFrame, metas, lake_dir: Path, db_path: Path, *, target: str | None = None,
                   category: str | None = None, min_lift: float = MIN_LIFT, max_tried: int = MAX_TRIED) -> tuple[pd.DataFrame, MergeReport]:
    """Search the lake, join the best joinable tables in turn and keep the one that lifts a quick model the most.

    Without a target there is nothing to prove the enrichment on, so nothing is kept (the best
    joinable table is still reported with its coverage).
    """
    lake_dir, db_path = Path(lake_dir), Path(db_path)
    try:
        hits = search_datasets(metas, top_k=10, frame=frame, db_path=db_path, lake_dir=lake_dir, category=category)
    except IndexOutOfDate as exc:  # enrichment is optional: the run goes on unenriched and says why
        return frame, MergeReport(reason=exc.message)
    if not hits:
        return frame, MergeReport(reason="the lake index is empty or missing; build it with `automodel index`")
    report = MergeReport(candidates=[_candidate_row(h) for h in hits])
    joinable = [h for h in hits if h.key is not None and h.key.containment >= MIN_CONTAINMENT]
    if not joinable:
        has_key = any(h.key is not None for h in hits)
        scope = f" in category {category!r}" if category else ""
        report.reason = (f"no lake table{scope} contains at least {MIN_CONTAINMENT:.0%} of the key values" if has_key
                         else f"no join key (state, county FIPS, zip, city + state, code + hour) matches a lake table{scope}")
        return frame, report
    plain_score = metric = None
    if target and target in frame.columns and frame[target].notna().sum() >= 12:
        plain_score, metric = quick_cv_score(frame, target)
    tried = []
    for hit in joinable[:max_tried]:
        attempt = _try_join(frame, hit, lake_dir, target if plain_score is not None else None)
        tried.append(attempt)
        row = next(r for r in report.candidates if r["table"] == hit.table)
        row.update({"tried": True, "coverage": round(attempt.coverage, 4), "lift": _lift(attempt.score, plain_score)})
        # Search order already says which table fits best; the first one that proves useful is kept.
        if plain_score is None or (_lift(attempt.score, plain_score) or -1.0) >= min_lift:
            break
    chosen = tried[-1] if plain_score is None or (_lift(tried[-1].score, plain_score) or -1.0) >= min_lift else tried[0]
    spec, hit = chosen.spec, chosen.hit
    lift = _lift(chosen.score, plain_score)
    report.table, report.keys = hit.table, ["+".join(spec.user_columns), "+".join(spec.lake_columns)]
    report.strategy = _describe_strategy(hit.key)
    report.coverage, report.lift = round(chosen.coverage, 4), lift
    report.metric = metric
    report.plain_score = None if plain_score is None else round(plain_score, 4)
    report.enriched_score = None if chosen.score is None else round(chosen.score, 4)
    matched = f"{hit.key.containment:.0%} of {'+'.join(spec.user_columns)!r} values found in {hit.table}.{'+'.join(spec.lake_columns)}"
    if plain_score is None:
        report.reason = f"{matched}; not kept: no target to prove that it helps"
        return frame, report
    if lift is not None and lift >= min_lift:
        # Only a kept enrichment carries a spec: `automodel score` re-applies exactly what the model was trained on.
        report.kept, report.added_columns, report.spec = True, spec.added_columns, asdict(spec)
        report.reason = f"{matched}; kept: 3-fold {metric} {plain_score:.3f} -> {chosen.score:.3f}"
        return chosen.enriched, report
    others = f" (nor did {len(tried) - 1} other table{'s' if len(tried) > 2 else ''})" if len(tried) > 1 else ""
    report.reason = (f"{matched}; not kept: it did not improve a quick 3-fold model ({metric} {plain_score:.3f} -> "
                     f"{chosen.score:.3f}){others}")
    return frame, report


@dataclass
class _Attempt:
    hit: SearchHit
    spec: EnrichmentSpec
    enriched: pd.DataFrame
    coverage: float
    score: float | None


def _try_join(frame: pd.DataFrame, hit: SearchHit, lake_dir: Path, target: str | None) -> _Attempt:
    lake = load_lake_table(lake_dir, table_entry(lake_dir, hit.table))
    _, _, spec = synthesise_join_keys(frame, lake, hit.key, lake_dir)
    spec.table = hit.table
    enriched, coverage = apply_join(frame, lake_dir, spec)
    spec.added_columns = [c for c in enriched.columns if c not in frame.columns]
    score = quick_cv_score(enriched, target)[0] if target else None
    return _Attempt(hit, spec, enriched, coverage, score)


def _lift(score: float | None, plain: float | None) -> float | None:
    if score is None or plain is None or np.isnan(score) or np.isnan(plain):
        return None
    return round(score - plain, 4)


def _describe_strategy(key: KeyMatch) -> str:
    if key.strategy != "direct":
        return key.strategy
    return {"state": "state match (name, abbreviation or FIPS)", "fips_code": "county FIPS match", "zip_code": "zip code match",
            "country": "country match", "city_state": "city + state match", "hour": "clock hour match",
            "code_hour": "code + clock hour match"}.get(key.kind, f"{key.kind} match")


def _candidate_row(hit: SearchHit) -> dict:
    row = {"table": hit.table, "score": hit.score, "name_similarity": hit.name_similarity, "containment": hit.containment}
    if hit.key:
        row.update({"user_columns": hit.key.user_columns, "lake_columns": hit.key.lake_columns, "kind": hit.key.kind, "strategy": hit.key.strategy})
    return row
