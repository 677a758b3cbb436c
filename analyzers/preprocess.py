"""Feature preprocessing that lives inside the fitted pipeline.

Columns are selected by name, so scoring works with reordered columns; unseen categories
map to a reserved code; dates become numeric parts; high-cardinality categoricals get a
cross-fitted target encoding; free text becomes a few TF-IDF/SVD components. Roles decide
which columns are used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler, TargetEncoder

NUMERIC_ROLES = {"numeric", "currency", "percent", "latitude", "longitude", "boolean"}
CATEGORICAL_ROLES = {"categorical", "state", "city", "country", "zip_code", "fips_code"}
DATE_ROLES = {"date", "datetime"}
TEXT_ROLES = {"text"}
# Never features: they identify a row (or a person) rather than describe it.
EXCLUDED_ROLES = {"identifier", "email", "url", "phone"}
MISSING = "__missing__"
HIGH_CARDINALITY = 30
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "hour", "ordinal")
TEXT_COMPONENTS = 8


def feature_plan(metas, target: str | None, exclude: dict[str, str] | None = None) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Split columns into numeric, categorical, date and text features; say why the rest are left out.

    ``plan["high_card"]`` lists the categoricals (a subset of ``plan["categorical"]``) with more than
    HIGH_CARDINALITY distinct values; they are target-encoded in supervised pipelines.
    """
    plan = {"numeric": [], "categorical": [], "date": [], "text": [], "high_card": []}
    excluded = dict(exclude or {})
    for meta in metas:
        if meta.name == target or meta.name in excluded:
            continue
        if meta.role in NUMERIC_ROLES and "float" not in meta.dtype and "int" not in meta.dtype and meta.dtype not in ("bool", "boolean"):
            plan["categorical"].append(meta.name)
        elif meta.role in NUMERIC_ROLES:
            plan["numeric"].append(meta.name)
        elif meta.role in CATEGORICAL_ROLES:
            plan["categorical"].append(meta.name)
            if meta.unique_count > HIGH_CARDINALITY:
                plan["high_card"].append(meta.name)
        elif meta.role in DATE_ROLES:
            plan["date"].append(meta.name)
        elif meta.role in TEXT_ROLES:
            plan["text"].append(meta.name)
        else:
            excluded[meta.name] = f"role {meta.role} is not used as a feature"
    return plan, excluded


def plan_features(plan: dict[str, list[str]]) -> list[str]:
    """The input columns a plan reads, in a stable order."""
    return plan["numeric"] + plan["categorical"] + plan["date"] + plan.get("text", [])


class FrameCoercer(BaseEstimator, TransformerMixin):
    """Give every planned column a model-friendly dtype; dates become numeric parts."""

    def __init__(self, numeric=(), categorical=(), date=(), text=()):
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.date = list(date)
        self.text = list(text)

    def fit(self, X, y=None):
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for col in self.numeric:
            values = X[col]
            if values.dtype == "boolean" or values.dtype == bool:
                values = values.astype("float64")
            out[col] = pd.to_numeric(values, errors="coerce").astype(float)
        for col in self.categorical:
            values = X[col]
            out[col] = values.astype(object).where(values.notna(), MISSING).astype(str)
        for col in self.date:
            stamps = pd.to_datetime(X[col], errors="coerce")
            if getattr(stamps.dt, "tz", None) is not None:
                stamps = stamps.dt.tz_convert(None)
            out[f"{col}__year"] = stamps.dt.year.astype(float)
            out[f"{col}__month"] = stamps.dt.month.astype(float)
            out[f"{col}__day"] = stamps.dt.day.astype(float)
            out[f"{col}__dayofweek"] = stamps.dt.dayofweek.astype(float)
            out[f"{col}__dayofyear"] = stamps.dt.dayofyear.astype(float)
            out[f"{col}__hour"] = stamps.dt.hour.astype(float)
            out[f"{col}__ordinal"] = (stamps - pd.Timestamp("1970-01-01")).dt.days.astype(float)
        for col in getattr(self, "text", []):
            values = X[col]
            out[col] = values.astype(object).where(values.notna(), "").astype(str)
        return pd.DataFrame(out, index=X.index)

    def date_parts(self) -> list[str]:
        return [f"{c}__{p}" for c in self.date for p in DATE_PARTS]


class TextComponents(BaseEstimator, TransformerMixin):
    """Free text to a few dense components: TF-IDF words then truncated SVD, plus the text's length."""

    def __init__(self, n_components: int = TEXT_COMPONENTS, max_features: int = 5000):
        self.n_components = n_components
        self.max_features = max_features

    def fit(self, X, y=None):
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        texts = self._texts(X)
        self.vectorizer_ = TfidfVectorizer(max_features=self.max_features, min_df=2, sublinear_tf=True)
        try:
            matrix = self.vectorizer_.fit_transform(texts)
        except ValueError:  # every document empty or only stop words
            self.vectorizer_ = None
            return self
        components = max(1, min(self.n_components, matrix.shape[1] - 1, matrix.shape[0] - 1))
        self.svd_ = TruncatedSVD(n_components=components, random_state=0).fit(matrix) if matrix.shape[1] > 1 else None
        return self

    def transform(self, X):
        texts = self._texts(X)
        lengths = np.log1p(np.fromiter((len(t) for t in texts), dtype=float, count=len(texts)))[:, None]
        if self.vectorizer_ is None or self.svd_ is None:
            return np.hstack([lengths, np.zeros((len(texts), self.n_components))])
        parts = self.svd_.transform(self.vectorizer_.transform(texts))
        padded = np.zeros((len(texts), self.n_components))
        padded[:, : parts.shape[1]] = parts
        return np.hstack([lengths, padded])

    def get_feature_names_out(self, input_features=None):
        base = input_features[0] if input_features is not None and len(input_features) else "text"
        return np.asarray([f"{base}__length"] + [f"{base}__topic{i}" for i in range(self.n_components)], dtype=object)

    @staticmethod
    def _texts(X) -> list[str]:
        if isinstance(X, pd.DataFrame):
            X = X.iloc[:, 0]
        return [str(v) for v in np.asarray(X, dtype=object).ravel()]


SENTENCE_CACHE_SIZE = 100_000
_SENTENCE_CACHE: dict[str, np.ndarray] = {}


class SentenceComponents(BaseEstimator, TransformerMixin):
    """Free text to a few dense components of its meaning: the packaged MiniLM sentence embedding (automodel.embedder,
    offline) reduced by PCA fitted on the training texts, plus the text's length. Same output shape as TextComponents,
    so the search can put the two side by side and keep whichever scores better."""

    def __init__(self, n_components: int = TEXT_COMPONENTS):
        self.n_components = n_components

    def _vectors(self, texts: list[str]) -> np.ndarray:
        from automodel.embedder import embed

        unique, inverse = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
        # The search fits this once per fold and candidate on overlapping rows: each distinct text is embedded once.
        todo = [str(t) for t in unique if str(t) not in _SENTENCE_CACHE]
        if todo:
            if len(_SENTENCE_CACHE) + len(todo) > SENTENCE_CACHE_SIZE:
                _SENTENCE_CACHE.clear()
            _SENTENCE_CACHE.update(zip(todo, embed(todo)))
        return np.stack([_SENTENCE_CACHE[str(t)] for t in unique])[inverse]

    def fit(self, X, y=None):
        from sklearn.decomposition import PCA

        vectors = self._vectors(TextComponents._texts(X))
        components = max(1, min(self.n_components, vectors.shape[0] - 1, vectors.shape[1]))
        self.pca_ = PCA(n_components=components, random_state=0).fit(vectors) if vectors.shape[0] > 1 else None
        return self

    def transform(self, X):
        texts = TextComponents._texts(X)
        lengths = np.log1p(np.fromiter((len(t) for t in texts), dtype=float, count=len(texts)))[:, None]
        padded = np.zeros((len(texts), self.n_components))
        if self.pca_ is not None and len(texts):
            parts = self.pca_.transform(self._vectors(texts))
            padded[:, : parts.shape[1]] = parts
        return np.hstack([lengths, padded])

    def get_feature_names_out(self, input_features=None):
        base = input_features[0] if input_features is not None and len(input_features) else "text"
        return np.asarray([f"{base}__length"] + [f"{base}__meaning{i}" for i in range(self.n_components)], dtype=object)


class NumberSplines(BaseEstimator, TransformerMixin):
    """Each number with many distinct values as a cubic B-spline basis on knots at its quantiles, flat beyond the range
    the training rows span; numbers with few distinct values (flags, counts of a few) as they are.

    A ridge regression on these is an additive model of smooth curves, one per number: on small, noisy tables it
    captures a bend (birth weight against gestation falls away for premature births) without the noise of a tree's
    steps, and never extrapolates a curve past the data. Missing values are filled before (the linear pipeline's
    imputer)."""

    def __init__(self, n_knots: int = 5, min_distinct: int = 10):
        self.n_knots = n_knots
        self.min_distinct = min_distinct

    def fit(self, X, y=None):
        from sklearn.preprocessing import SplineTransformer

        X = np.asarray(X, dtype=float)
        self.n_features_in_ = X.shape[1]
        self.splines_ = []
        for j in range(X.shape[1]):
            values = X[:, j][np.isfinite(X[:, j])]
            knots = np.unique(np.quantile(values, np.linspace(0, 1, self.n_knots))) if len(values) else np.array([])
            if len(np.unique(values)) < self.min_distinct or len(knots) < 3:
                self.splines_.append(None)
            else:
                self.splines_.append(SplineTransformer(knots=knots.reshape(-1, 1), degree=3, extrapolation="constant").fit(values.reshape(-1, 1)))
        return self

    def transform(self, X):
        X = np.asarray(X, dtype=float)
        blocks = [X[:, [j]] if spline is None else spline.transform(X[:, [j]]) for j, spline in enumerate(self.splines_)]
        return np.hstack(blocks) if blocks else np.empty((len(X), 0))

    def get_feature_names_out(self, input_features=None):
        names = list(input_features) if input_features is not None else [f"x{j}" for j in range(self.n_features_in_)]
        out = []
        for name, spline in zip(names, self.splines_):
            out += [name] if spline is None else [f"{name}__spline{k}" for k in range(spline.n_features_out_)]
        return np.asarray(out, dtype=object)


class SuffixedTargetEncoder(TargetEncoder):
    """TargetEncoder whose output names do not collide with the ordinal codes of the same columns."""

    def get_feature_names_out(self, input_features=None):
        return np.asarray([f"{name}__target_mean" for name in super().get_feature_names_out(input_features)], dtype=object)


def build_preprocessor(plan: dict[str, list[str]], kind: str = "tree", task: str | None = None) -> Pipeline:
    """``kind='tree'`` gives ordinal codes; ``kind='linear'`` gives scaled numbers and one-hot codes; ``kind='splines'``
    is ``linear`` with each number of many values as a spline basis (``NumberSplines``); ``kind='tree_sentences'``
    is ``tree`` with free text as MiniLM sentence-embedding components instead of TF-IDF/SVD topics.

    ``task`` ('regression' or 'classification') enables target encoding of high-cardinality
    categoricals; unsupervised pipelines pass ``None``.
    """
    text = plan.get("text", [])
    coercer = FrameCoercer(plan["numeric"], plan["categorical"], plan["date"], text)
    numeric_cols = plan["numeric"] + coercer.date_parts()
    high_card = [c for c in plan.get("high_card", []) if c in plan["categorical"]] if task else []
    low_card = [c for c in plan["categorical"] if c not in high_card]
    transformers = []
    sentences = kind == "tree_sentences"
    if sentences:
        kind = "tree"
    if kind == "tree":
        numeric = SimpleImputer(strategy="median", keep_empty_features=True)
        if numeric_cols:
            transformers.append(("numeric", numeric, numeric_cols))
        if plan["categorical"]:
            # Ordinal codes for every categorical (trees split on them); rare levels share one code.
            transformers.append(("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                                                encoded_missing_value=-1, min_frequency=3), plan["categorical"]))
    else:
        numeric = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
                           + ([("splines", NumberSplines())] if kind == "splines" else []) + [("scale", StandardScaler())])
        if numeric_cols:
            transformers.append(("numeric", numeric, numeric_cols))
        if low_card:
            transformers.append(("categorical", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5, max_categories=30,
                                                              sparse_output=False), low_card))
    if high_card:
        target_type = "continuous" if task == "regression" else "auto"
        transformers.append(("target_encoded", SuffixedTargetEncoder(target_type=target_type, random_state=0), high_card))
    for col in text:
        transformers.append((f"text_{col}", SentenceComponents() if sentences else TextComponents(), [col]))
    columns = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("coerce", coercer), ("columns", columns)])


def unsupervised_matrix(df: pd.DataFrame, metas, exclude: dict[str, str] | None, max_rows: int, seed: int = 0):
    """Scaled numbers and one-hot codes for every usable column: (features, excluded, matrix for all rows, fitted preprocessor)."""
    plan, excluded = feature_plan(metas, None, exclude)
    features = plan_features(plan)
    if not features:
        raise ValueError("no usable feature columns")
    prep = build_preprocessor(plan, "linear", None)
    fit_rows = df if len(df) <= max_rows else df.sample(max_rows, random_state=seed)
    prep.fit(fit_rows[features])
    return features, excluded, np.asarray(prep.transform(df[features]), dtype=float), prep
