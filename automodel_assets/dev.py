"""`make dev`: the Dagster UI and daemon (``dagster dev``) on the home under AUTOMODEL_HOME, plus the dashboards folder
served on loopback so the dashboard links in the UI open, and the HTTP API with its web page (``automodel serve``,
http://127.0.0.1:8000/ by default; its runs go to the queue of the daemon ``dagster dev`` runs).

DAGSTER_HOME is ``$AUTOMODEL_HOME/dagster`` (the same home the command line uses), whose dagster.yaml links to the
project's. Arguments are passed on to ``dagster dev`` (``--port 3000`` by default); ``--dashboard-port`` and ``--api-port`` are ours.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from automodel_assets.links import served_address
from automodel_assets.home import ensure_dagster_home
from resources.settings import PROJECT_ROOT, AutomodelSettings


class DashboardHandler(SimpleHTTPRequestHandler):
    """Files of the dashboards folder, read-only; no listing of other folders is possible (the handler's root is it)."""

    def log_message(self, format, *args):
        pass


def serve_dashboards(folder: Path, host: str, port: int) -> ThreadingHTTPServer:
    folder.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((host, port), partial(DashboardHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True, name="dashboards").start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make dev", description=__doc__)
    parser.add_argument("--dashboard-port", type=int, help="serve the dashboards folder on this loopback port "
                                                           "(default: the port of AUTOMODEL_DASHBOARD_URL, else 3001)")
    parser.add_argument("--api-port", type=int, default=8000, help="serve the HTTP API and web page on this loopback port (default 8000; 0: not at all)")
    ours, passed_on = parser.parse_known_args(argv)
    # Started in the background by a shell, we (and so dagster dev) would ignore interrupts; take them back so that
    # an interrupt or a SIGTERM stops the UI, the daemon and the code server in order.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    settings = AutomodelSettings.from_env()
    os.environ["AUTOMODEL_HOME"] = str(settings.layout.home)  # the code server and daemon see the same absolute home
    os.environ["DAGSTER_HOME"] = str(ensure_dagster_home(settings.layout))
    address = served_address(settings)
    server = None
    if address or ours.dashboard_port:
        host, port = address or ("127.0.0.1", 0)
        server = serve_dashboards(settings.layout.home / "dashboards", host, ours.dashboard_port or port)
        print(f"dashboards: http://{host}:{server.server_address[1]}/", flush=True)
    args = ["dagster", "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "--host", "127.0.0.1", *passed_on]
    child = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), *args[1:]], cwd=PROJECT_ROOT)
    api = None
    if ours.api_port:  # the daemon is dagster dev's: the service only submits to its queue
        api = subprocess.Popen([str(Path(sys.executable).parent / "automodel"), "serve", "--host", "127.0.0.1", "--port", str(ours.api_port),
                                "--no-daemon"], cwd=PROJECT_ROOT)

    def stop(signum, frame):
        child.send_signal(signal.SIGINT)  # dagster dev shuts its webserver and daemon down on an interrupt
        if api is not None and api.poll() is None:
            api.send_signal(signal.SIGINT)

    signal.signal(signal.SIGTERM, stop)
    try:
        return child.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the child too; wait for its orderly shutdown
        return child.wait()
    finally:
        if api is not None:
            if api.poll() is None:
                api.send_signal(signal.SIGINT)
            try:
                api.wait(timeout=30)
            except subprocess.TimeoutExpired:
                api.kill()
        if server is not None:
            server.shutdown()


if __name__ == "__main__":
    sys.exit(main())
