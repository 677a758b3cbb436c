"""One full run on the production executor: Celery workers with a Redis broker, both started here on 127.0.0.1.

Starts redis-server (Debian's redis-server package) and one `dagster-celery worker` with deploy/celery.yaml,
then times `automodel run datasets/samples/penguins.csv` with AUTOMODEL_EXECUTOR=celery against the same
AUTOMODEL_HOME (SQLite instance: the worker and the command share it on one machine), and the same run with
the default in-process executor for comparison.

Run: ``.venv/bin/python bench/celery_run.py``
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def _wait_for_worker(log: Path, timeout_s: float = 180) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if log.exists() and " ready." in log.read_text():
            return
        time.sleep(0.5)
    raise RuntimeError(f"the Celery worker did not become ready; see {log}: {log.read_text()[-500:] if log.exists() else ''}")


def _timed_run(env: dict, label: str) -> dict:
    start = time.perf_counter()
    done = subprocess.run([str(BIN / "automodel"), "run", str(REPO / "datasets" / "samples" / "penguins.csv"), "--target", "species", "--json"],
                          env=env, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    out = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
    return {"executor": label, "exit": done.returncode, "status": out.get("status"), "error": out.get("error") or done.stderr.strip()[-300:] or None,
            "accuracy": (out.get("metrics") or {}).get("accuracy"), "seconds": round(seconds, 1)}


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    redis = shutil.which("redis-server")
    if not redis:
        print("redis-server is not installed (make system-deps installs Debian's redis-server); nothing to measure.")
        return 1
    work = Path(tempfile.mkdtemp(prefix="automodel-bench-celery-"))
    port = _free_port()
    env = {**os.environ, "AUTOMODEL_HOME": str(work / "home"), "DAGSTER_HOME": str(work / "home" / "dagster"),
           "AUTOMODEL_LAKE": str(REPO / "datasets"), "AUTOMODEL_SEARCH_BUDGET_S": os.environ.get("AUTOMODEL_SEARCH_BUDGET_S", "10"),
           "AUTOMODEL_CELERY_BROKER": f"redis://127.0.0.1:{port}/0", "AUTOMODEL_CELERY_BACKEND": f"redis://127.0.0.1:{port}/1",
           "HF_HUB_OFFLINE": "1", "DAGSTER_DISABLE_TELEMETRY": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # dagster-celery starts the `celery` command from PATH
    (work / "home" / "dagster").mkdir(parents=True)
    shutil.copyfile(REPO / "dagster.yaml", work / "home" / "dagster" / "dagster.yaml")
    server = subprocess.Popen([redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(work)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    worker = None
    try:
        _wait_for_port(port)
        subprocess.run([str(BIN / "automodel"), "index"], env=env, check=True, capture_output=True, timeout=600)  # not part of any run's time
        results = [_timed_run({**env, "AUTOMODEL_EXECUTOR": "in_process"}, "in_process")]
        worker_start = time.perf_counter()
        worker = subprocess.Popen([str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(REPO / "deploy" / "celery.yaml")],
                                  env={**env, "AUTOMODEL_EXECUTOR": "celery"}, stdout=open(work / "worker.log", "w"), stderr=subprocess.STDOUT,
                                  start_new_session=True, cwd=str(REPO))
        celery_env = {**env, "AUTOMODEL_EXECUTOR": "celery"}
        _wait_for_worker(work / "worker.log")
        worker_ready_s = time.perf_counter() - worker_start
        results.append(_timed_run(celery_env, "celery (first run on the worker)"))
        results.append(_timed_run(celery_env, "celery (warm worker)"))
        report = {"redis_port": port, "worker_ready_s": round(worker_ready_s, 1), "runs": results}
        print(json.dumps(report, indent=2))
        if any(r["status"] != "success" for r in results):
            print((work / "worker.log").read_text()[-3000:])
            return 1
        return 0
    finally:
        for process in (worker, server):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
