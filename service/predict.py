"""``POST /models/{id}/predict``: rows scored by a run's saved model, kept warm in a bounded cache.

Scoring here is `automodel score` without the run around it: the batch is read exactly as the model's training
file was (``stages.replay_cleaning`` with the saved training schema), enriched with the same lake tables
(``stages.enrich_frame`` with the saved enrichment spec) and predicted in whole blocks (``stages.predict_rows``),
so a row gets the same prediction here as in a scoring run. The model bundle is loaded once and kept while it
is among the most recently used (``AUTOMODEL_API_MODEL_CACHE``); a bundle rewritten on disk (a rerun) is
loaded again. A warm model remembers what each text cell it was sent read as (``schema.ReplayMemo``). A loaded
model is rebuilt for a few rows at a time (``analyzers.serving.for_serving``: the same numbers, bit for bit, without
scikit-learn's per-call overhead in every member of a fold bag).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn

from analyzers.serving import for_serving
from automodel import stages
from automodel.errors import AutomodelError
from automodel.ingest.schema import ReplayMemo, TrainingSchema


class PredictError(AutomodelError):
    """Rows that cannot be scored: one sentence for the caller."""


@dataclass
class WarmModel:
    run_id: str
    path: Path
    stamp: tuple[int, int]
    bundle: dict
    served: object = None
    schema: TrainingSchema | None = None
    memo: ReplayMemo = field(default_factory=ReplayMemo)

    def __post_init__(self):
        if self.served is None:
            self.served = for_serving(self.bundle["fitted"])
        saved = self.bundle.get("training_schema")
        if self.schema is None and saved:
            self.schema = TrainingSchema.from_dict(saved)

    @property
    def fitted(self):
        return self.served


class ModelCache:
    """Loaded model bundles by run id, the least recently used dropped past ``capacity``; safe across threads."""

    def __init__(self, capacity: int):
        self.capacity = max(1, int(capacity))
        self._models: OrderedDict[str, WarmModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, run_id: str, path: Path) -> WarmModel:
        try:
            info = Path(path).stat()
        except OSError:
            raise PredictError(f"Run {run_id} has no saved model any more; rerun it or train a new one.") from None
        stamp = (info.st_mtime_ns, info.st_size)
        with self._lock:
            warm = self._models.get(run_id)
            if warm is not None and warm.stamp == stamp and warm.path == Path(path):
                self._models.move_to_end(run_id)
                return warm
            loading = self._loading.setdefault(run_id, threading.Lock())
        with loading:  # one load per model at a time: fifty first requests do not load it fifty times
            with self._lock:
                warm = self._models.get(run_id)
                if warm is not None and warm.stamp == stamp:
                    return warm
            warm = WarmModel(run_id, Path(path), stamp, stages.load_model_bundle(Path(path)))
            with self._lock:
                self._models[run_id] = warm
                self._models.move_to_end(run_id)
                while len(self._models) > self.capacity:
                    self._models.popitem(last=False)
            return warm

    def __len__(self) -> int:
        return len(self._models)

    def __contains__(self, run_id: str) -> bool:
        return run_id in self._models


def _as_cell(value, row: int, column: str):
    """A JSON value as a delimited file would hold it, so the training schema reads it as it read the training file."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (int, str)):
        return str(value)
    raise PredictError(f"Row {row + 1}, column {column!r} holds a {type(value).__name__}; give plain values (text, numbers, true/false or null).")


def rows_frame(rows: list) -> pd.DataFrame:
    """``[{column: value}, ...]`` as the loader gives a delimited file: every cell text, absent cells missing."""
    if not isinstance(rows, list) or not rows:
        raise PredictError('Give "rows" as a non-empty list of objects, e.g. {"rows": [{"bill_length_mm": 39.1, "island": "Biscoe"}]}.')
    columns: dict[str, None] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise PredictError(f"Row {i + 1} is not an object; give each row as {{column: value, ...}}.")
        columns.update(dict.fromkeys(row))
    data = {column: [_as_cell(row.get(column), i, column) for i, row in enumerate(rows)] for column in columns}
    return pd.DataFrame(data, dtype=object)


def score(warm: WarmModel, raw: pd.DataFrame, lake_dir: Path, catalog_db: Path) -> tuple[pd.DataFrame, dict]:
    """(predictions, scoring report): one row per input row, same order, in the user's labels."""
    if warm.schema is not None:
        frame, report = warm.schema.apply(raw, memo=warm.memo)
    else:
        frame, report = stages.replay_cleaning(raw, warm.path, bundle=warm.bundle)
    spec = warm.bundle.get("enrichment_spec")
    if spec:
        profile = stages.Profile(metas=[], target=None, target_reason="", tags=[])
        frame, _ = stages.enrich_frame(frame, profile, lake_dir, catalog_db, True, reuse_spec=spec, reusing_model=True, raw=raw)
    warm.fitted.check_columns(frame)
    # Parameters were checked when the model was fitted; checking them again on every call only costs time.
    with sklearn.config_context(skip_parameter_validation=True):
        return stages.predict_rows(warm.fitted, frame), report.to_dict()


def predictions_json(predictions: pd.DataFrame) -> list[dict]:
    """Rows of plain JSON values: numbers as numbers, missing as null, labels as the training file wrote them."""
    out = predictions.astype(object).where(predictions.notna(), None)
    records = out.to_dict(orient="records")
    for record in records:
        for key, value in record.items():
            if isinstance(value, np.generic):
                record[key] = value.item()
            if isinstance(record[key], float) and not math.isfinite(record[key]):
                record[key] = None
    return records
