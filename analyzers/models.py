"""Estimator wrappers that travel inside saved pipelines (module-level, so joblib can pickle them)."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone


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


class WeightedEnsemble:
    """A weighted average of fitted pipelines' predictions (probabilities for classifiers)."""

    def __init__(self, members: list, weights: list[float], task: str, n_classes: int | None = None):
        self.members = list(members)
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
