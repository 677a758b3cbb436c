"""One trial: fitting a candidate with early stopping on the validation rows, its predictions, and the records the
search keeps of trials and of its result."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analyzers.models import LogTargetRegressor, ResampledClassifier, full_proba
from analyzers.search.budget import Deadline
from analyzers.search.portfolio import EARLY_STOPPING_ROUNDS, Candidate


def fit_estimator(estimator, candidate: Candidate, X, y, X_valid, y_valid, stop_at: float | None):
    """Fit, with early stopping on the validation rows for boosted models. Returns rounds used or None."""
    if candidate.family == "lightgbm" and X_valid is not None:
        import lightgbm

        callbacks = [lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)]
        if stop_at is not None:
            callbacks.append(Deadline(stop_at).lightgbm())
        target = estimator.estimator if isinstance(estimator, ResampledClassifier) else estimator
        if isinstance(estimator, ResampledClassifier):
            estimator.fit(X, y, eval_set=[(X_valid, y_valid)], callbacks=callbacks)
            return int(getattr(estimator.estimator_, "best_iteration_", 0) or estimator.estimator_.n_estimators)
        target.fit(X, y, eval_set=[(X_valid, y_valid)], callbacks=callbacks)
        return int(target.best_iteration_ or target.n_estimators)
    if candidate.family == "xgboost" and X_valid is not None:
        if stop_at is not None:
            estimator.set_params(callbacks=[Deadline(stop_at).xgboost()])
        estimator.fit(X, y, eval_set=[(X_valid, y_valid)], verbose=False)
        estimator.set_params(callbacks=None)
        best = getattr(estimator, "best_iteration", None)
        return int(best) + 1 if best is not None else None
    if candidate.family == "catboost":
        # A fixed number of rounds at CatBoost's own learning rate for the table's size, never stopped on the validation
        # rows: on a few hundred rows, stopping where the validation fold scores best made its out-of-fold R² 0.14 where
        # plain 5-fold CV gives -0.08 (airquality's day of the month, which the weather does not predict).
        estimator.fit(X, y, deadline=stop_at)
        return None
    estimator.fit(X, y)
    return None


def _booster_model(estimator):
    """The LightGBM or XGBoost model inside the wrappers that fit_estimator passes early stopping through."""
    if isinstance(estimator, ResampledClassifier):
        return estimator.estimator_
    if isinstance(estimator, LogTargetRegressor):
        return estimator.estimator
    return estimator


def stopped_rounds(estimator, family: str) -> tuple[int, int] | None:
    """(rounds early stopping chose, rounds trained) of a fitted boosted model, or None for other models."""
    model = _booster_model(estimator)
    if family == "lightgbm" and hasattr(model, "booster_"):
        trained = int(model.booster_.current_iteration())
        best = int(model.booster_.best_iteration or trained)
        return best, trained
    if family == "xgboost" and hasattr(model, "get_booster"):
        booster = model.get_booster()
        trained = int(booster.num_boosted_rounds())
        best = booster.attr("best_iteration")
        return (int(best) + 1 if best is not None else trained), trained
    return None


def use_rounds(estimator, family: str, rounds: int, X=None, y=None) -> None:
    """Make a fitted boosted model predict with its first ``rounds`` trees (predict, SHAP and saved copies alike).

    A log-target wrapper's smearing factor depends on the predictions, so it is worked out again on ``X``, ``y``."""
    model = _booster_model(estimator)
    if family == "lightgbm":
        model.booster_.best_iteration = rounds
        model._best_iteration = rounds
    elif family == "xgboost":
        model.get_booster().best_iteration = rounds - 1
    if isinstance(estimator, LogTargetRegressor) and X is not None:
        estimator.resmear(X, y)


def cross_fold_rounds(chosen: list[int]) -> list[int]:
    """For each fold, the median of the rounds early stopping chose on the other folds.

    Early stopping on a fold's own validation rows picks the round where those rows happen to score best, so its
    out-of-fold predictions look better than the model is: on ISLR's Smarket, whose lagged returns do not predict the
    direction, LightGBM's 5-fold ROC-AUC averaged 0.518 over eight shuffles where rounds chosen away from the scored
    rows gave 0.495. The rounds of the other folds never saw this fold's rows."""
    return [int(np.median(chosen[:i] + chosen[i + 1:])) for i in range(len(chosen))]


def predict(estimator, X, task: str, n_classes: int | None) -> np.ndarray:
    if task == "regression":
        return np.asarray(estimator.predict(X), dtype=float)
    return full_proba(estimator, X, n_classes)


@dataclass
class Trial:
    candidate: Candidate
    rows: int
    score: float
    seconds: float
    rounds: int | None = None
    predictions: np.ndarray | None = None  # on the validation rows (out-of-fold for CV)
    fitted: list = field(default_factory=list)  # (prep, estimator) per fold, reusable as the final model
    error: str | None = None
    all_rows: bool = False  # fitted on every training row already: the final model needs no refit


@dataclass
class SearchResult:
    pipeline: object
    best_name: str
    metrics: dict[str, float]
    leaderboard: list[dict]
    classes: list | None
    details: dict = field(default_factory=dict)
    holdout: pd.DataFrame | None = None  # held-out predictions of the chosen configuration (see holdout_predictions)
    # Positions in X of the rows the headline metric was measured on (time order: the latest period only) and of the
    # rows that trained the model that predicted them: baselines and the metric's interval use the same rows.
    final_split: tuple | None = None
    # The chosen model's own held-out predictions, where ``holdout`` holds predictions by winners chosen without each row
    # (ensemble.selection_held_out): calibration, intervals and a decision threshold are fitted on the model that serves.
    own_holdout: pd.DataFrame | None = None
