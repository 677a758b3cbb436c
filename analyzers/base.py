"""The Analyzer contract, the result every analyzer returns, and the fitted model it saves."""

from __future__ import annotations

import platform
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from automodel.errors import ScoringError


@dataclass
class AnalysisContext:
    """Everything an analyzer may use besides the frame; explicit, no global state."""

    metas: list  # list[ColumnMeta]
    target: str | None = None
    training_mask: pd.Series | None = None
    time_column: str | None = None
    min_r2: float = 0.5
    max_mape: float = 0.3
    max_rows_first_pass: int = 25_000
    max_rows_full: int = 1_000_000
    time_budget_s: float = 60.0
    random_state: int = 0
    n_jobs: int = 2  # LightGBM/XGBoost threads; more than the cores makes them busy-wait
    exclude: dict[str, str] = field(default_factory=dict)
    search_backend: str = "automodel"  # or "pycaret" (compare_models)
    model_families: tuple = ()  # AUTOMODEL_MODEL_FAMILIES: the families the search tries; empty: all
    metric: str | None = None  # the search's selection metric; None: R² for regression, ROC-AUC for two classes, macro F1 for more
    leakage_guard: bool = True
    min_rows: int = 20  # AUTOMODEL_MIN_ROWS: below it no model is trained and no correlation is claimed
    interval_coverage: float = 0.9  # regression prediction intervals (AUTOMODEL_INTERVAL_COVERAGE)
    keep: tuple = ()  # columns the user keeps (--keep): never left out by the leakage guard
    drop: tuple = ()  # columns the user leaves out (--drop)
    validation: Any = None  # analyzers.validation.ValidationPlan: the one scheme every held-out score uses; None: random


@dataclass
class FittedModel:
    """A fitted pipeline plus what it needs to score new data safely."""

    pipeline: Any
    task: str
    target: str | None
    feature_columns: list[str]
    classes: list | None = None
    analyzer: str = ""
    model_name: str = ""
    versions: dict = field(default_factory=dict)
    interval: dict | None = None  # regression: {"coverage", "half_width"} from held-out errors (analyzers.uncertainty)
    calibrator: Any = None  # classification: a ProbabilityCalibrator when held-out probabilities were off
    history: dict | None = None  # analyzers.lags.LagSpec.to_dict(): lag features of the target, replayed from a batch's history

    def history_columns(self) -> list[str]:
        return list((getattr(self, "history", None) or {}).get("columns") or [])

    def with_history(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the lag features the model reads, computed from its own earlier rows (analyzers.lags)."""
        columns = self.history_columns()
        if not columns or all(c in frame.columns for c in columns):
            return frame
        from analyzers.lags import LagSpec, add_lag_features

        return add_lag_features(frame, LagSpec.from_dict(self.history), scoring=True)
    # Two classes: the second class is predicted from this probability up (chosen on held-out rows, analyzers.decision);
    # None: the likelier class.
    threshold: float | None = None

    def check_columns(self, frame: pd.DataFrame) -> None:
        derived = set(self.history_columns())
        missing = [c for c in self.feature_columns if c not in frame.columns and c not in derived]
        if missing:
            shown = ", ".join(repr(c) for c in missing[:5])
            raise ScoringError(
                f"The data to score lacks {len(missing)} column(s) the model was trained on ({shown}); add them or train a new model."
            )

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """One row per input row, same order: ``prediction`` and, for classifiers, ``proba_<class>`` (calibrated when
        the model carries a calibrator; a binary model's label follows its decision threshold when it has one); for regression with an interval, ``prediction_lower`` and ``prediction_upper``."""
        self.check_columns(frame)
        frame = self.with_history(frame)
        X = frame[self.feature_columns]
        columns: dict[str, Any] = {}
        if self.task == "classification":
            proba = np.asarray(self.pipeline.predict_proba(X), dtype=float)
            calibrator = getattr(self, "calibrator", None)  # models saved before calibration existed have none
            if calibrator is not None and len(proba):
                proba = calibrator.transform(proba)
            codes = proba.argmax(axis=1)
            threshold = getattr(self, "threshold", None)  # models saved before thresholds existed have none
            if threshold is not None and proba.shape[1] == 2:
                codes = (proba[:, 1] >= threshold).astype(int)
            columns["prediction"] = [self.classes[i] for i in codes]
            for i, cls in enumerate(self.classes):
                columns[f"proba_{cls}"] = proba[:, i]
        else:
            prediction = self.pipeline.predict(X)
            columns["prediction"] = prediction
            interval = getattr(self, "interval", None)
            if interval:
                prediction = pd.Series(prediction)
                columns["prediction_lower"] = prediction - interval["half_width"]
                columns["prediction_upper"] = prediction + interval["half_width"]
        # Built in one go: a frame grown column by column costs a few milliseconds, most of a one-row request's time.
        return pd.DataFrame(columns, index=pd.RangeIndex(len(frame)))


def library_versions() -> dict[str, str]:
    import sklearn

    versions = {"python": platform.python_version(), "scikit-learn": sklearn.__version__, "pandas": pd.__version__, "numpy": np.__version__}
    for name in ("lightgbm", "xgboost"):
        try:
            module = __import__(name)
            versions[name] = module.__version__
        except ImportError:
            pass
    return versions


@dataclass
class AnalysisResult:
    analyzer: str
    task: str
    target: str | None
    metrics: dict[str, float]
    model_info: dict[str, Any]
    fitted: FittedModel | None = None
    leaderboard: list[dict] = field(default_factory=list)
    trusted: bool = True
    notes: list[str] = field(default_factory=list)
    excluded_columns: dict[str, str] = field(default_factory=dict)
    row_scores: pd.DataFrame | None = None  # per-row output for analyzers without a predictive model (clusters, anomaly scores)
    details: dict[str, Any] = field(default_factory=dict)
    # Held-out predictions of the chosen model configuration (out-of-fold under cross-validation, else the
    # validation rows), one row per held-out training row: ``row`` (position in the frame given to ``run``),
    # ``actual``, ``prediction`` and, for classifiers, ``proba_<class>`` in the order of ``fitted.classes``.
    # ``details["holdout_basis"]`` says in words what they are. Evaluation charts, intervals and calibration use them.
    holdout: pd.DataFrame | None = None

    @property
    def score(self) -> float:
        for key in ("r2", "f1", "silhouette", "score"):
            if key in self.metrics:
                return float(self.metrics[key])
        return 0.0


class Analyzer(ABC):
    """An analysis strategy. Like a scikit-learn estimator: explicit parameters, no hidden state.

    ``suitability_score`` says how well it fits a dataset (0-1); ``run`` does the analysis.
    """

    name: str = "Analyzer"
    task: str = "descriptive"

    @abstractmethod
    def suitability_score(self, df: pd.DataFrame, context: AnalysisContext) -> float:
        """0-1: how suitable this analyzer is for the dataset."""

    @abstractmethod
    def run(self, df: pd.DataFrame, context: AnalysisContext) -> AnalysisResult:
        """Execute the analysis and return its result."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
