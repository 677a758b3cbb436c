"""A real `automodel serve` on a free loopback port, with the Dagster daemon it starts beside itself, for the API tests.

The home has the repo lake indexed (conftest.with_lake_indexed) and a short search budget, as the other end-to-end
tests do. Tokens are made with the real `automodel token create`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from conftest import REPO, free_port, with_lake_indexed

BIN = Path(sys.executable).parent


@dataclass
class Served:
    base: str
    home: Path
    env: dict
    process: subprocess.Popen
    log: Path

    def token(self, user: str, admin: bool = False) -> str:
        args = [str(BIN / "automodel"), "token", "create", "--user", user] + (["--admin"] if admin else [])
        done = subprocess.run(args, env=self.env, cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
        return done.stdout.strip().splitlines()[-1]

    def client(self, token: str | None = None, timeout: float = 120.0) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=timeout)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def serve(work: Path, extra_env: dict | None = None):
    home = with_lake_indexed(work / "home")
    env = {**os.environ, "AUTOMODEL_HOME": str(home), "AUTOMODEL_LAKE": str(REPO / "datasets"), "AUTOMODEL_SEARCH_BUDGET_S": "3",
           "HF_HUB_OFFLINE": "1", "DAGSTER_DISABLE_TELEMETRY": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           **(extra_env or {})}
    for name in ("DAGSTER_HOME", "AUTOMODEL_WEBHOOK_URL", "AUTOMODEL_ASSET_STORE", "AUTOMODEL_ASSET_MODULES", "AUTOMODEL_USER"):
        env.pop(name, None)
    port = free_port()
    log = work / "serve.log"
    process = subprocess.Popen([str(BIN / "automodel"), "serve", "--port", str(port)], env=env, cwd=REPO, stdout=open(log, "ab"),  # noqa: SIM115
                               stderr=subprocess.STDOUT, start_new_session=True)
    served = Served(f"http://127.0.0.1:{port}", home, env, process, log)

    def healthy():
        if process.poll() is not None:
            raise AssertionError("automodel serve exited: " + served.log_tail())
        try:
            return httpx.get(f"{served.base}/health", timeout=10).json().get("status") == "ok"
        except (httpx.HTTPError, ValueError):
            return False

    try:
        wait_for(healthy, 300, "automodel serve and its daemon to be healthy")
        yield served
    finally:
        daemon_pids = [int(p) for p in re.findall(r"daemon pid (\d+)", served.log_tail(100_000))]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for pid in daemon_pids:  # serve stops its daemon; should it have died first, the daemon goes too
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
