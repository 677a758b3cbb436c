"""Feature importance for a fitted model: mean |SHAP| from TreeExplainer where the model is made of
trees (weighted over an ensemble's members), permutation importance otherwise. Rows are sampled, so
large tables cost the same as small ones."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from analyzers.base import FittedModel
from analyzers.models import ClassLabelPipeline, LogTargetRegressor, ResampledClassifier, WeightedEnsemble

TREE_MODELS = ("LGBM", "RandomForest", "XGB", "CatBoost", "ExtraTrees", "GradientBoosting", "DecisionTree")


def _members(pipeline) -> list[tuple[float, object]]:
    """(weight, sklearn Pipeline with 'prep' and 'model' steps) for every member model."""
    inner = pipeline.pipeline if isinstance(pipeline, ClassLabelPipeline) else pipeline
    if isinstance(inner, WeightedEnsemble):
        return list(zip(inner.weights, inner.members))
    return [(1.0, inner)]


def _tree_model(member):
    steps = getattr(member, "named_steps", {})
    if "prep" not in steps or "model" not in steps:
        return None
    model = steps["model"]
    if isinstance(model, ResampledClassifier):
        model = model.estimator_
    if isinstance(model, LogTargetRegressor):
        model = model.estimator  # its attributions are in log units: the ranking of features is what is reported
    if getattr(model, "get_params", None) and model.get_params().get("linear_tree"):
        return None  # LightGBM computes no SHAP values for trees with linear leaves: explained by permutation instead
    return model if type(model).__name__.startswith(TREE_MODELS) else None


# Exact TreeSHAP on fully grown forests costs far more per row than on boosted trees: fewer rows and
# Saabas attributions (approximate=True) there; the ranking of features is what the asset reports.
FOREST_ROWS = 150
MIN_ROWS_PER_MODEL = 100  # the fewest sampled rows one tree model of an ensemble is explained on


def _one_fit_per_bag(pipeline, trees: list[tuple[int, float, object, object]]) -> list[tuple[float, object, object]]:
    """(weight, member, model) for each of ``trees`` ((position in the ensemble, weight, member, model)), with the fold
    fits of one search candidate (the ensemble's ``bags``) folded into their first, which carries their summed weight.
    An ensemble that does not record its bags (saved before it did) has every fit explained."""
    inner = pipeline.pipeline if isinstance(pipeline, ClassLabelPipeline) else pipeline
    bag_of = getattr(inner, "bags", None) if isinstance(inner, WeightedEnsemble) else None
    merged: dict = {}
    for position, weight, member, model in trees:
        key = bag_of[position] if bag_of is not None else ("fit", position)
        if key in merged:
            merged[key][0] += weight
        else:
            merged[key] = [weight, member, model]
    return [tuple(bag) for bag in merged.values()]


def _own_contributions(model, X: np.ndarray) -> np.ndarray | None:
    """Exact TreeSHAP computed by the library itself, (rows, columns) or (rows, classes, columns), where it has one that
    shap cannot read: shap 0.49 cannot parse XGBoost 3's vector base_score, and CatBoost's wrapper is ours."""
    if type(model).__name__.startswith("XGB"):
        import xgboost

        return np.asarray(model.get_booster().predict(xgboost.DMatrix(X), pred_contribs=True))[..., :-1]  # the last column is the bias
    if type(model).__name__.startswith("CatBoost"):
        return model.contributions(X)
    return None


def _mean_abs_shap(model, X: np.ndarray) -> np.ndarray:
    contribs = _own_contributions(model, X)
    if contribs is not None:
        values = np.abs(contribs)
        return values.mean(axis=tuple(range(values.ndim - 1)))
    import shap

    forest = type(model).__name__.startswith(("RandomForest", "ExtraTrees"))
    if forest:
        X = X[:FOREST_ROWS]
    values = np.asarray(shap.TreeExplainer(model).shap_values(X, check_additivity=False, approximate=forest))
    if values.ndim == 3:  # (classes, rows, features) or (rows, features, classes): average over classes
        axis = 0 if values.shape[0] != X.shape[0] else 2
        values = np.abs(values).mean(axis=axis)
    return np.abs(values).mean(axis=0)


def feature_importance(fitted: FittedModel, frame: pd.DataFrame, sample_rows: int = 500, seed: int = 0) -> pd.DataFrame:
    """One row per feature, most important first: ``feature``, ``importance``, ``method``."""
    rows = frame[frame[fitted.target].notna()] if fitted.target in frame else frame
    if rows.empty:
        rows = frame
    rows = rows.sample(min(len(rows), sample_rows), random_state=seed)
    members = _members(fitted.pipeline)
    trees = [(i, w, m, _tree_model(m)) for i, (w, m) in enumerate(members)]
    trees = [(i, w, m, t) for i, w, m, t in trees if t is not None]
    if trees:
        total: dict[str, float] = {}
        weight_sum = sum(w for _, w, _, _ in trees)
        # A bag holds one fit of each member per fold, of equal weight and near-equal attributions, and CatBoost's SHAP
        # costs most of a second per call whatever the rows: one fit of each member speaks for its bag. Each explained
        # model takes its own slice of the sample, so the sample is covered once rather than once per model.
        explained = _one_fit_per_bag(fitted.pipeline, trees)
        per_model = min(len(rows), max(MIN_ROWS_PER_MODEL, -(-len(rows) // len(explained))))
        for number, (weight, member, model) in enumerate(explained):
            prep = member.named_steps["prep"]
            sliced = rows.iloc[(np.arange(per_model) + number * per_model) % len(rows)]
            X = np.asarray(prep.transform(sliced[fitted.feature_columns]), dtype=float)
            names = [str(n) for n in prep.named_steps["columns"].get_feature_names_out()]
            for name, value in zip(names, _mean_abs_shap(model, X)):
                total[name] = total.get(name, 0.0) + weight / weight_sum * float(value)
        method = "shap_tree" if len(members) == 1 else f"shap_tree (weighted over {len(trees)} of {len(members)} ensemble members)"
        if len(explained) < len(trees):
            method += f"; one fold fit of each of {len(explained)} bagged members explained"
        table = pd.DataFrame({"feature": list(total), "importance": list(total.values()), "method": method})
    elif fitted.target not in rows or rows.empty:
        # Permutation importance needs known targets (a scoring run on unlabelled rows has none).
        return pd.DataFrame(columns=["feature", "importance", "method"])
    else:
        from sklearn.inspection import permutation_importance

        from analyzers.serving import for_serving

        y = rows[fitted.target]
        scorer = "r2" if fitted.task == "regression" else "accuracy"
        # Every feature permuted three times is dozens of predictions of the whole bag: the served form gives the very
        # same outputs (it is checked bit for bit, else it is the model itself) at a fraction of the cost per call.
        result = permutation_importance(_Scorer(for_serving(fitted)), rows[fitted.feature_columns], y, scoring=scorer, n_repeats=3,
                                        random_state=seed)
        table = pd.DataFrame({"feature": fitted.feature_columns, "importance": result.importances_mean, "method": "permutation"})
    return table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


class _Scorer(BaseEstimator):
    """Lets permutation_importance call a FittedModel (labels for classifiers, numbers for regressors). A BaseEstimator,
    so scikit-learn (1.6 on) finds the estimator tags it asks every estimator for."""

    def __init__(self, fitted: FittedModel):
        self.fitted = fitted

    def fit(self, X, y):
        return self

    def predict(self, X):
        predicted = self.fitted.predict_frame(X)["prediction"].to_numpy()
        return predicted if self.fitted.task == "regression" else predicted.astype(str)

    def score(self, X, y):
        if self.fitted.task == "regression":
            from sklearn.metrics import r2_score

            return float(r2_score(np.asarray(y, float), self.predict(X).astype(float)))
        return float((self.predict(X) == np.asarray(y).astype(str)).mean())


# ---- per-row SHAP values (beeswarm and dependence charts) ------------------------------------------------

SHAP_SAMPLE_ROWS = 300


def _signed_shap(model, X: np.ndarray) -> np.ndarray:
    """SHAP values per row and matrix column, for the output a person reads: the prediction (regression), the
    second class (binary) or each row's predicted class (multiclass). Shape (rows, columns)."""
    values = _own_contributions(model, X)
    if values is not None:
        if values.ndim == 3:  # (rows, classes, columns)
            chosen = np.asarray(model.predict_proba(X)).argmax(axis=1)
            return values[np.arange(len(X)), chosen]
        return values
    import shap

    forest = type(model).__name__.startswith(("RandomForest", "ExtraTrees"))
    raw = shap.TreeExplainer(model).shap_values(X, check_additivity=False, approximate=forest)
    values = np.asarray(raw)
    if isinstance(raw, list) or (values.ndim == 3 and values.shape[0] != X.shape[0]):  # (classes, rows, columns)
        values = np.moveaxis(values, 0, -1)
    if values.ndim == 3:  # (rows, columns, classes)
        if values.shape[2] == 2:
            return values[..., 1]
        chosen = np.asarray(model.predict_proba(X)).argmax(axis=1)
        return values[np.arange(len(X)), :, chosen]
    return values


def shap_sample(fitted: FittedModel, frame: pd.DataFrame, sample_rows: int = SHAP_SAMPLE_ROWS, seed: int = 0) -> pd.DataFrame:
    """Per-row SHAP values on a sample of rows, one row per (row, feature): ``row`` (position in ``frame``),
    ``feature``, ``shap``, ``value`` (the number the model saw, for colour) and ``label`` (the value as the
    file wrote it, for axes). Tree models only (the largest tree member of an ensemble); empty otherwise.
    ``output`` says what the values push: the prediction, the second class, or each row's predicted class."""
    columns = ["row", "feature", "shap", "value", "label", "output"]
    members = [(w, m, _tree_model(m)) for w, m in _members(fitted.pipeline)]
    members = [(w, m, t) for w, m, t in members if t is not None]
    if not members:
        return pd.DataFrame(columns=columns)
    _, member, model = max(members, key=lambda item: item[0])
    known = np.flatnonzero(frame[fitted.target].notna().to_numpy()) if fitted.target in frame else np.arange(len(frame))
    if len(known) == 0:
        known = np.arange(len(frame))
    limit = FOREST_ROWS if type(model).__name__.startswith(("RandomForest", "ExtraTrees")) else sample_rows
    positions = np.sort(np.random.default_rng(seed).choice(known, min(len(known), limit), replace=False))
    rows = frame.iloc[positions]
    prep = member.named_steps["prep"]
    X = np.asarray(prep.transform(rows[fitted.feature_columns]), dtype=float)
    names = [str(n) for n in prep.named_steps["columns"].get_feature_names_out()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # shap's notes on LightGBM's output format, not the user's concern
        values = _signed_shap(model, X)
    if fitted.task == "regression":
        output = f"predicted {fitted.target}"
    elif len(fitted.classes or []) == 2:
        output = f"log-odds of {fitted.target} = {fitted.classes[1]}"
    else:
        output = "log-odds of each row's predicted class"
    parts = []
    for j, name in enumerate(names):
        raw = rows[name] if name in rows.columns else None
        labels = raw.astype(object).where(raw.notna(), "missing").astype(str).to_numpy() if raw is not None else np.round(X[:, j], 6).astype(str)
        parts.append(pd.DataFrame({"row": positions, "feature": name, "shap": values[:, j], "value": X[:, j], "label": labels, "output": output}))
    return pd.concat(parts, ignore_index=True)[columns]
