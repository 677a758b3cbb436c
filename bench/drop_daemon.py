"""Files dropped into S3, picked up by the real dagster-daemon: sensor ticks, the run queue (dagster.yaml's limits)
and the default run launcher (a process per run, in-process executor), until every run succeeded.

Starts moto's S3 server on 127.0.0.1, a SQLite DAGSTER_HOME with the project's dagster.yaml, turns
s3_drop_sensor on and runs `dagster-daemon run`; then drops ``--files`` penguin files at once and polls the
instance. Rerun: ``.venv/bin/python bench/drop_daemon.py --files 20``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--search-budget", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from drop import _free_port, _penguin_files
    from moto.server import ThreadedMotoServer

    work = Path(tempfile.mkdtemp(prefix="automodel-bench-daemon-"))
    port = _free_port()
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1", "AUTOMODEL_HOME": str(work / "home"), "DAGSTER_HOME": str(work / "home" / "dagster"),
           "AUTOMODEL_LAKE": str(REPO / "datasets"), "AUTOMODEL_SEARCH_BUDGET_S": str(args.search_budget), "AUTOMODEL_EXECUTOR": "in_process",
           "AUTOMODEL_S3_BUCKET": "drops", "AUTOMODEL_S3_PREFIX": "users/", "MAX_REQUESTS_FREE": "100000",
           "HF_HUB_OFFLINE": "1", "DAGSTER_DISABLE_TELEMETRY": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    os.environ.update({k: v for k, v in env.items() if k != "PATH"})
    (work / "home" / "dagster").mkdir(parents=True)
    shutil.copyfile(REPO / "dagster.yaml", work / "home" / "dagster" / "dagster.yaml")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    daemon = None
    try:
        import boto3
        import dagster as dg

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="drops")
        subprocess.run([str(BIN / "automodel"), "index"], env=env, check=True, capture_output=True, timeout=600)
        subprocess.run([str(BIN / "dagster"), "sensor", "start", "s3_drop_sensor", "-w", str(REPO / "workspace.yaml")], env=env, check=True,
                       capture_output=True, timeout=600, cwd=str(REPO))
        daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")], env=env, cwd=str(REPO),
                                  stdout=open(work / "daemon.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
        time.sleep(15)  # the daemon loads the code location before its first tick
        data = _penguin_files(args.files)
        dropped = time.perf_counter()
        for i in range(args.files):
            client.put_object(Bucket="drops", Key=f"users/user{i % 5}/drop_{i:03d}.csv", Body=data[i])
        instance = dg.DagsterInstance.get()
        first_run_s, statuses = None, {}
        while time.perf_counter() - dropped < args.timeout:
            runs = instance.get_runs(filters=dg.RunsFilter(job_name="automodel_run"))
            statuses = {}
            for run in runs:
                statuses[run.status.value] = statuses.get(run.status.value, 0) + 1
            if runs and first_run_s is None:
                first_run_s = time.perf_counter() - dropped
            finished = statuses.get("SUCCESS", 0) + statuses.get("FAILURE", 0) + statuses.get("CANCELED", 0)
            if finished >= args.files:
                break
            time.sleep(2)
        elapsed = time.perf_counter() - dropped
        partitions = len(instance.get_dynamic_partitions("run_id"))
        report = {"files": args.files, "search_budget_s": args.search_budget, "first_run_created_s": round(first_run_s or -1, 1),
                  "drop_to_all_finished_s": round(elapsed, 1), "run_statuses": statuses, "partitions": partitions,
                  "runs_per_minute": round(statuses.get("SUCCESS", 0) / elapsed * 60, 2)}
        print(json.dumps(report, indent=2))
        return 0 if statuses.get("SUCCESS", 0) == args.files else 1
    finally:
        if daemon is not None and daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
