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
