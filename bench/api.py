"""The HTTP API under load: one-row predict latency, a 1,000-row batch against `automodel score`, and many users at once.

    .venv/bin/python bench/api.py [--requests 200] [--budget 5]

A fresh home (no lake enrichment, so only the API is measured), two models trained by `automodel run`:
user ana's predicts penguin `species`, user bob's predicts penguin `sex`. A real `automodel serve` on a
free loopback port with the Dagster daemon it starts. Then:

- one-row predict latency with a warm model (``--requests`` sequential requests over one keep-alive
  connection): p50, p95, p99 ms as the client sees them (goal: p95 <= 50 ms);
- a 1,000-row batch: ``POST /models/{id}/predict`` with the rows as JSON (rows/s, the model warm) against
  `automodel score` of the same 1,000 rows as a CSV (a process that starts, runs the job and writes the
  predictions file), and whether both give the same predictions;
- 50 concurrent predicts (25 by ana on her model, 25 by bob on his, each a different row) plus 5 concurrent
  uploads by five users: every predict answered with its own user's model and labels and equal to the same
  row predicted alone; every upload accepted, owned by its uploader, listed only to them and run to success
  by the daemon; nothing lost or mixed.

Prints one JSON object. The machine's load average is printed with it (other work shares the CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def main() -> None:
    import httpx
    import palmerpenguins

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--budget", type=float, default=5.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-api-"))
    home = work / "home"
    env = {**os.environ, "AUTOMODEL_HOME": str(home), "AUTOMODEL_LAKE": str(ROOT / "datasets"), "ENABLE_SEMANTIC_MERGE": "0",
           "ENABLE_SHAP_EXPLANATIONS": "0", "AUTOMODEL_SEARCH_BUDGET_S": str(args.budget), "AUTOMODEL_API_RATE_PER_MINUTE": "0",
           "HF_HUB_OFFLINE": "1", "DAGSTER_DISABLE_TELEMETRY": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("DAGSTER_HOME", None)
    penguins = palmerpenguins.load_penguins()
    penguins.to_csv(work / "penguins.csv", index=False)

    def cli(*argv, timeout=900) -> subprocess.CompletedProcess:
        done = subprocess.run([str(BIN / "automodel"), *argv], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if done.returncode:
            raise SystemExit(f"automodel {' '.join(argv)} failed: {done.stderr.strip()}")
        return done

    species = json.loads(cli("run", str(work / "penguins.csv"), "--target", "species", "--user", "ana", "--json").stdout.splitlines()[-1])
    sex = json.loads(cli("run", str(work / "penguins.csv"), "--target", "sex", "--user", "bob", "--json").stdout.splitlines()[-1])
    users = ["ana", "bob", "cat", "dan", "eve"]
    tokens = {user: cli("token", "create", "--user", user).stdout.strip().splitlines()[-1] for user in users}

    port = _free_port()
    server = subprocess.Popen([str(BIN / "automodel"), "serve", "--port", str(port)], env=env, cwd=ROOT, stdout=open(work / "serve.log", "ab"),  # noqa: SIM115
                              stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    out: dict = {"machine_load_1min": os.getloadavg()[0], "cpus": os.cpu_count()}
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                if httpx.get(f"{base}/health", timeout=5).json()["status"] == "ok":
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        else:
            raise SystemExit("automodel serve did not become healthy: " + (work / "serve.log").read_text()[-2000:])

        features = penguins.drop(columns=["species", "sex"])
        rows = json.loads(features.to_json(orient="records"))
        bob_rows = json.loads(penguins.drop(columns=["sex"]).to_json(orient="records"))  # bob's model reads the species
        clients = {user: httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=600) for user in users}
        ana, bob = clients["ana"], clients["bob"]
        species_model = f"/models/{species['run_id']}/predict"
        sex_model = f"/models/{sex['run_id']}/predict"

        # One row, warm model.
        ana.post(species_model, json={"rows": rows[:1]}).raise_for_status()  # loads the model
        latencies = []
        for i in range(args.requests):
            started = time.perf_counter()
            response = ana.post(species_model, json={"rows": [rows[i % len(rows)]]})
            latencies.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
        out["predict_one_row_ms"] = {"requests": args.requests, "p50": round(_percentile(latencies, 50), 1),
                                     "p95": round(_percentile(latencies, 95), 1), "p99": round(_percentile(latencies, 99), 1)}

        # 1,000 rows: the API (warm) against `automodel score` on the same rows.
        batch = features.sample(1000, replace=True, random_state=0).reset_index(drop=True)
        batch_rows = json.loads(batch.to_json(orient="records"))
        batch.to_csv(work / "batch.csv", index=False)
        started = time.perf_counter()
        answer = ana.post(species_model, json={"rows": batch_rows})
        api_s = time.perf_counter() - started
        answer.raise_for_status()
        started = time.perf_counter()
        scored = json.loads(cli("score", str(work / "batch.csv"), "--model", species["run_id"], "--user", "ana", "--json").stdout.splitlines()[-1])
        cli_s = time.perf_counter() - started
        import pandas as pd

        cli_predictions = pd.read_csv(scored["predictions_path"])
        api_predictions = pd.DataFrame(answer.json()["predictions"])
        out["batch_1000_rows"] = {"api_s": round(api_s, 3), "api_rows_per_s": round(1000 / api_s), "cli_score_s": round(cli_s, 2),
                                  "cli_rows_per_s": round(1000 / cli_s), "same_predictions": bool((cli_predictions["prediction"] == api_predictions["prediction"]).all())}

        # Alone first: what each row's answer must be under load.
        picks = list(range(0, 50 * 6, 6))[:50]
        alone = {}
        for n, i in enumerate(picks):
            client, model, given = (ana, species_model, rows) if n % 2 == 0 else (bob, sex_model, bob_rows)
            response = client.post(model, json={"rows": [given[i]]})
            if response.status_code != 200:
                raise SystemExit(f"predict of row {i} answered {response.status_code}: {response.text[:300]}")
            alone[n] = response.json()["predictions"][0]

        upload = penguins.sample(150, random_state=7).to_csv(index=False).encode()

        def predict(n: int):
            client, model, given = (ana, species_model, rows) if n % 2 == 0 else (bob, sex_model, bob_rows)
            response = client.post(model, json={"rows": [given[picks[n]]]})
            return n, response.status_code, response.json()

        def upload_as(user: str):
            response = clients[user].post("/runs", files={"file": (f"{user}-penguins.csv", upload, "text/csv")},
                                          data={"target": "species", "budget": str(args.budget)})
            return user, response.status_code, response.json()

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=55) as pool:
            predicted = [pool.submit(predict, n) for n in range(50)]
            uploaded = [pool.submit(upload_as, user) for user in users]
            predicted = [f.result() for f in predicted]
            uploaded = [f.result() for f in uploaded]
        concurrent_s = time.perf_counter() - started
        wrong = [n for n, status, body in predicted if status != 200 or body["predictions"][0] != alone[n]]
        labels_ok = all(body["predictions"][0]["prediction"] in (("Adelie", "Chinstrap", "Gentoo") if n % 2 == 0 else ("male", "female"))
                        for n, status, body in predicted if status == 200)
        accepted = {user: body.get("run_id") for user, status, body in uploaded if status == 202}
        finished = {}
        deadline = time.time() + 900
        while time.time() < deadline and len(finished) < len(accepted):
            for user, run_id in accepted.items():
                if user not in finished:
                    body = clients[user].get(f"/runs/{run_id}").json()
                    if body["status"] in ("success", "failed"):
                        finished[user] = body
            time.sleep(1)
        owners_ok = all(finished.get(u, {}).get("user") == u and finished[u].get("file") == f"{u}-penguins.csv" for u in accepted)
        lists_ok = all({r["run_id"] for r in clients[u].get("/runs", params={"file": "-penguins.csv"}).json()["runs"]} == {accepted[u]} for u in accepted)
        crossed = [u for u in accepted if clients["bob" if u != "bob" else "ana"].get(f"/runs/{accepted[u]}").status_code != 404]
        out["concurrent"] = {
            "predicts": 50, "predicts_answered_200": sum(status == 200 for _, status, _ in predicted), "predicts_differing_from_alone": len(wrong),
            "predict_labels_from_own_model": labels_ok, "uploads": len(users), "uploads_accepted": len(accepted),
            "wall_s_for_all_requests": round(concurrent_s, 2),
            "uploads_succeeded": sum(b["status"] == "success" for b in finished.values()),
            "each_run_owned_and_named_by_its_uploader": owners_ok, "each_user_lists_only_their_run": lists_ok,
            "runs_visible_to_another_user": len(crossed),
        }
        out["nothing_lost_or_mixed"] = (not wrong and labels_ok and len(accepted) == len(users) and owners_ok and lists_ok and not crossed
                                        and out["concurrent"]["uploads_succeeded"] == len(users))
        out["machine_load_1min_after"] = os.getloadavg()[0]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
