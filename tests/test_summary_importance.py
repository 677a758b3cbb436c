"""A summary names influential features only when the model really uses them."""

from __future__ import annotations

from automodel.outputs.summary import summary_facts, template_summary


def _result(model: str) -> dict:
    return {"analyzer": "RegressionAnalyzer", "task": "regression", "target": "dep_delay", "trusted": False,
            "metrics": {"r2": 0.0, "rmse": 36.4, "mae": 21.9, "mape": 3.37}, "model_info": {"model": model}, "notes": [],
            "excluded_columns": {}, "details": {}}


def test_a_baseline_model_names_no_influential_feature():
    zero = [{"feature": "hour", "importance": 0.0}, {"feature": "distance", "importance": 0.0}]
    text = template_summary(summary_facts(_result("baseline (mean)"), 3000, 6, None, None, zero))
    assert "influential" not in text


def test_features_with_importance_are_named_most_important_first():
    ranked = [{"feature": "hour", "importance": 0.4}, {"feature": "distance", "importance": 0.1}, {"feature": "carrier", "importance": 0.0}]
    text = template_summary(summary_facts(_result("lightgbm"), 3000, 6, None, None, ranked))
    assert "The most influential features are 'hour', 'distance'." in text
