"""The HTTP API (service/): every endpoint with FastAPI's client, then a real uvicorn with a real Dagster daemon.

With the client: one penguins run trained by `automodel run` for user ana is read, downloaded, asked about and
predicted from over HTTP; bob's token sees none of it (404, exactly like a missing run); an admin token sees it.
New runs are submitted to the instance's run queue (no daemon here: they stay queued, proving the request did
not run them). Against `automodel serve`: an upload runs to success through the queue and the daemon, a run
killed mid-way is reported failed, a 2 GB upload streams under a bounded memory figure, and a gzip bomb and a
malformed multipart body are refused with one sentence.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import threading
import time

import dagster as dg
import pandas as pd
import pytest
from conftest import REPO, run_cli, with_lake_indexed

from automodel.sessions import SessionStore

pytest.importorskip("fastapi", reason="fastapi is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from resources.settings import AutomodelSettings  # noqa: E402
from service.app import create_app  # noqa: E402
from service.tokens import TokenStore  # noqa: E402

SENTENCE_END = (".", "?", "!")


def one_sentence(response) -> str:
    body = response.json()
    assert set(body) == {"detail"}, body
    detail = body["detail"]
    assert isinstance(detail, str) and detail.endswith(SENTENCE_END) and "Traceback" not in detail, detail
    return detail


@pytest.fixture(scope="module")
def trained(tmp_path_factory, penguins):
    """A home where `automodel run` trained a penguins model for user ana; tokens for ana, bob and an admin."""
    work = tmp_path_factory.mktemp("api")
    home = with_lake_indexed(work / "home")
    penguins.to_csv(work / "penguins.csv", index=False)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {"AUTOMODEL_HOME": str(home), "AUTOMODEL_LAKE": str(REPO / "datasets"), "AUTOMODEL_SEARCH_BUDGET_S": "3"}.items():
            mp.setenv(name, value)
        for name in ("DAGSTER_HOME", "AUTOMODEL_WEBHOOK_URL", "AUTOMODEL_ASSET_STORE", "AUTOMODEL_USER", "AUTOMODEL_ADMIN"):
            mp.delenv(name, raising=False)
        result = run_cli("run", work / "penguins.csv", "--target", "species", "--user", "ana", "--json")
        assert result.code == 0, result.err
        tokens = TokenStore(home)
        yield {"work": work, "home": home, "run_id": result.json["run_id"], "cli": result.json,
               "ana": tokens.create("ana")[1], "bob": tokens.create("bob")[1], "admin": tokens.create("root", "admin")[1]}


def client(trained, **overrides) -> TestClient:
    return TestClient(create_app(AutomodelSettings.from_env(**overrides)))


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_no_token_is_401_and_a_revoked_token_too(trained):
    with client(trained) as c:
        for method, path in [("get", "/runs"), ("get", f"/runs/{trained['run_id']}"), ("post", "/runs"),
                             ("post", f"/models/{trained['run_id']}/predict"), ("get", f"/runs/{trained['run_id']}/predictions")]:
            response = getattr(c, method)(path)
            assert response.status_code == 401, (path, response.text)
            assert "bearer token" in one_sentence(response)
        assert c.get("/runs", headers=auth("am_00000000_not-a-token")).status_code == 401
        token_id, token = TokenStore(trained["home"]).create("carol")
        assert c.get("/runs", headers=auth(token)).status_code == 200
        TokenStore(trained["home"]).revoke(token_id)
        assert "revoked" in one_sentence(c.get("/runs", headers=auth(token)))


def test_token_create_prints_the_token_last_and_stores_only_its_hash(trained, cli):
    result = cli("token", "create", "--user", "dora")
    assert result.code == 0, result.err
    token = result.out.strip().splitlines()[-1]
    assert token.startswith("am_") and len(token) > 40
    db = (trained["home"] / "api.db").read_bytes()
    assert token.encode() not in db, "the token itself is never stored"
    with client(trained) as c:
        assert c.get("/runs", headers=auth(token)).json()["runs"] == []
    listed = cli("token", "list", "--json")
    assert any(t["user_id"] == "dora" and t["role"] == "user" for t in json.loads(listed.out)["tokens"])
    assert cli("token", "revoke", token).code == 0
    with client(trained) as c:
        assert c.get("/runs", headers=auth(token)).status_code == 401
    assert cli("token", "create", "--user", "../etc").code == 2


def test_a_run_reads_as_the_cli_json_and_another_users_run_as_missing(trained):
    run_id = trained["run_id"]
    with client(trained) as c:
        body = c.get(f"/runs/{run_id}", headers=auth(trained["ana"])).json()
        assert body["status"] == "success" and body["user"] == "ana" and body["file"] == "penguins.csv"
        assert [s["status"] for s in body["stages"]] == ["done"] * len(body["stages"]) and "model" in [s["name"] for s in body["stages"]]
        for key in ("analyzer", "task", "target", "metrics", "model_path", "predictions_path", "summary", "dashboard_path", "enrichment", "actions"):
            assert body[key] == trained["cli"][key], key
        assert body["links"]["predict"] == f"/models/{run_id}/predict"
        theirs = c.get(f"/runs/{run_id}", headers=auth(trained["bob"]))
        missing = c.get("/runs/2026-01-01-nothing-00000000", headers=auth(trained["bob"]))
        assert theirs.status_code == missing.status_code == 404
        assert one_sentence(theirs).replace(run_id, "ID") == one_sentence(missing).replace("2026-01-01-nothing-00000000", "ID")
        for path in ("predictions", "dashboard"):
            assert c.get(f"/runs/{run_id}/{path}", headers=auth(trained["bob"])).status_code == 404
        assert c.post(f"/runs/{run_id}/ask", headers=auth(trained["bob"]), json={"question": "how many rows"}).status_code == 404
        assert c.post(f"/models/{run_id}/predict", headers=auth(trained["bob"]), json={"rows": [{"island": "Dream"}]}).status_code == 404
        assert c.post(f"/runs/{run_id}/rerun", headers=auth(trained["bob"])).status_code == 404
        assert c.get(f"/runs/{run_id}", headers=auth(trained["admin"])).json()["status"] == "success"


def test_runs_list_is_the_callers_newest_first_filtered_and_paged(trained):
    with client(trained) as c:
        mine = c.get("/runs", headers=auth(trained["ana"])).json()
        assert [r["run_id"] for r in mine["runs"]][-1] == trained["run_id"] and {r["user"] for r in mine["runs"]} == {"ana"}
        assert c.get("/runs", headers=auth(trained["bob"])).json() == {"runs": [], "total": 0, "limit": 20, "offset": 0}
        assert trained["run_id"] in [r["run_id"] for r in c.get("/runs", headers=auth(trained["admin"])).json()["runs"]]
        assert [r["run_id"] for r in c.get("/runs?status=success&target=species&file=PENGUIN", headers=auth(trained["ana"])).json()["runs"]] \
            == [trained["run_id"]]
        assert c.get("/runs?status=failed", headers=auth(trained["ana"])).json()["runs"] == []
        assert c.get("/runs?target=island", headers=auth(trained["ana"])).json()["runs"] == []
        page = c.get("/runs?limit=1&offset=0", headers=auth(trained["ana"])).json()
        assert len(page["runs"]) == 1 and page["total"] == mine["total"]
        assert "status must be one of" in one_sentence(c.get("/runs?status=done", headers=auth(trained["ana"])))
        assert one_sentence(c.get("/runs?limit=0", headers=auth(trained["ana"]))).startswith("limit")


def test_predictions_stream_as_csv_and_json_in_the_users_labels(trained):
    run_id = trained["run_id"]
    with client(trained) as c:
        response = c.get(f"/runs/{run_id}/predictions", headers=auth(trained["ana"]))
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        assert response.content == open(trained["cli"]["predictions_path"], "rb").read()
        as_json = c.get(f"/runs/{run_id}/predictions?format=json", headers=auth(trained["ana"])).json()
        frame = pd.read_csv(io.BytesIO(response.content))
        assert as_json["run_id"] == run_id and len(as_json["predictions"]) == len(frame) == 344
        assert {p["prediction"] for p in as_json["predictions"]} <= {"Adelie", "Chinstrap", "Gentoo"}
        assert as_json["predictions"][0]["proba_Adelie"] == pytest.approx(frame["proba_Adelie"][0])
        dashboard = c.get(f"/runs/{run_id}/dashboard", headers=auth(trained["ana"]))
        assert dashboard.status_code == 200 and f"automodel run {run_id}" in dashboard.text


def test_predict_replays_the_training_schema_like_score(trained, penguins):
    run_id = trained["run_id"]
    expected = pd.read_csv(trained["cli"]["predictions_path"])
    rows = json.loads(penguins.drop(columns=["species"]).iloc[[0, 3, 150, 300]].to_json(orient="records"))  # row 3 has no measurements
    with client(trained) as c:
        body = c.post(f"/models/{run_id}/predict", headers=auth(trained["ana"]), json={"rows": rows}).json()
        got = pd.DataFrame(body["predictions"])
        want = expected.iloc[[0, 3, 150, 300]].reset_index(drop=True)
        assert list(got["prediction"]) == list(want["prediction"])
        for column in [c for c in want.columns if c.startswith("proba_")]:
            assert got[column].to_numpy() == pytest.approx(want[column].to_numpy(), abs=1e-9)
        assert body["rows"] == 4 and body["scoring"]["missing_imputed"] == []
        # Columns spelt differently, an extra column, a category the model never saw: read as `score` reads them, and said.
        odd = c.post(f"/models/{run_id}/predict", headers=auth(trained["ana"]),
                     json={"rows": [{"Island": "Atlantis", "bill_length_mm": "39.1", "flipper_length_mm": 181, "year": 2008, "note": "x"}]}).json()
        assert odd["predictions"][0]["prediction"] in {"Adelie", "Chinstrap", "Gentoo"}
        assert odd["scoring"]["extra_columns"] == ["note"] and "island" in odd["scoring"]["unseen_categories"]
        lacking = c.post(f"/models/{run_id}/predict", headers=auth(trained["ana"]), json={"rows": [{"island": "Dream"}]})
        assert lacking.status_code == 400 and "lacks 'year'" in one_sentence(lacking)
        for bad in ({"rows": []}, {"rows": [1, 2]}, {"rows": [{"island": ["Dream"]}]}, {"row": []}):
            assert c.post(f"/models/{run_id}/predict", headers=auth(trained["ana"]), json=bad).status_code == 400
            one_sentence(c.post(f"/models/{run_id}/predict", headers=auth(trained["ana"]), json=bad))
        csv = penguins.drop(columns=["species"]).head(7).to_csv(index=False).encode()
        as_file = c.post(f"/models/{run_id}/predict", headers=auth(trained["ana"]), files={"file": ("new.csv", csv, "text/csv")}).json()
        assert [p["prediction"] for p in as_file["predictions"]] == list(expected["prediction"].head(7))


def test_a_batch_over_the_threshold_becomes_a_queued_scoring_run(trained, penguins):
    run_id = trained["run_id"]
    rows = json.loads(penguins.drop(columns=["species"]).head(30).to_json(orient="records"))
    with client(trained, api_predict_max_rows=10) as c:
        response = c.post(f"/models/{run_id}/predict", headers=auth(trained["ana"]), json={"rows": rows})
        assert response.status_code == 202, response.text
        scoring = response.json()["run_id"]
        wait_submitted(c, scoring, trained["ana"])
        row = SessionStore(trained["home"] / "sessions.db").get(scoring)
        assert row["model_run_id"] == run_id and row["user_id"] == "ana"


def wait_submitted(c, run_id: str, token: str, timeout: float = 120) -> dict:
    """A run the service accepted: on the Dagster run queue (no daemon runs here, so it stays queued)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = c.get(f"/runs/{run_id}", headers=auth(token)).json()
        if body.get("dagster_run_id") and not c.app.state.service.submitter.is_waiting(run_id):
            return body
        time.sleep(0.3)
    raise AssertionError(f"{run_id} was not submitted")


def test_an_upload_is_accepted_at_once_and_queued_not_run_in_the_request(trained, penguins):
    csv = penguins.head(120).to_csv(index=False).encode()
    with client(trained) as c:
        started = time.perf_counter()
        response = c.post("/runs", headers=auth(trained["ana"]), files={"file": ("little penguins.csv", csv, "text/csv")},
                          data={"target": "species", "label": ["year=numeric"], "drop": ["island"], "budget": "5"})
        assert response.status_code == 202, response.text
        assert time.perf_counter() - started < 30
        run_id = response.json()["run_id"]
        assert response.headers["location"] == f"/runs/{run_id}"
        body = wait_submitted(c, run_id, trained["ana"])
        assert body["status"] == "queued" and body["stages"][0]["status"] == "pending"
        instance = dg.DagsterInstance.from_config(str(trained["home"] / "dagster"))
        run = instance.get_run_by_id(body["dagster_run_id"])
        assert run.status == dg.DagsterRunStatus.QUEUED and run.job_name == "automodel_run"
        assert run.tags["automodel/user"] == "ana" and run.tags["automodel/origin"] == "api" and run.tags["dagster/partition"] == run_id
        manifest = SessionStore(trained["home"] / "sessions.db").manifest(run_id)
        assert manifest.target == "species" and manifest.labels == {"year": "numeric"}
        assert manifest.options == {"drop": ["island"], "budget_s": 5.0}
        assert not list((trained["home"] / "tmp" / "uploads").iterdir()), "the streamed upload is removed once staged"
        # A rerun while it is queued is refused; an unknown asset too.
        assert "still queued" in one_sentence(c.post(f"/runs/{run_id}/rerun", headers=auth(trained["ana"])))
        assert "Unknown asset" in one_sentence(c.post(f"/runs/{trained['run_id']}/rerun", headers=auth(trained["ana"]), json={"from": "nope"}))


def test_rerun_from_an_asset_and_on_a_new_file(trained, penguins):
    run_id = trained["run_id"]
    with client(trained) as c:
        response = c.post(f"/runs/{run_id}/rerun", headers=auth(trained["ana"]), json={"from": "summary"})
        assert response.status_code == 202 and response.json()["run_id"] == run_id
        body = wait_submitted(c, run_id, trained["ana"])
        assert body["status"] == "queued"
        skipped = {s["name"] for s in body["stages"] if s["status"] == "skipped"}
        assert "model" in skipped and "summary" not in skipped
        instance = dg.DagsterInstance.from_config(str(trained["home"] / "dagster"))
        queued = instance.get_run_by_id(body["dagster_run_id"])
        assert {k.to_user_string() for k in queued.asset_selection} == {"summary", "dashboard", "actions"}
        instance.delete_run(queued.run_id)  # no daemon here: take the queued attempt back so the run reads as finished again
        SessionStore(trained["home"] / "sessions.db").update(run_id, status="success")
        csv = penguins.sample(200, random_state=1).to_csv(index=False).encode()
        again = c.post(f"/runs/{run_id}/rerun", headers=auth(trained["ana"]), files={"file": ("later.csv", csv, "text/csv")})
        assert again.status_code == 202, again.text
        new = SessionStore(trained["home"] / "sessions.db").manifest(again.json()["run_id"])
        assert new.run_id != run_id and new.target == "species" and new.file_name == "later.csv" and new.user_id == "ana"


def test_ask_answers_with_the_chart(trained):
    run_id = trained["run_id"]
    with client(trained) as c:
        body = c.post(f"/runs/{run_id}/ask", headers=auth(trained["ana"]), json={"question": "how many rows per island"}).json()
        assert body["answer"] and body["chart_url"] == f"/runs/{run_id}/charts/{os.path.basename(body['chart_path'])}"
        chart = c.get(body["chart_url"], headers=auth(trained["ana"]))
        assert chart.status_code == 200 and "Plotly" in chart.text
        assert c.get(body["chart_url"], headers=auth(trained["bob"])).status_code == 404
        assert c.get(f"/runs/{run_id}/charts/..%2Fsessions.db", headers=auth(trained["ana"])).status_code == 404
        assert one_sentence(c.post(f"/runs/{run_id}/ask", headers=auth(trained["ana"]), json={"question": ""})).startswith("question")


def test_bad_requests_are_one_sentence(trained, penguins):
    csv = penguins.head(50).to_csv(index=False).encode()
    whole = penguins.to_csv(index=False).encode()  # 17 KB
    with client(trained, api_max_upload_mb=0.01, api_max_json_mb=0.001) as c:
        headers = auth(trained["ana"])
        assert c.post("/runs", headers=headers, files={"file": ("p.csv", whole)}).status_code == 413
        assert "AUTOMODEL_API_MAX_UPLOAD_MB" in one_sentence(c.post("/runs", headers=headers, files={"file": ("p.csv", whole)}))
        streamed = c.post("/runs", headers={**headers, "Content-Type": "multipart/form-data; boundary=b"},  # no length declared
                          content=iter([b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.csv\"\r\n\r\n", whole, b"\r\n--b--\r\n"]))
        assert streamed.status_code == 413 and "AUTOMODEL_API_MAX_UPLOAD_MB" in one_sentence(streamed)
        big = {"rows": [{"island": "Dream"}] * 200}
        assert "AUTOMODEL_API_MAX_JSON_MB" in one_sentence(c.post(f"/models/{trained['run_id']}/predict", headers=headers, json=big))
        chunked = c.post(f"/models/{trained['run_id']}/predict", headers={**headers, "Content-Type": "application/json"},
                         content=iter([json.dumps(big).encode()]))
        assert chunked.status_code == 413
    with client(trained) as c:
        headers = auth(trained["ana"])
        cases = [
            ({"files": {"file": ("notes.txt.exe", b"a,b\n1,2\n")}}, 400, "not a supported format"),
            ({"files": {"file": ("../../etc/passwd.csv", csv)}, "data": {"target": "species"}}, None, None),
            ({"data": {"target": "species"}, "files": {"other": ("x.csv", csv)}}, 400, "field 'file'"),
            ({"data": {"source": "/etc/passwd"}}, 400, "s3:// URI"),
            ({"data": {"label": "year=wizard"}, "files": {"file": ("p.csv", csv)}}, 400, "COLUMN=ROLE"),
            ({"data": {"keep": "island", "drop": "island"}, "files": {"file": ("p.csv", csv)}}, 400, "both kept and dropped"),
            ({"data": {"budget": "soon"}, "files": {"file": ("p.csv", csv)}}, 400, "not a number"),
            ({"data": {"validate": "sideways"}, "files": {"file": ("p.csv", csv)}}, 400, "random, time:COLUMN or group:COLUMN"),
            ({"data": {"colour": "blue"}, "files": {"file": ("p.csv", csv)}}, 400, "Unknown field"),
            ({"data": {"model": "2026-01-01-nothing-00000000"}, "files": {"file": ("p.csv", csv)}}, 404, "not known"),
            ({"data": {"target": "species"}}, 400, "part named 'file'"),
            ({"content": b"target=species", "headers": {"Content-Type": "text/plain"}}, 415, "multipart/form-data"),
        ]
        for kwargs, status, words in cases:
            extra_headers = kwargs.pop("headers", {})
            response = c.post("/runs", headers={**headers, **extra_headers}, **kwargs)
            if status is None:  # a path in the file name is reduced to its last part, never followed
                assert response.status_code == 202, response.text
                assert SessionStore(trained["home"] / "sessions.db").get(response.json()["run_id"])["file_name"] == "passwd.csv"
                continue
            assert response.status_code == status, (kwargs, response.text)
            assert words in one_sentence(response), (kwargs, response.text)
        assert one_sentence(c.get("/nowhere", headers=headers)).startswith("There is no endpoint")
    with client(trained, api_rate_per_minute=10) as c:
        codes = [c.get("/runs", headers=auth(trained["bob"])).status_code for _ in range(14)]
        assert codes[:10] == [200] * 10 and 429 in codes[10:]
        limited = c.get("/runs", headers=auth(trained["bob"]))
        assert "AUTOMODEL_API_RATE_PER_MINUTE" in one_sentence(limited) and int(limited.headers["retry-after"]) >= 1
        assert c.get("/runs", headers=auth(trained["ana"])).status_code == 200, "the limit is per token"
    with client(trained, max_requests_free=1) as c:  # the free tier's runs per day, as at every other entry point
        response = c.post("/runs", headers=auth(trained["bob"]), files={"file": ("p.csv", csv)})
        assert response.status_code == 202, response.text
        refused = c.post("/runs", headers=auth(trained["bob"]), files={"file": ("p.csv", csv)})
        assert refused.status_code == 429 and "MAX_REQUESTS_FREE" in one_sentence(refused)


def test_openapi_and_health(trained):
    with client(trained) as c:
        spec = c.get("/openapi.json").json()
        for path in ("/runs", "/runs/{run_id}", "/runs/{run_id}/rerun", "/runs/{run_id}/predictions", "/runs/{run_id}/dashboard",
                     "/runs/{run_id}/ask", "/models/{run_id}/predict", "/health"):
            assert path in spec["paths"], path
        assert "multipart/form-data" in spec["paths"]["/runs"]["post"]["requestBody"]["content"]
        assert c.get("/docs").status_code == 200
        health = c.get("/health")
        body = health.json()
        assert body["instance"]["run_queue"] is True and body["storage"]["ok"] is True and body["lake_index"]["current"] is True
        assert body["daemon"]["ok"] is False and health.status_code == 503 and body["status"] == "degraded", "no daemon runs here"
        page = c.get("/")
        assert page.status_code == 200 and "/web/app.js" in page.text and "http" not in page.text.replace("http-equiv", "")


# ---- a real uvicorn and a real daemon ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from api_server import serve

    with serve(tmp_path_factory.mktemp("served"), {"ENABLE_SHAP_EXPLANATIONS": "0", "AUTOMODEL_API_MAX_UPLOAD_MB": "3000"}) as server:
        yield server


def follow(http, run_id: str, timeout: float, until=lambda body: body["status"] in ("success", "failed")) -> tuple[dict, list]:
    seen = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = http.get(f"/runs/{run_id}").json()
        seen.append((body["status"], body.get("stage")))
        if until(body):
            return body, seen
        time.sleep(0.5)
    raise AssertionError(f"{run_id} did not get there in {timeout:.0f} s; saw {seen[-5:]}")


@pytest.mark.slow
def test_an_upload_runs_to_success_through_the_queue(served, penguins):
    with served.client(served.token("ana")) as http:
        response = http.post("/runs", files={"file": ("penguins.csv", penguins.to_csv(index=False).encode(), "text/csv")},
                             data={"target": "species"})
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        body, seen = follow(http, run_id, 900)
        assert body["status"] == "success", (body, served.log_tail())
        assert {s["status"] for s in body["stages"]} == {"done"}
        assert any(stage not in (None, "raw_dataset") for status, stage in seen if status == "running") or seen[0][0] == "queued"
        assert body["metrics"]["f1"] > 0.8 and body["target"] == "species"
        instance = dg.DagsterInstance.from_config(str(served.home / "dagster"))
        run = instance.get_run_by_id(body["dagster_run_id"])
        assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["automodel/origin"] == "api"
        assert any(e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_ENQUEUED" for e in instance.all_logs(run.run_id)), \
            "the run went through the daemon's queue"
        predictions = pd.read_csv(io.BytesIO(http.get(f"/runs/{run_id}/predictions").content))
        assert len(predictions) == len(penguins) and set(predictions["prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"}
        assert http.get("/runs", params={"status": "success"}).json()["runs"][0]["run_id"] == run_id


@pytest.mark.slow
def test_a_run_killed_mid_way_is_reported_failed(served, penguins):
    with served.client(served.token("kim")) as http:
        response = http.post("/runs", files={"file": ("slow.csv", penguins.to_csv(index=False).encode(), "text/csv")},
                             data={"target": "species", "budget": "120"})
        run_id = response.json()["run_id"]
        body, _ = follow(http, run_id, 900, until=lambda b: b.get("stage") == "model" or b["status"] in ("success", "failed"))
        assert body["stage"] == "model" and body["status"] == "running", body
        from automodel_assets.recovery import _launcher_pid

        instance = dg.DagsterInstance.from_config(str(served.home / "dagster"))
        pid, _ = _launcher_pid(instance, body["dagster_run_id"])
        os.kill(pid, signal.SIGKILL)
        body, _ = follow(http, run_id, 300)
        assert body["status"] == "failed" and "died during stage model" in body["error"], body
        assert http.get(f"/runs/{run_id}/predictions").status_code == 409


def _multipart_stream(boundary: str, name: str, total: int, chunk: int = 1 << 20):
    yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"target\"\r\n\r\nb\r\n"
           f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/csv\r\n\r\n").encode()
    yield b"a,b\n"
    line = b"12345,67890\n"
    block = line * (chunk // len(line))
    sent = 4
    while sent < total:
        piece = block[: total - sent]
        sent += len(piece)
        yield piece
    yield f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.slow
def test_a_2gb_upload_streams_under_bounded_memory_then_the_quota_refuses_it(served):
    import psutil

    server = psutil.Process(served.process.pid)
    baseline = server.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], server.memory_info().rss)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    total = 2 * 1024**3
    boundary = "automodel-test-boundary"
    with served.client(served.token("big"), timeout=900) as http:
        try:
            response = http.post("/runs", content=_multipart_stream(boundary, "big.csv", total),
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        finally:
            done.set()
            sampler.join()
    grown = (peak[0] - baseline) / 1024**2
    print(f"2 GB upload: server RSS {baseline / 1024**2:.0f} MB before, peak {peak[0] / 1024**2:.0f} MB (+{grown:.0f} MB)")
    assert grown < 200, f"the server grew by {grown:.0f} MB while streaming 2 GB"
    assert response.status_code == 429 and "MAX_GB_FREE" in one_sentence(response), response.text
    assert not list((served.home / "tmp" / "uploads").iterdir()) and not (served.home / "users" / "big").exists()


@pytest.mark.slow
def test_a_gzip_bomb_and_a_malformed_body_are_refused_with_one_sentence(served):
    bomb = gzip.compress(b"a,b\n" + b"0,0\n" * 10_000_000, compresslevel=9)  # 40 MB of rows in about 40 KB
    with served.client(served.token("mal")) as http:
        response = http.post("/runs", files={"file": ("bomb.csv.gz", bomb, "application/gzip")})
        assert response.status_code == 400 and "expan" in one_sentence(response).lower(), response.text
        truncated = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\na,b\n1,2\n"
        response = http.post("/runs", content=truncated, headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        assert response.status_code == 400 and "closing boundary" in one_sentence(response)
        response = http.post("/runs", content=b"this is not multipart", headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        assert response.status_code == 400 and "malformed" in one_sentence(response)
        response = http.post("/runs", content=b"x", headers={"Content-Type": "multipart/form-data"})
        assert response.status_code == 400 and "boundary" in one_sentence(response)
        assert http.get("/runs").json()["runs"] == [], "nothing refused became a run"
