"""The web page of `automodel serve`, used as a person would, in headless Chromium (Debian's, driven by Playwright).

Enter the token, upload penguins, pick `species` from the columns the page read from the file's header, follow the
run stage by stage to success through the daemon's queue, open the dashboard, ask "what drives species" and see the
answer with its chart, score the training file again with the run's model and download the predictions.
"""

from __future__ import annotations

import pandas as pd
import pytest
from browser import chromium_path, open_browser

pytestmark = pytest.mark.slow

RUN_TIMEOUT_MS = 900_000


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if chromium_path() is None:
        pytest.skip("Chromium is not installed (make system-deps installs Debian's chromium package).")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    pytest.importorskip("fastapi", reason="fastapi is not installed")
    from api_server import serve

    with serve(tmp_path_factory.mktemp("browser")) as server:
        yield server


def test_upload_follow_dashboard_ask_score_and_download(served, tmp_path, penguins):
    penguins_csv = tmp_path / "penguins.csv"
    penguins.to_csv(penguins_csv, index=False)
    token = served.token("ana")
    with open_browser() as new_page:
        seen = new_page()
        page = seen.page
        page.goto(served.base + "/")
        page.fill("#token", token)
        page.click("#save-token")
        page.wait_for_function("document.getElementById('token-state').textContent === 'token accepted'")

        page.set_input_files("#file", str(penguins_csv))
        page.wait_for_selector("#target option[value='species']", state="attached")
        columns = page.eval_on_selector_all("#target option", "options => options.map(o => o.value)")
        assert columns == ["", *penguins.columns], columns
        page.select_option("#target", "species")
        page.click("#start")

        page.wait_for_selector("#run:not([hidden])")
        # Followed stage by stage: while it runs, the status names the stage and that stage is marked running.
        page.wait_for_function("document.getElementById('run-status').textContent.startsWith('running: ')"
                               " && document.querySelector('#stage-list li.running') !== null", timeout=RUN_TIMEOUT_MS, polling=200)
        page.wait_for_function("['success', 'failed'].includes(document.getElementById('run-status').textContent)", timeout=RUN_TIMEOUT_MS)
        assert page.text_content("#run-status") == "success", page.text_content("#run-error") + served.log_tail()
        stages = page.eval_on_selector_all("#stage-list li", "items => items.map(i => [i.dataset.stage, i.className])")
        assert [name for name, _ in stages][:3] == ["raw_dataset", "cleaned_frame", "column_metadata"]
        assert {state for _, state in stages} == {"done"}
        assert "species" in page.text_content("#run-summary")
        run_id = page.text_content("#run-id")
        assert page.locator(f"#history tr[data-run='{run_id}']").count() == 1, "the run is in the history"

        page.click("#open-dashboard")
        page.wait_for_selector("#dashboard-frame:not([hidden])")
        dashboard = page.frame_locator("#dashboard-frame")
        assert run_id in dashboard.locator("h1").first.text_content(timeout=60_000)

        page.fill("#question", "what drives species")
        page.click("#ask")
        page.wait_for_function("!['', 'thinking…'].includes(document.getElementById('answer').textContent)", timeout=120_000)
        answer = page.text_content("#answer")
        assert "species" in answer and "error" not in page.get_attribute("#answer", "class"), answer
        page.wait_for_selector("#chart-frame:not([hidden])", timeout=60_000)
        assert page.frame_locator("#chart-frame").locator("#answer").text_content(timeout=60_000) == answer

        page.set_input_files("#score-file", str(penguins_csv))
        page.click("#score")
        page.wait_for_selector("#download-scores:not([hidden])", timeout=RUN_TIMEOUT_MS)
        with page.expect_download() as download_info:
            page.click("#download-scores")
        downloaded = tmp_path / "scores.csv"
        download_info.value.save_as(downloaded)
        scores = pd.read_csv(downloaded)
        assert len(scores) == len(penguins)
        assert set(scores["prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"}
        assert {"proba_Adelie", "proba_Chinstrap", "proba_Gentoo"} <= set(scores.columns)
        assert (scores["prediction"] == penguins["species"]).mean() > 0.9
        assert seen.console_errors == [], seen.console_errors
