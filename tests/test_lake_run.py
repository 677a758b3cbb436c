"""`automodel run` end to end on a lake that is a plain folder, and on one that is an S3 prefix (moto on loopback);
the lake sensor on an S3 lake."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from lake_data import flights_frame, nyc, write_flights_lake

LAKE_TABLES = ("airlines", "planes", "weather")


@pytest.fixture
def quick_runs(monkeypatch):
    # The model search and explanations are other stages' concern; this is about the lake.
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "4")
    monkeypatch.setenv("ENABLE_SHAP_EXPLANATIONS", "0")


def _flights_csv(tmp_path: Path) -> Path:
    path = tmp_path / "flights.csv"
    flights_frame(600, seed=11).drop(columns=["arr_delay"]).to_csv(path, index=False)
    return path


def _check_enrichment(out: dict, rows: int) -> None:
    assert out["error"] is None, out["error"]
    enrichment = out["enrichment"]
    assert enrichment["table"] in LAKE_TABLES and enrichment["coverage"] > 0.5 and isinstance(enrichment["lift"], float)
    assert enrichment["kept"] == bool(enrichment["tables"])
    considered = {c["table"] for c in enrichment["candidates"]}
    assert set(LAKE_TABLES) <= considered and enrichment["table"] in considered
    for kept in enrichment["tables"]:
        assert kept["table"] in LAKE_TABLES and kept["lift"] >= 0.005 and kept["grain"] and kept["aggregation"]
    assert len(pd.read_csv(out["predictions_path"])) == rows


def test_run_on_a_plain_folder_lake_without_a_manifest(home, cli, tmp_path, quick_runs):
    lake = write_flights_lake(tmp_path / "my lake", tables=LAKE_TABLES)
    assert not (lake / "manifest.json").exists()
    data = _flights_csv(tmp_path)
    result = cli("run", data, "--target", "dep_delay", "--lake", lake, "--json")
    assert result.code == 0, result.err
    _check_enrichment(result.json, 600)
    index = cli("index", "--lake", lake, "--json")
    assert index.code == 0, index.err
    assert sorted(index.json["unchanged"]) == sorted(LAKE_TABLES) and "empty" in index.json["skipped"]["notes"]

    missing = cli("run", data, "--lake", tmp_path / "nowhere", "--json")
    assert missing.code == 2 and "is not a folder" in missing.err and "Traceback" not in missing.err


def test_run_on_an_s3_prefix_lake(home, cli, tmp_path, quick_runs, s3_server):
    lake = write_flights_lake(tmp_path / "lake", tables=LAKE_TABLES)
    client = s3_server.client()
    client.create_bucket(Bucket="company-lake")
    for path in lake.rglob("*"):
        if path.is_file():
            client.put_object(Bucket="company-lake", Key=f"tables/nyc/{path.relative_to(lake).as_posix()}", Body=path.read_bytes())
    client.put_object(Bucket="company-lake", Key="tables/nyc/_SUCCESS", Body=b"")
    result = cli("run", _flights_csv(tmp_path), "--target", "dep_delay", "--lake", "s3://company-lake/tables/nyc", "--json")
    assert result.code == 0, result.err
    _check_enrichment(result.json, 600)
    mirror = home / "lake_mirror" / "company_lake" / "tables" / "nyc"
    assert (mirror / "planes" / "planes.parquet").read_bytes() == (lake / "planes" / "planes.parquet").read_bytes()
    index = cli("index", "--lake", "s3://company-lake/tables/nyc", "--json")
    assert index.code == 0 and sorted(index.json["unchanged"]) == sorted(LAKE_TABLES)

    bad = cli("index", "--lake", "s3://no-such-bucket/lake", "--json")
    assert bad.code != 0 and "could not be read" in bad.err and "Traceback" not in bad.err


def test_the_lake_sensor_sees_an_s3_lake_change(home, s3_server, tmp_path):
    from automodel.lake.source import mirror_s3_lake
    from resources.settings import AutomodelSettings
    from sensors.lake import evaluate_lake_change

    client = s3_server.client()
    client.create_bucket(Bucket="lake")
    client.put_object(Bucket="lake", Key="shared/airlines.csv", Body=nyc("airlines").to_csv(index=False).encode())
    settings = AutomodelSettings.from_env(lake_dir="s3://lake/shared/")
    instance = dg.DagsterInstance.ephemeral()
    first = evaluate_lake_change(settings, instance, None)
    assert [e.asset_key for e in first.asset_events] == [dg.AssetKey("public_datasets")]
    for event in first.asset_events:
        instance.report_runless_asset_event(event)
    assert evaluate_lake_change(settings, instance, first.cursor).asset_events == []

    client.put_object(Bucket="lake", Key="shared/airports.csv", Body=nyc("airports").to_csv(index=False).encode())
    client.delete_object(Bucket="lake", Key="shared/airlines.csv")
    local = mirror_s3_lake("s3://lake/shared/", settings.home, force=True)  # the sensor's next tick, without waiting
    assert sorted(p.name for p in local.iterdir() if not p.name.startswith(".")) == ["airports.csv"]
    changed = evaluate_lake_change(settings, instance, first.cursor)
    assert len(changed.asset_events) == 1
