"""Estimator wrappers that travel inside saved pipelines (module-level, so joblib can pickle them)."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone


def full_proba(estimator, X, n_classes: int) -> np.ndarray:
    """predict_proba with a column for every class code, also codes absent from the training part."""
    proba = np.asarray(estimator.predict_proba(X), dtype=float)
    seen = estimator.classes_ if hasattr(estimator, "classes_") else estimator.named_steps["model"].classes_
    full = np.zeros((proba.shape[0], n_classes))
    full[:, np.asarray(seen, dtype=int)] = proba
    return full


class ResampledClassifier(BaseEstimator, ClassifierMixin):
    """Fits ``estimator`` on SMOTE-oversampled rows; predicts like the estimator. Resampling only ever
    touches training rows, never the rows being scored."""

    def __init__(self, estimator=None, k_neighbors: int = 5, random_state: int = 0):
        self.estimator = estimator
        self.k_neighbors = k_neighbors
        self.random_state = random_state

    def fit(self, X, y, **fit_params):
        from imblearn.over_sampling import SMOTE

        y = np.asarray(y)
        counts = np.unique(y, return_counts=True)[1]
        smallest = int(counts.min()) if counts.size else 0
        if smallest > 1:
            sampler = SMOTE(k_neighbors=min(self.k_neighbors, smallest - 1), random_state=self.random_state)
            X, y = sampler.fit_resample(np.asarray(X, dtype=float), y)
        self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X):
        return self.estimator_.predict_proba(X)

    def predict(self, X):
        return self.estimator_.predict(X)


class LogTargetRegressor(BaseEstimator, RegressorMixin):
    """Fits ``estimator`` on log(1 + y) and predicts back on the target's own scale, for skewed targets of counts and
    amounts (wages, prices, visits) where errors grow with the value. exp of a mean log is a median, below the mean a
    squared error wants, so predictions are scaled by Duan's smearing factor: the mean of exp(residual) on the training
    rows, in log space. A prediction in log space is kept within the training targets' log range widened by a tenth
    on each side: exp turns a linear model's extrapolation (a destination far from every training one) into values
    orders of magnitude off, where the target's own scale would have been off by a little. Early-stopping rows
    (``eval_set``) are moved to log space too; anything else the wrapped estimator has (rounds used, feature
    importances) reads through."""

    LOG_RANGE_MARGIN = 0.1

    def __init__(self, estimator=None):
        self.estimator = estimator

    def fit(self, X, y, **fit_params):
        y = np.asarray(y, dtype=float)
        if "eval_set" in fit_params:
            fit_params["eval_set"] = [(Xv, np.log1p(np.asarray(yv, dtype=float))) for Xv, yv in fit_params["eval_set"]]
        logged = np.log1p(y)
        self.estimator.fit(X, logged, **fit_params)
        low, high = float(np.min(logged)), float(np.max(logged))
        margin = self.LOG_RANGE_MARGIN * (high - low)
        self.log_range_ = (low - margin, high + margin)
        return self.resmear(X, y)

    def resmear(self, X, y):
        """Work out the smearing factor again on the training rows, after the wrapped model changed how it predicts
        (fewer boosting rounds)."""
        residuals = np.log1p(np.asarray(y, dtype=float)) - self._log_prediction(X)
        self.smearing_ = float(np.mean(np.exp(np.clip(residuals, -20, 20))))
        return self

    def _log_prediction(self, X) -> np.ndarray:
        logged = np.asarray(self.estimator.predict(X), dtype=float)
        bounds = self.__dict__.get("log_range_")  # models saved before the bound existed have none
        return np.clip(logged, *bounds) if bounds is not None else logged

    def predict(self, X):
        return np.exp(self._log_prediction(X)) * self.smearing_ - 1.0

    def __getattr__(self, name):
        if name.startswith("__") or name in ("estimator", "smearing_", "log_range_"):
            raise AttributeError(name)
        return getattr(self.__dict__["estimator"], name) if "estimator" in self.__dict__ else super().__getattribute__(name)


RIDGE_ALPHAS = np.logspace(-3, 3, 13)  # the penalties every ridge regression of the search chooses among by its own CV


class LinearResidualRegressor(BaseEstimator, RegressorMixin):
    """A ridge regression for the trend, then ``estimator`` (trees) on what the line leaves.

    The trees learn each training row's residual from ridge fits that did not see the row (``n_folds``-fold
    cross-fitting): in-sample residuals are smaller than the line's real errors and would teach the trees too little.
    The line carries the prediction where the trees go flat (rows far beyond the others: colleges with ten times the
    median applications), and the trees bend where a line cannot. Expects scaled numbers and one-hot codes (the
    ``linear`` preprocessing)."""

    def __init__(self, estimator=None, n_folds: int = 5, random_state: int = 0):
        self.estimator = estimator
        self.n_folds = n_folds
        self.random_state = random_state

    @staticmethod
    def _line():
        from sklearn.linear_model import RidgeCV

        return RidgeCV(alphas=RIDGE_ALPHAS)

    def fit(self, X, y):
        from sklearn.model_selection import KFold

        X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
        self.linear_ = self._line().fit(X, y)
        unseen = np.empty_like(y)
        folds = KFold(min(self.n_folds, len(y)), shuffle=True, random_state=self.random_state)
        for train, valid in folds.split(X):
            unseen[valid] = self._line().fit(X[train], y[train]).predict(X[valid])
        self.estimator.fit(X, y - unseen)
        return self

    def predict(self, X):
        X = np.asarray(X, dtype=float)
        return self.linear_.predict(X) + self.estimator.predict(X)


class WeightedEnsemble:
    """A weighted average of fitted pipelines' predictions (probabilities for classifiers). ``bags[i]`` numbers the
    search candidate pipeline ``i`` is a fit of (the fold fits of one candidate share a number); None: each its own."""

    def __init__(self, members: list, weights: list[float], task: str, n_classes: int | None = None, bags: list[int] | None = None):
        self.members = list(members)
        self.bags = list(bags) if bags is not None else None
        total = float(sum(weights))
        self.weights = [float(w) / total for w in weights]
        self.task = task
        self.n_classes = n_classes
        if task == "classification":
            self.classes_ = np.arange(n_classes)

    def predict_proba(self, X) -> np.ndarray:
        return sum(w * full_proba(m, X, self.n_classes) for w, m in zip(self.weights, self.members))

    def predict(self, X):
        if self.task == "classification":
            return self.predict_proba(X).argmax(axis=1)
        return sum(w * np.asarray(m.predict(X), dtype=float) for w, m in zip(self.weights, self.members))


class ClassLabelPipeline:
    """Wraps a model trained on class codes so it predicts labels and probabilities for every class label."""

    def __init__(self, pipeline, classes: list):
        self.pipeline = pipeline
        self.classes_ = list(classes)

    def predict_proba(self, X) -> np.ndarray:
        return full_proba(self.pipeline, X, len(self.classes_))

    def predict(self, X):
        return np.asarray(self.classes_, dtype=object)[self.predict_proba(X).argmax(axis=1)]

    @property
    def named_steps(self):
        return self.pipeline.named_steps


def _native_categorical(base):
    """A LightGBM estimator class that treats the given matrix columns (ordinal codes) as categories."""

    class NativeCategorical(base):
        def __init__(self, categorical_indices=(), **kwargs):
            self.categorical_indices = tuple(categorical_indices)
            super().__init__(**kwargs)

        def get_params(self, deep=True):
            params = super().get_params(deep)
            params["categorical_indices"] = self.categorical_indices
            return params

        def fit(self, X, y, **fit_params):
            if self.categorical_indices:
                fit_params.setdefault("categorical_feature", list(self.categorical_indices))
            return super().fit(X, y, **fit_params)

    return NativeCategorical


try:  # module-level names, so joblib can pickle fitted models
    from lightgbm import LGBMClassifier as _LGBMClassifier
    from lightgbm import LGBMRegressor as _LGBMRegressor

    class CategoricalLGBMRegressor(_native_categorical(_LGBMRegressor)):
        """LGBMRegressor with native categorical splits on the ordinal-coded columns."""

    class CategoricalLGBMClassifier(_native_categorical(_LGBMClassifier)):
        """LGBMClassifier with native categorical splits on the ordinal-coded columns."""
except ImportError:  # LightGBM is in the lock file; this only keeps the module importable without it
    pass


class CatBoostModel(BaseEstimator):
    """CatBoost on the tree preprocessor's matrix, the ordinal-coded columns given as categories: CatBoost's ordered
    target statistics then see the categories themselves, and its symmetric trees suit small, noisy tables.
    Regression or classification by ``task``. ``learning_rate=None`` lets CatBoost choose it for the table's size and the
    rounds; ``fit`` takes a ``deadline`` (a ``time.perf_counter()`` value) after which boosting stops."""

    def __init__(self, task: str = "classification", categorical_indices=(), iterations: int = 1000, learning_rate: float | None = None,
                 depth: int = 6, l2_leaf_reg: float = 3.0, thread_count: int = 1, random_state: int = 0):
        self.task, self.categorical_indices = task, tuple(categorical_indices)
        self.iterations, self.learning_rate, self.depth, self.l2_leaf_reg = iterations, learning_rate, depth, l2_leaf_reg
        self.thread_count, self.random_state = thread_count, random_state

    def _pool(self, X, y=None):
        from catboost import Pool

        frame = pd.DataFrame(np.asarray(X))
        for i in self.categorical_indices:  # CatBoost takes categories as integers or strings, never floats
            frame[i] = frame[i].fillna(-1).astype(np.int64)
        return Pool(frame, y, cat_features=list(self.categorical_indices))

    def fit(self, X, y, deadline: float | None = None):
        from catboost import CatBoostClassifier, CatBoostRegressor

        cls = CatBoostRegressor if self.task == "regression" else CatBoostClassifier
        self.model_ = cls(iterations=self.iterations, learning_rate=self.learning_rate, depth=self.depth, l2_leaf_reg=self.l2_leaf_reg,
                          thread_count=self.thread_count, random_seed=self.random_state, verbose=False, allow_writing_files=False)
        extra = {"callbacks": [_CatBoostDeadline(deadline)]} if deadline is not None else {}
        self.model_.fit(self._pool(X, y), **extra)
        if self.task != "regression":
            self.classes_ = np.asarray(self.model_.classes_)
        self.n_iterations_ = int(self.model_.tree_count_)
        return self

    def predict(self, X):
        return np.asarray(self.model_.predict(self._pool(X))).ravel()

    def predict_proba(self, X):
        return np.asarray(self.model_.predict_proba(self._pool(X)))

    def contributions(self, X) -> np.ndarray:
        """Exact SHAP values per row and matrix column (CatBoost's own): (rows, columns), or (rows, classes, columns)."""
        values = np.asarray(self.model_.get_feature_importance(self._pool(X), type="ShapValues"))
        return values[..., :-1]  # the last column is the expected value


class _CatBoostDeadline:
    def __init__(self, at: float):
        self.at = at

    def after_iteration(self, info) -> bool:
        return time.perf_counter() <= self.at or info.iteration < 1  # False stops boosting
