"""`make dev` after a command-line run, looked at as a user does: headless Chromium on the UI and the served dashboards.

One CLI run and one `make dev` (automodel_assets.dev: dagster dev plus the dashboards folder on loopback, on free
ports) for the whole module. The run is re-executable from the UI, carries the user tag and a readable partition key,
its dashboard link opens the dashboard, the leaderboard is a table; and the first `make dev` after the CLI run finds
the lake unchanged and the run's enriched_frame up to date.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import dagster as dg
import pytest
from browser import chromium_path, open_browser
from conftest import REPO, free_port, run_cli, with_lake_indexed

pytestmark = pytest.mark.slow  # one CLI run and one `make dev` for the module: scheduled early (conftest)


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    if chromium_path() is None:
        pytest.skip("Chromium is not installed (make system-deps installs Debian's chromium package).")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    import palmerpenguins

    work = tmp_path_factory.mktemp("dev")
    with_lake_indexed(work / "home")  # the run still records the lake and materializes semantic_index; it profiles nothing
    palmerpenguins.load_penguins().to_csv(work / "penguins.csv", index=False)
    ui_port, dashboard_port = free_port(), free_port()
    env = {"AUTOMODEL_HOME": str(work / "home"), "AUTOMODEL_LAKE": str(REPO / "datasets"), "AUTOMODEL_SEARCH_BUDGET_S": "3",
           "ENABLE_SHAP_EXPLANATIONS": "0", "AUTOMODEL_DASHBOARD_URL": f"http://127.0.0.1:{dashboard_port}/"}
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        for name in ("DAGSTER_HOME", "AUTOMODEL_WEBHOOK_URL", "AUTOMODEL_ASSET_STORE", "AUTOMODEL_ASSET_MODULES"):
            mp.delenv(name, raising=False)
        result = run_cli("run", work / "penguins.csv", "--target", "species", "--user", "ana", "--json")
        assert result.code == 0, result.err
        run_id = result.json["run_id"]
        log = open(work / "dev.log", "wb")  # noqa: SIM115  (the server writes to it until teardown)
        server = subprocess.Popen([sys.executable, "-m", "automodel_assets.dev", "--port", str(ui_port)], cwd=work, env={**os.environ},
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline, nodes = time.time() + 240, None
            while time.time() < deadline and server.poll() is None:
                try:
                    nodes = _graphql(ui_port, "{ assetNodes { assetKey { path } } }")["data"]["assetNodes"]
                    if nodes:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            assert nodes, "make dev did not answer: " + (work / "dev.log").read_text()[-2000:]
            yield {"ui": ui_port, "dashboards": dashboard_port, "run_id": run_id, "home": work / "home", "work": work}
        finally:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            log.close()


@pytest.fixture(scope="module")
def new_page():
    with open_browser() as opener:
        yield opener


def _dagster_run(dev) -> str:
    data = _graphql(dev["ui"], 'query($v: String!) { runsOrError(filter: {tags: [{key: "automodel/run_id", value: $v}]}) '
                               '{ ... on Runs { results { runId jobName } } } }', {"v": dev["run_id"]})
    runs = data["data"]["runsOrError"]["results"]
    assert [r["jobName"] for r in runs] == ["automodel_run"]
    return runs[0]["runId"]


def _open(new_page, url: str):
    """A page at ``url`` with Dagster's first-visit community dialog dismissed, as a user would."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = new_page().page
    page.goto(url, wait_until="domcontentloaded")
    skip = page.get_by_role("button", name="Skip")
    try:
        skip.wait_for(timeout=15_000)
    except PlaywrightTimeout:  # the dialog was not shown
        return page
    skip.click()
    return page


def test_the_cli_run_is_re_executable_and_tagged_in_the_ui(dev, new_page):
    run = _dagster_run(dev)
    page = _open(new_page, f"http://127.0.0.1:{dev['ui']}/runs/{run}")
    button = page.get_by_role("button", name=re.compile("Re-execute")).first
    button.wait_for(timeout=90_000)
    assert button.is_enabled(), "the CLI's run must be re-executable from the UI"
    assert page.get_by_text(f"partition: {dev['run_id']}").count() >= 1
    page.get_by_role("button", name=re.compile("View tags and config")).click()
    dialog = page.get_by_role("dialog").filter(has_text="Tags")
    dialog.get_by_text(re.compile("automodel/user")).first.wait_for(timeout=30_000)
    tags = dialog.inner_text()
    for tag in ("automodel/user: ana", "automodel/file: penguins.csv", "automodel/target: species", f"automodel/run_id: {dev['run_id']}"):
        assert tag in tags, (tag, tags)


def test_the_partition_key_is_readable_and_the_leaderboard_a_table(dev, new_page):
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-penguins-[0-9a-f]{8}", dev["run_id"])
    page = _open(new_page, f"http://127.0.0.1:{dev['ui']}/assets/model?view=partitions&partition={dev['run_id']}")
    page.get_by_text(dev["run_id"], exact=True).filter(visible=True).first.wait_for(timeout=90_000)
    leaderboard = page.locator("table:has(th:text-is('rows')):has(th:text-is('model'))").first
    leaderboard.wait_for(timeout=60_000)
    assert leaderboard.locator("td").filter(has_text=re.compile("lightgbm|extra_trees|random_forest|logistic_regression|ridge|xgboost|catboost")).count() >= 1


def test_the_dashboard_link_opens_the_dashboard(dev, new_page):
    url = f"http://127.0.0.1:{dev['dashboards']}/{dev['run_id']}.html"
    page = _open(new_page, f"http://127.0.0.1:{dev['ui']}/assets/dashboard?view=partitions&partition={dev['run_id']}")
    link = page.locator(f'a[href="{url}"]').first
    link.wait_for(timeout=90_000)
    with page.context.expect_page(timeout=30_000) as opened:
        link.click()
    dashboard = opened.value
    dashboard.wait_for_load_state("domcontentloaded")
    assert dev["run_id"] in dashboard.title() and "species" in dashboard.content()


def test_an_ask_chart_is_linked_from_the_dashboard_asset_and_served(dev):
    from automodel.layout import Layout
    from automodel_assets.runs import get_instance

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUTOMODEL_HOME", str(dev["home"]))
        mp.setenv("AUTOMODEL_DASHBOARD_URL", f"http://127.0.0.1:{dev['dashboards']}/")
        asked = run_cli("ask", dev["run_id"], "average body mass by species", "--user", "ana", "--json")
    assert asked.code == 0, asked.err
    url = asked.json["chart_url"]
    assert url.startswith(f"http://127.0.0.1:{dev['dashboards']}/{dev['run_id']}_ask_")
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200 and b"plotly" in response.read().lower()
    instance = get_instance(Layout.at(dev["home"]))
    observed = instance.fetch_observations(dg.AssetRecordsFilter(asset_key=dg.AssetKey("dashboard"), asset_partitions=[dev["run_id"]]), limit=1)
    metadata = observed.records[0].asset_observation.metadata
    assert metadata["chart"].value == url and metadata["question"].value == "average body mass by species"


def test_the_first_dev_after_a_cli_run_sees_the_lake_unchanged_and_the_run_up_to_date(dev):
    from automodel.layout import Layout
    from automodel_assets.runs import get_instance
    from resources.settings import AutomodelSettings
    from sensors.lake import evaluate_lake_change

    settings = AutomodelSettings.from_env(home=str(dev["home"]), lake_dir=str(REPO / "datasets"))
    tick = evaluate_lake_change(settings, get_instance(Layout.at(dev["home"])), None)
    assert tick.asset_events == [] and tick.skip_reason.skip_message == "The lake has not changed."
    index = _graphql(dev["ui"], '{ assetNodes(assetKeys: [{path: ["semantic_index"]}]) { staleStatus } }')["data"]["assetNodes"]
    enriched = _graphql(dev["ui"], 'query($p: String) { assetNodes(assetKeys: [{path: ["enriched_frame"]}]) { staleStatus(partition: $p) } }',
                        {"p": dev["run_id"]})["data"]["assetNodes"]
    assert index == [{"staleStatus": "FRESH"}] and enriched == [{"staleStatus": "FRESH"}], (index, enriched)
