"""How a run measures itself: the validation scheme, chosen from the data and stated, and the folds it makes.

A score is a promise about the rows the model will be asked to score, so the held-out rows must differ from
the training rows the way those future rows will:

- ``time``: a date or time column orders the rows (the file is sorted by it, or its values fall on a regular
  grid of periods: days, hours, months). Forward-chaining folds, cut on period boundaries, each validating a
  later block of periods than it trains on, with a gap of one period after each cut (rows of the day before
  the cut share weather, news and staffing with the day after it); the last fold is the final holdout on the
  latest period and gives the headline metric.
- ``group``: a column whose values repeat and identify an entity (a customer, a store, a patient: a column
  role inference calls an identifier, or whose name says it names or identifies something) with at least
  MIN_ENTITIES entities and several rows each. Grouped folds: no entity on both sides. A low-cardinality
  category (species, region) is not an entity: future rows come from the same few values, so random folds
  measure them right; nor is an id that is unique per row.
- ``random``: otherwise; stratified by class for classifiers, as before.

``--validate random|time:COL|group:COL`` (a drop folder's sidecar key ``validate``) overrides the choice;
``group:A+B`` names a composite entity (e.g. ``series+baker``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SCHEMES = ("random", "time", "group")
MIN_PERIODS = 30  # distinct time stamps before time order is a validation scheme rather than a few batches
MIN_ENTITIES = 20  # fewer distinct values is a category the future rows share, not entities they will not
MIN_ROWS_PER_ENTITY = 1.5  # on average; an id unique per row is no entity
REGULAR_GRID_SHARE = 0.8  # share of gaps between distinct stamps within 3x the usual one: a series, not scattered dates
SORTED_CORRELATION = 0.9  # Spearman correlation of row position with time for a file written in time order
GAP_MIN_PERIODS = 50  # from this many distinct periods, one period after each cut is left out of validation
ENTITY_NAME = re.compile(
    r"(^|[^a-z])(id|ids|key|code|uuid|name|customer|client|user|account|patient|subject|participant|player|store|shop|"
    r"station|site|person|member|household|device|machine|sensor|product|item|sku|team|driver|company|firm|series|"
    r"episode|baker|student|school|hospital|firm|vendor|supplier|merchant|host|listing|property|building|plant|farm|"
    r"tail|flight|vehicle|car|unit|owner|applicant|borrower|loan|policy|contract|session)(s)?([^a-z]|$)")
ENTITY_ROLES = ("identifier", "categorical", "text", "email", "phone", "url")


@dataclass
class ValidationPlan:
    """The scheme, the column(s) it rests on and why; ``requested`` when the user named it."""

    scheme: str = "random"
    columns: tuple[str, ...] = ()
    reason: str = "no date column orders the rows and no column repeats an entity, so rows are exchangeable"
    requested: bool = False
    entity: tuple[str, ...] = ()  # with a time scheme: the entity a lag feature follows (series + date), if any
    notes: list[str] = field(default_factory=list)

    @property
    def column(self) -> str | None:
        return "+".join(self.columns) if self.columns else None

    def to_dict(self) -> dict:
        out = {"scheme": self.scheme, "column": self.column, "columns": list(self.columns), "reason": self.reason,
               "source": "user" if self.requested else "detected"}
        if self.entity:
            out["entity"] = "+".join(self.entity)
        return out


def parse_validate(text) -> dict:
    """``random``, ``time:COL`` or ``group:COL`` (``group:A+B`` for a composite) as {"scheme", "columns"}; raises
    ValueError with one sentence otherwise. Columns are checked against the table when it is known."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("--validate must be random, time:COL or group:COL (e.g. time:date, group:customer_id).")
    value = text.strip()
    scheme, _, column = value.partition(":")
    scheme = scheme.strip().lower()
    if scheme == "random" and not column.strip():
        return {"scheme": "random", "columns": []}
    if scheme in ("time", "group") and column.strip():
        return {"scheme": scheme, "columns": [column.strip()]}
    raise ValueError(f"--validate {value!r} is not understood; use random, time:COL or group:COL (e.g. time:date, group:customer_id).")


def _requested_columns(frame: pd.DataFrame, scheme: str, named: str) -> tuple[str, ...]:
    if named in frame.columns:
        return (named,)
    parts = [p.strip() for p in named.split("+")]
    if scheme == "group" and len(parts) > 1 and all(p in frame.columns for p in parts):
        return tuple(parts)
    known = ", ".join(repr(c) for c in list(frame.columns)[:8])
    raise ValueError(f"--validate {scheme}:{named} names a column the table does not have; choose one of {known}"
                     f"{'...' if frame.shape[1] > 8 else ''}.")


YEAR_NAME = re.compile(r"(^|[^a-z])(year|yr)s?($|[^a-z])")
YEAR_RANGE = (1000, 2200)


def is_year_column(values: pd.Series, name: str) -> bool:
    """Whole numbers in a plausible range under a name that says year (1952, 1957, ...): a time column, never an entity."""
    if not YEAR_NAME.search(str(name).lower()) or not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    present = values.dropna()
    return (len(present) >= 0.95 * len(values) and bool((present == present.round()).all())
            and bool(present.between(*YEAR_RANGE).all()))


def as_stamps(values: pd.Series) -> pd.Series:
    """Dates and times as naive datetimes (NaT where unreadable); whole-number years as their first day."""
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        present = values.dropna()
        if len(present) and bool((present == present.round()).all()) and bool(present.between(*YEAR_RANGE).all()):
            return pd.to_datetime(values.round().astype("Int64").astype(str), format="%Y", errors="coerce")
        stamps = pd.to_datetime(values.astype(object).where(values.notna(), None), errors="coerce", format="mixed")
    else:
        stamps = pd.to_datetime(values.astype(object).where(values.notna(), None), errors="coerce", format="mixed")
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert(None)
    return stamps


def time_order_reason(stamps: pd.Series) -> str | None:
    """Why this column orders the rows in time, or None when it does not (a birth date, a few batches)."""
    present = stamps.dropna()
    if len(present) < len(stamps) * 0.95:
        return None
    distinct = np.sort(present.unique())
    if len(distinct) < MIN_PERIODS:
        return None
    position = np.arange(len(present))
    ranks = present.rank(method="average").to_numpy()
    correlation = float(np.corrcoef(position, ranks)[0, 1]) if len(present) > 2 else 0.0
    if correlation >= SORTED_CORRELATION:
        return f"the rows are written in the order of its {len(distinct):,} time stamps"
    gaps = np.diff(distinct).astype("timedelta64[s]").astype(np.int64)
    usual = int(np.median(gaps))
    if usual > 0 and float(np.mean(gaps <= 3 * usual)) >= REGULAR_GRID_SHARE:
        return f"its {len(distinct):,} distinct values fall on a regular grid of {period_name(usual)} (a series in time)"
    return None


def period_name(seconds: int) -> str:
    for size, name in ((365 * 86400, "years"), (28 * 86400, "months"), (7 * 86400, "weeks"), (86400, "days"), (3600, "hours"),
                       (60, "minutes")):
        if seconds >= size:
            return name
    return "seconds"


def _entity_reason(frame: pd.DataFrame, name: str, role: str | None) -> str | None:
    values = frame[name]
    if pd.api.types.is_float_dtype(values) or pd.api.types.is_bool_dtype(values):
        return None
    present = values.dropna()
    if len(present) < len(values) * 0.9:
        return None
    distinct = int(present.astype(str).nunique())
    per_entity = len(present) / max(distinct, 1)
    if distinct < MIN_ENTITIES or per_entity < MIN_ROWS_PER_ENTITY:
        return None
    named = bool(ENTITY_NAME.search(str(name).lower()))
    # A panel written entity by entity: each value's rows form one block (a category sorted by is too, but has few values).
    changes = int((present.astype(str) != present.astype(str).shift()).sum())
    blocks = changes == distinct
    if role != "identifier" and not named and not blocks:
        return None
    why = ("role inference calls it an identifier" if role == "identifier" else "its name says it identifies something" if named
           else "the file is written one value at a time, each value's rows together")
    return f"its {distinct:,} values repeat over {len(present):,} rows ({per_entity:.1f} rows each on average) and {why}"


def choose_validation(frame: pd.DataFrame, metas: list, target: str | None, requested: dict | str | None = None) -> ValidationPlan:
    """The scheme for this table: the user's when given, else time order, else repeated entities, else random."""
    roles = {m.name: m.role for m in metas}
    if isinstance(requested, str):
        requested = parse_validate(requested)
    time_columns = [m.name for m in metas if m.name != target and m.name in frame.columns
                    and (m.role in ("date", "datetime") or is_year_column(frame[m.name], m.name))]
    # A year is when a row happened: future rows bring new years, so it orders them and is never an entity.
    years = tuple(name for name in time_columns if is_year_column(frame[name], name))
    entity = _detect_entity(frame, roles, target, exclude=years)
    if requested:
        scheme = requested["scheme"]
        if scheme == "random":
            return ValidationPlan("random", (), "forced by --validate random", requested=True)
        columns = _requested_columns(frame, scheme, requested["columns"][0])
        if target in columns:
            raise ValueError(f"--validate {scheme}:{'+'.join(columns)} names the target; name a date or entity column instead.")
        if scheme == "time":
            stamps = as_stamps(frame[columns[0]])
            if stamps.notna().sum() < len(frame) * 0.5:
                raise ValueError(f"--validate time:{columns[0]} names a column that does not hold dates or times; name a date column.")
            plan = ValidationPlan("time", columns, f"named by --validate time:{columns[0]}", requested=True)
            plan.entity = entity[0] if entity else series_key(frame, metas, columns[0], target)
            return plan
        return ValidationPlan("group", columns, f"named by --validate group:{'+'.join(columns)}", requested=True)
    found = []
    for name in time_columns:
        why = time_order_reason(as_stamps(frame[name]))
        if why:
            found.append((name, why))
    if found:
        name, why = max(found, key=lambda f: ("written in the order" in f[1], frame[f[0]].nunique()))
        plan = ValidationPlan("time", (name,), f"{name!r} orders the rows in time: {why}; a model is judged on later periods than it learned from")
        plan.entity = entity[0] if entity else series_key(frame, metas, name, target)
        return plan
    if entity:
        columns, why = entity
        return ValidationPlan("group", columns, f"{'+'.join(columns)!r} repeats an entity: {why}; a model is judged on entities it never saw")
    return ValidationPlan()


def _detect_entity(frame: pd.DataFrame, roles: dict, target: str | None, exclude=()) -> tuple[tuple[str, ...], str] | None:
    found = []
    for name, role in roles.items():
        if name == target or name in exclude or name not in frame.columns or role not in ENTITY_ROLES + ("numeric",):
            continue
        if role == "numeric" and not pd.api.types.is_integer_dtype(frame[name]):
            continue
        why = _entity_reason(frame, name, role)
        if why:
            found.append((name, why))
    if not found:
        return None
    keys = {name: frame[name].astype(str) for name, _ in found}
    entities = []
    for name, why in found:
        columns = (name,)
        for other, _ in found:
            if other == name or keys[other].nunique() >= keys[name].nunique():
                continue  # only a coarser column can hold this one's numbering
            pairs = int(pd.MultiIndex.from_arrays([keys[other], keys[name]]).nunique())
            if pairs > MIN_ROWS_PER_ENTITY * keys[name].nunique():
                # The same value under several values of another entity column: a number within it (student 16 of each
                # school), so only the pair names something; a pair unique per row names a row, not an entity.
                columns = (other, name) if len(frame) / pairs >= MIN_ROWS_PER_ENTITY else ()
                if columns:
                    why = f"{other}+{name} pairs repeat over {len(frame):,} rows ({len(frame) / pairs:.1f} rows each): {name!r} numbers rows within {other!r}"
                break
        if columns:
            entities.append((columns, why))
    if not entities:
        return None
    # Fewest rows per entity first: the finest entity (a customer rather than their region) is the one rows repeat.
    return max(entities, key=lambda e: entity_codes(frame, e[0]).max())


def series_key(frame: pd.DataFrame, metas: list, time_column: str, target: str | None) -> tuple[str, ...]:
    """The columns that, with the time stamp, name one row: the series a lag follows (each airport at each hour of the
    day, when the stamps are days). Empty when the stamps alone are unique or no one or two columns do it."""
    stamps = as_stamps(frame[time_column]).astype(str)
    if stamps.nunique() >= 0.95 * len(frame):
        return ()
    candidates = [m.name for m in metas if m.name not in (time_column, target) and m.name in frame.columns
                  and m.role in ENTITY_ROLES + ("numeric", "boolean", "state", "city", "country")
                  and not pd.api.types.is_float_dtype(frame[m.name]) and 1 < frame[m.name].nunique() <= max(1000, len(frame) // 20)]
    candidates.sort(key=lambda c: frame[c].nunique())
    for size in (1, 2):
        for i, first in enumerate(candidates):
            columns = (first,) if size == 1 else None
            for second in ([None] if size == 1 else candidates[i + 1:]):
                columns = (first,) if second is None else (first, second)
                key = pd.MultiIndex.from_arrays([stamps, *(frame[c].astype(str) for c in columns)])
                if key.nunique() >= 0.95 * len(frame):
                    return columns
    return ()


def entity_codes(frame: pd.DataFrame, columns) -> np.ndarray:
    """One integer per entity (composite keys joined)."""
    columns = list(columns)
    if len(columns) == 1:
        return pd.factorize(frame[columns[0]].astype(str))[0]
    return pd.factorize(frame[columns].astype(str).agg("\x1f".join, axis=1))[0]


# ---- folds -------------------------------------------------------------------------------------------

def period_codes(stamps: np.ndarray) -> np.ndarray:
    """Each row's rank among the distinct time stamps (missing stamps count as the earliest)."""
    values = pd.Series(stamps)
    filled = values.fillna(values.min()) if values.notna().any() else values
    return pd.factorize(filled.to_numpy(), sort=True)[0]


def forward_folds(stamps: np.ndarray, n_folds: int = 4, gap: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Forward-chaining folds cut on period boundaries: the distinct periods in n_folds + 1 consecutive blocks; fold k
    trains on blocks 0..k and validates on block k+1, less ``gap`` periods right after the cut. The last fold is the
    final holdout on the latest period."""
    periods = period_codes(stamps)
    n_periods = int(periods.max()) + 1 if len(periods) else 0
    if gap is None:
        gap = 1 if n_periods >= GAP_MIN_PERIODS else 0
    if n_periods < n_folds + 1:
        n_folds = max(n_periods - 1, 1)
    edges = np.linspace(0, n_periods, n_folds + 2).round().astype(int)
    folds = []
    for k in range(n_folds):
        cut, end = edges[k + 1], edges[k + 2]
        train = np.flatnonzero(periods < cut)
        valid = np.flatnonzero((periods >= min(cut + gap, end - 1)) & (periods < end))
        if len(train) and len(valid):
            folds.append((train, valid))
    return folds


def latest_holdout(stamps: np.ndarray, share: float = 0.2, gap: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Train on every period before the cut, validate on the latest ``share`` of rows (whole periods), less the gap."""
    periods = period_codes(stamps)
    n_periods = int(periods.max()) + 1
    if gap is None:
        gap = 1 if n_periods >= GAP_MIN_PERIODS else 0
    counts = np.bincount(periods, minlength=n_periods)
    later = np.cumsum(counts[::-1])[::-1]  # rows in this period and after
    cut = int(np.flatnonzero(later >= share * len(periods))[-1]) if (later >= share * len(periods)).any() else n_periods - 1
    cut = min(max(cut, 1), n_periods - 1)
    train = np.flatnonzero(periods < cut)
    valid = np.flatnonzero(periods >= min(cut + gap, n_periods - 1))
    return train, valid


def grouped_folds(groups: np.ndarray, n_folds: int, seed: int, strata: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds with every entity on one side only (stratified by class when the classes allow)."""
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    n_folds = max(2, min(n_folds, n_groups))
    if strata is not None:
        try:
            splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
            return [(np.sort(a), np.sort(b)) for a, b in splitter.split(np.zeros(len(groups)), strata, groups)]
        except ValueError:
            pass
    # GroupKFold balances fold sizes but does not shuffle; a fixed shuffle of the entity codes first keeps folds random.
    shuffled = np.random.default_rng(seed).permutation(n_groups)[groups]
    return [(np.sort(a), np.sort(b)) for a, b in GroupKFold(n_splits=n_folds).split(np.zeros(len(groups)), groups=shuffled)]


def grouped_holdout(groups: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import GroupShuffleSplit

    train, valid = next(GroupShuffleSplit(n_splits=1, test_size=share, random_state=seed).split(np.zeros(len(groups)), groups=groups))
    return np.sort(train), np.sort(valid)


# ---- the interval around the headline metric --------------------------------------------------------

BOOTSTRAP_ROUNDS = 300
INTERVAL_LEVEL = 0.9


def _r2(actual: np.ndarray, predicted: np.ndarray) -> float:
    """R² as scikit-learn's ``r2_score`` computes it (a constant target: 1 when predicted exactly, else 0), without its
    input checks: the bootstrap scores hundreds of resamples."""
    residual = float(np.sum((actual - predicted) ** 2))
    total = float(np.sum((actual - np.mean(actual)) ** 2))
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


def _macro_f1(actual: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Macro F1 over class codes 0..n_classes-1 as ``f1_score(average="macro", zero_division=0)`` gives it; an actual code
    of -1 (a label the model does not know) counts as a miss for whatever was predicted."""
    known = actual >= 0
    true_positive = np.bincount(actual[known & (actual == predicted)], minlength=n_classes)[:n_classes].astype(float)
    support = np.bincount(actual[known], minlength=n_classes)[:n_classes].astype(float)
    predicted_count = np.bincount(predicted, minlength=n_classes)[:n_classes].astype(float)
    denominator = support + predicted_count
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros(n_classes), where=denominator > 0)
    return float(np.mean(f1))


def _scorer(metric: str, actual, predicted, classes: list | None):
    """``score(idx)``: the headline metric on the rows ``idx`` of ``actual`` and ``predicted`` (numbers, or class probabilities)."""
    from sklearn import metrics as skm

    actual = np.asarray(actual)
    if classes is None:
        y, p = actual.astype(float), np.asarray(predicted, dtype=float)

        def score(idx):
            return _r2(y[idx], p[idx]) if metric == "r2" else float(np.sqrt(np.mean((y[idx] - p[idx]) ** 2)))
        return score
    lookup = {str(c): i for i, c in enumerate(classes)}
    y = np.asarray([lookup.get(str(v), -1) for v in actual])
    proba = np.asarray(predicted, dtype=float)
    labels = proba.argmax(axis=1)

    def score(idx):
        if metric == "roc_auc" and proba.shape[1] == 2:
            try:
                return float(skm.roc_auc_score(y[idx] == 1, proba[idx, 1]))
            except ValueError:
                return float("nan")
        if metric == "accuracy":
            return float(np.mean(y[idx] == labels[idx]))
        return _macro_f1(y[idx], labels[idx], len(classes))
    return score


MIN_PART_ROWS = 20  # a fold or block smaller than this says more about its own noise than about the next batch


def scores_by_part(metric: str, actual, predicted, classes: list | None, parts: np.ndarray) -> list[float]:
    """The metric on each part (a validation fold, or a block of periods or entities) with enough rows to score."""
    score = _scorer(metric, actual, predicted, classes)
    parts = np.asarray(parts)
    values = []
    for part in pd.unique(parts):
        idx = np.flatnonzero(parts == part)
        if len(idx) >= MIN_PART_ROWS:
            value = score(idx)
            if value == value:
                values.append(float(value))
    return values


def consecutive_blocks(units: np.ndarray, n_blocks: int = 3) -> np.ndarray:
    """Row-aligned block numbers 0..n_blocks-1 cutting the sorted distinct ``units`` (periods) into consecutive runs."""
    distinct = np.sort(pd.unique(units))
    if len(distinct) < n_blocks:
        return np.zeros(len(units), dtype=int)
    edges = np.array_split(np.arange(len(distinct)), n_blocks)
    block_of = {distinct[i]: b for b, edge in enumerate(edges) for i in edge}
    return np.asarray([block_of[u] for u in units])


METRIC_RANGE = {"r2": (-np.inf, 1.0), "rmse": (0.0, np.inf), "roc_auc": (0.0, 1.0), "accuracy": (0.0, 1.0), "f1": (0.0, 1.0)}


def next_part_interval(part_scores: list[float], level: float, metric: str) -> tuple[float, float]:
    """Where the score of one more part (the next period, the next batch of entities) falls, at ``level``, taking the
    parts' scores as draws from one distribution: mean ± t(k-1) · sd · sqrt(1 + 1/k), the prediction interval for a new
    draw. A few parts that agree give a narrow one; a few that disagree say the next one can land well outside them
    (a season the training file never showed after its cut, a school unlike the others). Clipped to the metric's range."""
    from scipy import stats

    values = np.asarray(part_scores, dtype=float)
    k = len(values)
    half = float(stats.t.ppf((1 + level) / 2, k - 1) * values.std(ddof=1) * np.sqrt(1 + 1 / k))
    floor, ceiling = METRIC_RANGE.get(metric, (-np.inf, np.inf))
    centre = float(values.mean())
    return max(centre - half, floor), min(centre + half, ceiling)


def metric_interval(metric: str, actual, predicted, units: np.ndarray | None, unit_name: str, classes: list | None = None,
                    level: float = INTERVAL_LEVEL, seed: int = 0, part_scores: list[float] = (),
                    part_name: str = "") -> dict | None:
    """A percentile bootstrap of the headline metric over the held-out units (rows, entities or periods, resampled whole
    so rows that move together stay together). ``predicted``: numbers (regression) or class probabilities.

    ``part_scores`` (``scores_by_part``: the metric on each validation fold, or on blocks of periods or entities): where
    rows are not exchangeable, the next period or the next set of entities can score unlike every resample of this one;
    the interval is then widened to hold the score of every part, each another period or set of entities
    (``part_name``), and the prediction interval for the score of one more part (``next_part_interval``)."""
    actual = np.asarray(actual)
    if len(actual) < 10:
        return None
    units = np.arange(len(actual)) if units is None else pd.factorize(np.asarray(units))[0]
    n_units = int(units.max()) + 1
    if n_units < 5:
        return None
    members = [np.flatnonzero(units == u) for u in range(n_units)] if n_units < len(actual) else None
    score = _scorer(metric, actual, predicted, classes)

    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(BOOTSTRAP_ROUNDS):
        picked = rng.integers(n_units, size=n_units)
        idx = np.concatenate([members[u] for u in picked]) if members is not None else picked
        value = score(idx)
        if value == value:
            draws.append(value)
    if len(draws) < BOOTSTRAP_ROUNDS // 2:
        return None
    tail = (1 - level) / 2
    low, high = (float(v) for v in np.quantile(draws, [tail, 1 - tail]))
    method = f"bootstrap over the {n_units:,} held-out {unit_name} ({BOOTSTRAP_ROUNDS} resamples, {level:.0%} percentile interval)"
    by_part = list(part_scores)
    if len(by_part) >= 2:
        next_low, next_high = next_part_interval(by_part, level, metric)
        low, high = min(low, min(by_part), next_low), max(high, max(by_part), next_high)
        method += (f", widened to hold the score of each of the {len(by_part)} {part_name} ({', '.join(f'{v:.3f}' for v in by_part)}) "
                   f"and the {level:.0%} prediction interval for one more such part ({next_low:.3f} to {next_high:.3f})")
    return {"metric": metric, "value": float(score(np.arange(len(actual)))), "low": low, "high": high, "level": level,
            "method": method, "units": n_units, "part_scores": [round(v, 6) for v in by_part]}
