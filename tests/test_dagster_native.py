"""Runs as Dagster runs: an asset added the README's way ("Compose an asset") is built by `automodel run`, `rerun --from`
and a drop-folder run; drop-folder sidecars set a run's options through both sensors; readable run ids; typed
metadata; quotas by caller; the instance file is the project's, so editing it takes effect."""

from __future__ import annotations

import gzip
import json
import re
import textwrap
from datetime import UTC
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import REPO, run_cli


def readme_asset_example() -> str:
    """The Python block of the README's "Compose an asset" section: the test adds the asset exactly as a reader would."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Compose an asset"):]
    return section[section.index("```python") + len("```python"):section.index("```", section.index("```python") + 3)]


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    """A home, the README's team module on the path and named in AUTOMODEL_ASSET_MODULES, and one CLI run (user ana, target species)."""
    import palmerpenguins

    work = tmp_path_factory.mktemp("composed")
    (work / "my_team").mkdir()
    (work / "my_team" / "__init__.py").write_text("")
    (work / "my_team" / "assets.py").write_text(textwrap.dedent(readme_asset_example()))
    penguins = palmerpenguins.load_penguins()
    penguins.to_csv(work / "penguins.csv", index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(work))
        for name, value in {"AUTOMODEL_HOME": str(work / "home"), "AUTOMODEL_LAKE": str(REPO / "datasets"), "AUTOMODEL_SEARCH_BUDGET_S": "3",
                            "ENABLE_SEMANTIC_MERGE": "0", "ENABLE_SHAP_EXPLANATIONS": "0", "AUTOMODEL_ASSET_MODULES": "my_team.assets"}.items():
            mp.setenv(name, value)
        for name in ("DAGSTER_HOME", "AUTOMODEL_WEBHOOK_URL", "AUTOMODEL_DASHBOARD_URL", "AUTOMODEL_ASSET_STORE"):
            mp.delenv(name, raising=False)
        result = run_cli("run", work / "penguins.csv", "--target", "species", "--user", "ana", "--json")
        assert result.code == 0, result.err
        yield {"work": work, "home": work / "home", "run_id": result.json["run_id"], "penguins": penguins}


def _instance(home: Path) -> dg.DagsterInstance:
    from automodel.layout import Layout
    from automodel_assets.runs import get_instance

    return get_instance(Layout.at(home))


def _shares(home: Path, run_id: str) -> pd.DataFrame:
    from automodel_assets.definitions import current_definitions

    return current_definitions().load_asset_value("prediction_shares", partition_key=run_id, instance=_instance(home))


def test_cli_run_is_a_tagged_run_of_the_real_job_and_builds_the_added_asset(composed):
    run_id, instance = composed["run_id"], _instance(composed["home"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-penguins-[0-9a-f]{8}", run_id), run_id
    runs = instance.get_runs(dg.RunsFilter(tags={"automodel/run_id": run_id}))
    assert len(runs) == 1
    run = runs[0]
    assert run.job_name == "automodel_run" and run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["automodel/user"] == "ana" and run.tags["automodel/file"] == "penguins.csv" and run.tags["automodel/target"] == "species"
    assert run.tags["dagster/partition"] == run_id
    assert run.remote_job_origin.location_name == "automodel" and run.remote_job_origin.job_name == "automodel_run"  # what the UI matches
    shares = _shares(composed["home"], run_id)
    assert set(shares["prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"} and abs(shares["share"].sum() - 1) < 1e-9


def test_a_partition_materialized_from_the_ui_gets_the_runs_tags(composed):
    """The UI's "Materialize" on a partition launches the job with the partition tag only; the run still gets user and file."""
    from automodel_assets.runs import execute_run_job

    run_id, instance = composed["run_id"], _instance(composed["home"])
    result = execute_run_job(instance, run_id, tags={}, asset_keys=[dg.AssetKey("summary")])
    assert result.success
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags["automodel/user"] == "ana" and tags["automodel/file"] == "penguins.csv" and tags["automodel/target"] == "species"
    assert tags["automodel/origin"] == "ui" and tags["automodel/run_id"] == run_id


def test_an_asset_module_that_cannot_be_imported_is_one_sentence_and_records_nothing(home, tmp_path, penguins, monkeypatch):
    penguins.head(40).to_csv(tmp_path / "p.csv", index=False)
    monkeypatch.setenv("AUTOMODEL_ASSET_MODULES", "no_such_team.assets")
    refused = run_cli("run", tmp_path / "p.csv", "--json")
    assert refused.code == 2 and refused.err.count("\n") == 1
    assert "AUTOMODEL_ASSET_MODULES names 'no_such_team.assets', which could not be imported" in refused.err
    assert run_cli("sessions", "--json").json["sessions"] == []


def test_metadata_is_typed(composed):
    instance = _instance(composed["home"])
    model = instance.get_latest_materialization_event(dg.AssetKey("model")).asset_materialization.metadata
    assert isinstance(model["leaderboard"], dg.TableMetadataValue) and model["leaderboard"].records
    assert {"model", "rows"} <= {c.name for c in model["leaderboard"].schema.columns}
    assert isinstance(model["metric/accuracy"], dg.FloatMetadataValue) and model["metric/accuracy"].value > 0.9
    assert "reused_from" not in model, "a value that does not exist is absent, not the text 'None'"
    predictions = instance.get_latest_materialization_event(dg.AssetKey("predictions")).asset_materialization.metadata
    assert isinstance(predictions["preview"], dg.TableMetadataValue) and "prediction" in {c.name for c in predictions["preview"].schema.columns}
    enriched = instance.get_latest_materialization_event(dg.AssetKey("enriched_frame")).asset_materialization.metadata
    assert "lift" not in enriched and enriched["kept"].value is False  # ENABLE_SEMANTIC_MERGE=0: no lift, not "n/a"
    dashboard = instance.get_latest_materialization_event(dg.AssetKey("dashboard")).asset_materialization.metadata
    assert isinstance(dashboard["dashboard"], dg.UrlMetadataValue) and dashboard["dashboard"].value.endswith(f"/{composed['run_id']}.html")
    assert isinstance(dashboard["path"], dg.PathMetadataValue)


def test_rerun_from_predictions_rebuilds_the_added_asset_and_nothing_upstream(composed):
    run_id, home = composed["run_id"], composed["home"]
    before = _instance(home).get_latest_materialization_event(dg.AssetKey("model")).run_id
    result = run_cli("rerun", run_id, "--from", "predictions", "--user", "ana", "--json")
    assert result.code == 0, result.err
    instance = _instance(home)
    latest = instance.get_runs(dg.RunsFilter(tags={"automodel/run_id": run_id}), limit=1)[0]
    assert latest.job_name == "automodel_run"
    assert {k.to_user_string() for k in latest.asset_selection} == {"predictions", "prediction_shares", "summary", "dashboard", "actions"}
    assert instance.get_latest_materialization_event(dg.AssetKey("model")).run_id == before, "the model was not retrained"
    assert run_cli("rerun", run_id, "--from", "prediction_shares", "--user", "ana").code == 0  # the added asset is a valid --from
    unknown = run_cli("rerun", run_id, "--from", "nope", "--user", "ana")
    assert unknown.code == 2 and "prediction_shares" in unknown.err


def test_a_run_with_an_old_style_key_still_runs_and_reruns(composed):
    from automodel.layout import Layout
    from automodel_assets.runs import create_run, materialize_run
    from resources.settings import AutomodelSettings

    settings = AutomodelSettings.from_env()
    instance = _instance(composed["home"])
    old = "20261127T162532-386e7a7c"
    create_run(settings, instance, str(composed["work"] / "penguins.csv"), user_id="ana", target="species", run_id=old)
    assert materialize_run(settings, instance, old).success
    assert settings.layout == Layout.at(composed["home"]) and settings.layout.model_path(old).exists()
    assert old in {row["run_id"] for row in run_cli("sessions", "--user", "ana", "--json").json["sessions"]}
    assert run_cli("rerun", old, "--from", "prediction_shares", "--user", "ana").code == 0
    assert abs(_shares(composed["home"], old)["share"].sum() - 1) < 1e-9


def test_a_drop_with_a_sidecar_runs_the_job_with_the_added_asset_and_the_sidecar_target(composed, tmp_path):
    from automodel.sessions import SessionStore
    from automodel_assets.definitions import current_definitions
    from resources.settings import AutomodelSettings
    from sensors.local_drop import evaluate_local_drop

    drop = tmp_path / "drop"
    (drop / "bo").mkdir(parents=True)
    composed["penguins"].head(200).to_csv(drop / "bo" / "birds.csv", index=False)
    (drop / "bo" / "birds.automodel.json").write_text(json.dumps({"target": "island", "budget_s": 2}))
    settings = AutomodelSettings.from_env(drop_dir=str(drop))
    instance = _instance(composed["home"])
    tick = evaluate_local_drop(settings, instance, None, settle_s=0)
    assert len(tick.run_requests) == 1, tick.skip_reason  # the sidecar itself is not an upload
    request = tick.run_requests[0]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-birds-[0-9a-f]{10}", request.partition_key)
    assert request.tags["automodel/target"] == "island" and request.tags["automodel/user"] == "bo" and request.tags["automodel/file"] == "birds.csv"
    manifest = SessionStore(settings.layout.sessions_db).manifest(request.partition_key)
    assert manifest.target == "island" and manifest.options == {"budget_s": 2.0}
    # What the daemon does with the request: the sensor's job for that partition, with the request's tags.
    instance.add_dynamic_partitions("run_id", [request.partition_key])
    job = current_definitions().resolve_job_def("automodel_run")
    assert job.name == "automodel_run"
    assert job.execute_in_process(partition_key=request.partition_key, tags=request.tags, instance=instance).success
    model = instance.get_latest_materialization_event(dg.AssetKey("model")).asset_materialization.metadata
    assert model["target"].value == "island"
    assert set(_shares(composed["home"], request.partition_key)["prediction"]) <= {"Biscoe", "Dream", "Torgersen"}


def test_s3_drop_sidecars_set_options_and_bad_ones_are_one_sentence(home, s3_server):
    from automodel.sessions import SessionStore
    from resources.settings import AutomodelSettings
    from sensors.s3_drop import evaluate_s3_drop

    client = s3_server.client()
    client.create_bucket(Bucket="drops")
    csv = "bill,island,mass\n" + "\n".join(f"{30 + i % 17},{['Biscoe', 'Dream'][i % 2]},{3000 + 7 * i}" for i in range(60))
    client.put_object(Bucket="drops", Key="users/ivy/bad.automodel.json", Body=b'{"target": "mass", "budget_s": -5}')
    client.put_object(Bucket="drops", Key="users/ivy/bad.csv.gz", Body=gzip.compress(csv.encode()))
    settings = AutomodelSettings.from_env(s3_bucket="drops", s3_prefix="users/")
    instance = dg.DagsterInstance.ephemeral()
    refused = evaluate_s3_drop(settings, instance, None, client=client)
    assert refused.run_requests == []
    assert refused.skip_reason.skip_message == ("ivy/bad.csv.gz: ivy/bad.automodel.json: 'budget_s' must be a number of seconds above 0 and at most 3600; "
                                                "fix the sidecar and upload the file again.")
    client.put_object(Bucket="drops", Key="users/ivy/sales.automodel.json", Body=json.dumps({"target": "mass", "labels": {"bill": "numeric"}}))
    client.put_object(Bucket="drops", Key="users/ivy/sales.csv", Body=csv)
    tick = evaluate_s3_drop(settings, instance, refused.cursor, client=client)
    assert [r.tags["automodel/file"] for r in tick.run_requests] == ["sales.csv"]
    request = tick.run_requests[0]
    assert request.tags["automodel/target"] == "mass" and request.tags["automodel/user"] == "ivy"
    manifest = SessionStore(settings.layout.sessions_db).manifest(request.partition_key)
    assert manifest.target == "mass" and manifest.labels == {"bill": "numeric"}


def test_sidecar_validation_is_one_sentence_per_mistake():
    from automodel.drop_options import parse_sidecar, sidecar_name
    from automodel.errors import InputFileError

    assert sidecar_name("ivy/sales.csv") == "ivy/sales.automodel.json" and sidecar_name("q3.report.tsv.gz") == "q3.report.automodel.json"
    options = parse_sidecar("s.automodel.json", b'{"target": "Revenue", "labels": {"Store": "identifier"}, "budget_s": 30, "category": "retail"}')
    assert (options.target, options.labels, options.category, options.options) == ("Revenue", {"Store": "identifier"}, "retail", {"budget_s": 30.0})
    for data, fragment in [(b"{oops", "is not valid JSON"), (b"[1]", "must hold a JSON object"), (b'{"tagret": "x"}', "unknown option 'tagret'"),
                           (b'{"target": ""}', "'target' must be a non-empty text"), (b'{"labels": {"a": "wizard"}}', "role 'wizard'"),
                           (b'{"budget_s": true}', "'budget_s' must be a number")]:
        with pytest.raises(InputFileError) as error:
            parse_sidecar("s.automodel.json", data)
        message = str(error.value)
        assert fragment in message and message.startswith("s.automodel.json") and message.count(". ") == 0 and message.endswith(".")


def test_run_ids_are_readable_unique_and_safe():
    from datetime import datetime

    from automodel.run_keys import file_stem, readable_run_id

    when = datetime(2026, 11, 27, 16, 25, tzinfo=UTC)
    assert readable_run_id("Sales Q3 (final).csv.gz", when).startswith("2026-11-27-sales-q3-final-")
    assert file_stem("Überblick.xlsx") == "uberblick" and file_stem("数据.csv") == "file" and file_stem("../../etc/passwd") == "passwd"
    assert len(file_stem("x" * 200 + ".csv")) <= 32
    assert readable_run_id("a.csv", when, seed="k") == readable_run_id("a.csv", when, seed="k") != readable_run_id("a.csv", when, seed="j")
    assert len({readable_run_id("a.csv", when) for _ in range(500)}) == 500
    assert all(re.fullmatch(r"[a-z0-9-]+", readable_run_id(name)) for name in ["A b.CSV", "é.json", "-.csv", "x.tar.gz"])


def test_quotas_throttle_tenants_not_the_local_user_and_name_the_setting(home, tmp_path, monkeypatch, penguins):
    from automodel.errors import QuotaExceededError
    from automodel_assets.runs import create_run, get_instance
    from resources.settings import AutomodelSettings

    source = tmp_path / "p.csv"
    penguins.head(50).to_csv(source, index=False)
    settings = AutomodelSettings.from_env(max_requests_free=1)
    instance = get_instance(settings.layout)
    for _ in range(3):  # the person at the command line, no --user
        create_run(settings, instance, str(source), add_partition=False)
    create_run(settings, instance, str(source), user_id="bob", add_partition=False)
    with pytest.raises(QuotaExceededError, match="raise MAX_REQUESTS_FREE"):
        create_run(settings, instance, str(source), user_id="bob", add_partition=False)
    with pytest.raises(QuotaExceededError, match="raise MAX_REQUESTS_FREE"):  # a drop at the top of the folder is a tenant's upload
        create_run(settings, instance, str(source), add_partition=False, from_drop=True)
    tiers = json.dumps({"tiers": {"pro": {"max_requests": 3, "max_gb": 1}}, "users": {"default": "pro"}})
    with pytest.raises(QuotaExceededError, match="raise max_requests of tier 'pro' in AUTOMODEL_QUOTA_TIERS"):
        create_run(AutomodelSettings.from_env(max_requests_free=1, quota_tiers=tiers), instance, str(source), add_partition=False)


def test_the_home_links_the_project_instance_file_so_edits_take_effect(home, tmp_path, monkeypatch):
    from automodel.layout import Layout
    from automodel_assets.runs import get_instance

    layout = Layout.at(home)
    assert get_instance(layout).get_concurrency_config().run_queue_config.max_concurrent_runs == 4
    assert (layout.dagster_home / "dagster.yaml").resolve() == (REPO / "dagster.yaml").resolve()
    edited = tmp_path / "dagster.yaml"
    edited.write_text((REPO / "dagster.yaml").read_text())
    monkeypatch.setenv("AUTOMODEL_DAGSTER_YAML", str(edited))
    assert get_instance(layout).get_concurrency_config().run_queue_config.max_concurrent_runs == 4
    edited.write_text(edited.read_text().replace("max_concurrent_runs: 4", "max_concurrent_runs: 7"))
    assert get_instance(layout).get_concurrency_config().run_queue_config.max_concurrent_runs == 7
    own = layout.dagster_home / "dagster.yaml"
    own.unlink()
    own.write_text("telemetry:\n  enabled: false\n")  # an operator's own file (the production profile) is left alone
    get_instance(layout)
    assert not own.is_symlink() and own.read_text().startswith("telemetry")


def test_with_an_s3_asset_store_the_dashboard_link_is_a_presigned_url_that_opens(home, s3_server, monkeypatch, tmp_path):
    import urllib.request

    from automodel_assets.links import dashboard_link
    from resources.settings import AutomodelSettings

    s3_server.client().create_bucket(Bucket="automodel-prod")
    monkeypatch.setenv("AUTOMODEL_ASSET_STORE", "s3://automodel-prod/assets")
    page = tmp_path / "2026-11-27-sales-0123abcd.html"
    page.write_text("<html><title>automodel run 2026-11-27-sales-0123abcd</title></html>")
    url = dashboard_link(AutomodelSettings.from_env(), page)
    assert url.startswith(f"{s3_server.endpoint}/automodel-prod/assets/dashboards/2026-11-27-sales-0123abcd.html?") and "Signature" in url
    with urllib.request.urlopen(url, timeout=30) as response:
        assert b"automodel run 2026-11-27-sales-0123abcd" in response.read()
    monkeypatch.setenv("AUTOMODEL_DASHBOARD_URL", "https://reports.example.org/automodel/")
    assert dashboard_link(AutomodelSettings.from_env(), page) == "https://reports.example.org/automodel/2026-11-27-sales-0123abcd.html"


def test_home_and_lake_are_absolute_wherever_the_ui_starts(monkeypatch, tmp_path):
    from resources.settings import AutomodelSettings

    monkeypatch.delenv("AUTOMODEL_HOME", raising=False)
    monkeypatch.delenv("AUTOMODEL_LAKE", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = AutomodelSettings.from_env()
    assert settings.layout.home == (REPO / "local_data").resolve() and settings.lake_path == (REPO / "datasets").resolve()
