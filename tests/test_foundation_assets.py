"""The asset graph through Dagster's own API: materialize, partitions, metadata, and the UI's view of it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
from conftest import REPO


def test_materialize_every_asset_of_a_run(home, tmp_path, penguins):
    from automodel_assets.assets import ALL_ASSETS, ASSET_CHECKS, RUN_ASSETS
    from automodel_assets.definitions import build_resources
    from automodel_assets.runs import create_run, get_instance
    from resources.settings import AutomodelSettings

    settings = AutomodelSettings.from_env()
    instance = get_instance(settings.layout)
    penguins.to_csv(tmp_path / "penguins.csv", index=False)
    created = create_run(settings, instance, str(tmp_path / "penguins.csv"), user_id="bob", target="flipper_length_mm")
    assert instance.has_dynamic_partition("run_id", created.run_id)
    index = dg.materialize(ALL_ASSETS, instance=instance, resources=build_resources(settings), selection=["semantic_index"])
    assert index.success
    result = dg.materialize([*ALL_ASSETS, *ASSET_CHECKS], instance=instance, partition_key=created.run_id,
                            resources=build_resources(settings), selection=dg.AssetSelection.assets(*RUN_ASSETS))
    assert result.success
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events() for e in [e.event_specific_data.materialization]}
    assert materialized == {a.key.path[-1] for a in RUN_ASSETS}
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert checks and all(c.passed for c in checks)
    outcome = result.output_for_node("model")
    assert outcome.task == "regression" and outcome.metrics["r2"] > 0.6
    predictions = result.output_for_node("predictions")
    assert len(predictions) == len(penguins)
    model_event = instance.get_latest_materialization_event(dg.AssetKey("model"))
    metadata = model_event.asset_materialization.metadata
    assert metadata["analyzer"].value == "RegressionAnalyzer"
    metrics = {r.data["metric"]: r.data["value"] for r in metadata["metrics"].records}
    assert metrics["r2"] == metadata["metric/r2"].value > 0.6  # a sortable table and a plottable float
    assert any("lightgbm" in str(r.data.get("model", "")) for r in metadata["leaderboard"].records)


@pytest.mark.lake_indexed
def test_rematerializing_a_partition_needs_no_config(home, tmp_path, penguins, monkeypatch):
    """A run created once can be rematerialized later from its partition key alone, as from the UI."""
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "3")  # what is checked is that the partition alone is enough, not the model
    from automodel_assets.definitions import build_resources, defs
    from automodel_assets.runs import create_run, get_instance, materialize_run
    from resources.settings import AutomodelSettings

    settings = AutomodelSettings.from_env()
    instance = get_instance(settings.layout)
    penguins.to_csv(tmp_path / "p.csv", index=False)
    created = create_run(settings, instance, str(tmp_path / "p.csv"), target="species")
    assert materialize_run(settings, instance, created.run_id).success
    job = defs.resolve_job_def("automodel_run")
    again = job.execute_in_process(partition_key=created.run_id, instance=instance, resources=build_resources(settings))
    assert again.success
    assert len(again.output_for_node("predictions")) == len(penguins)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.lake_indexed
def test_ui_serves_the_graph_and_partitions(home, tmp_path, penguins, cli, monkeypatch):
    """What `make dev` serves: the webserver lists every asset with its group and the run partitions."""
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "3")  # the run only has to exist as a partition the UI lists
    penguins.to_csv(tmp_path / "p.csv", index=False)
    run_id = cli("run", tmp_path / "p.csv", "--target", "species", "--json").json["run_id"]
    port = _free_port()
    secret = "sk-test-0123456789abcdef"
    env = {**os.environ, "DAGSTER_HOME": str(home / "dagster"), "AUTOMODEL_HOME": str(home), "AUTOMODEL_LLM_API_KEY": secret,
           "AUTOMODEL_SMTP_PASSWORD": secret}
    server = subprocess.Popen([str(Path(sys.executable).parent / "dagster-webserver"), "-w", str(REPO / "workspace.yaml"),
                               "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        nodes = None
        while time.time() < deadline:
            try:
                data = _graphql(port, "{ assetNodes { assetKey { path } groupName partitionKeys } }")
                nodes = data["data"]["assetNodes"]
                if nodes:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert nodes, "the webserver did not answer"
        by_name = {n["assetKey"]["path"][-1]: n for n in nodes}
        for name in ("raw_dataset", "cleaned_frame", "column_metadata", "semantic_index", "enriched_frame", "model",
                     "predictions", "explanations", "summary", "dashboard", "actions"):
            assert name in by_name, name
        assert run_id in by_name["model"]["partitionKeys"]
        assert by_name["model"]["groupName"] == "model"
        shown = []
        for resource in ("settings", "llm", "notifier"):
            details = _graphql(port, '{ topLevelResourceDetailsOrError(resourceSelector: {repositoryLocationName: "automodel", '
                                     f'repositoryName: "__repository__", resourceName: "{resource}"}}) '
                                     '{ __typename ... on ResourceDetails { configuredValues { key value type } } } }')
            values = details["data"]["topLevelResourceDetailsOrError"]["configuredValues"]
            assert values, details
            shown.append(json.dumps(values))
        assert secret not in "".join(shown), "secrets must never be shown in the UI"
        assert "AUTOMODEL_LLM_API_KEY" in "".join(shown), "the UI names the variable that holds the secret"
    finally:
        server.terminate()
        server.wait(timeout=30)
