"""Feature preprocessing that lives inside the fitted pipeline.

Columns are selected by name, so scoring works with reordered columns; unseen categories
map to a reserved code; dates become numeric parts. Roles decide which columns are used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

NUMERIC_ROLES = {"numeric", "currency", "percent", "latitude", "longitude", "boolean"}
CATEGORICAL_ROLES = {"categorical", "state", "city", "country", "zip_code", "fips_code"}
DATE_ROLES = {"date", "datetime"}
# Never features: they identify a row (or a person) rather than describe it.
EXCLUDED_ROLES = {"identifier", "email", "url", "phone", "text"}
MISSING = "__missing__"


def feature_plan(metas, target: str | None, exclude: dict[str, str] | None = None) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Split columns into numeric, categorical and date features; say why the rest are left out."""
    plan = {"numeric": [], "categorical": [], "date": []}
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
        elif meta.role in DATE_ROLES:
            plan["date"].append(meta.name)
        else:
            excluded[meta.name] = f"role {meta.role} is not used as a feature"
    return plan, excluded


class FrameCoercer(BaseEstimator, TransformerMixin):
    """Give every planned column a model-friendly dtype; dates become numeric parts."""

    def __init__(self, numeric=(), categorical=(), date=()):
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.date = list(date)

    def fit(self, X, y=None):
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for col in self.numeric:
            out[col] = pd.to_numeric(X[col].astype("float64") if X[col].dtype == "boolean" else X[col], errors="coerce").astype(float)
        for col in self.categorical:
            values = X[col]
            out[col] = values.astype(object).where(values.notna(), MISSING).astype(str)
        for col in self.date:
            stamps = pd.to_datetime(X[col], errors="coerce")
            out[f"{col}__year"] = stamps.dt.year.astype(float)
            out[f"{col}__month"] = stamps.dt.month.astype(float)
            out[f"{col}__dayofweek"] = stamps.dt.dayofweek.astype(float)
            out[f"{col}__hour"] = stamps.dt.hour.astype(float)
            out[f"{col}__ordinal"] = (stamps - pd.Timestamp("1970-01-01")).dt.days.astype(float)
        return pd.DataFrame(out, index=X.index)

    def date_parts(self) -> list[str]:
        return [f"{c}__{p}" for c in self.date for p in ("year", "month", "dayofweek", "hour", "ordinal")]


def build_preprocessor(plan: dict[str, list[str]], kind: str = "tree") -> Pipeline:
    """``kind='tree'`` gives ordinal codes; ``kind='linear'`` gives scaled numbers and one-hot codes."""
    coercer = FrameCoercer(plan["numeric"], plan["categorical"], plan["date"])
    numeric_cols = plan["numeric"] + coercer.date_parts()
    if kind == "tree":
        numeric = SimpleImputer(strategy="median", keep_empty_features=True)
        categorical = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1)
    else:
        numeric = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)), ("scale", StandardScaler())])
        categorical = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5, max_categories=30, sparse_output=False)
    transformers = []
    if numeric_cols:
        transformers.append(("numeric", numeric, numeric_cols))
    if plan["categorical"]:
        transformers.append(("categorical", categorical, plan["categorical"]))
    columns = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("coerce", coercer), ("columns", columns)])


def feature_names(pipeline: Pipeline) -> list[str]:
    try:
        return list(pipeline.named_steps["columns"].get_feature_names_out())
    except (AttributeError, ValueError):
        return []


def as_float_matrix(values) -> np.ndarray:
    return np.asarray(values, dtype=float)
