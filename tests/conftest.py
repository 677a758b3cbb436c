"""Shared fixtures: every test gets its own AUTOMODEL_HOME; real data comes from PyPI packages."""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
from contextlib import redirect_stderr, redirect_stdout
from http.server import ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


def with_lake_indexed(home: Path) -> Path:
    """Give ``home`` the repo lake's catalog and search index as `automodel index` leaves them (lake_data.shared_catalog:
    built once per test process). The first command in the home then finds the catalog current, records the lake in the instance and
    profiles nothing, instead of profiling and embedding every table again (seconds each time)."""
    from lake_data import shared_catalog

    from automodel.lake.search_index import index_dir

    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    (home / "_INDEX_DB").mkdir(exist_ok=True, mode=0o700)
    catalog = home / "_INDEX_DB" / "catalog.duckdb"
    shutil.copyfile(shared_catalog(), catalog)
    shutil.copytree(index_dir(shared_catalog()), index_dir(catalog))  # the search index beside the DuckDB file
    return home


@pytest.fixture
def home(tmp_path, monkeypatch, request) -> Path:
    """A fresh AUTOMODEL_HOME with the repo's lake and a small search budget.

    Tests marked ``lake_indexed`` (their runs enrich from the lake, but building its index is not what they check) get
    the lake already indexed in it (with_lake_indexed)."""
    home = tmp_path / "home"
    monkeypatch.setenv("AUTOMODEL_HOME", str(home))
    monkeypatch.setenv("AUTOMODEL_LAKE", str(REPO / "datasets"))
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "20")
    monkeypatch.delenv("AUTOMODEL_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    if request.node.get_closest_marker("lake_indexed"):
        with_lake_indexed(home)
    return home


@pytest.fixture(scope="session")
def penguins() -> pd.DataFrame:
    import palmerpenguins

    return palmerpenguins.load_penguins()


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    @property
    def json(self) -> dict:
        return json.loads(self.out.strip().splitlines()[-1])


def run_cli(*args: str) -> CliResult:
    """Call the command line in-process, capturing what it prints."""
    from automodel_assets.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return CliResult(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    return run_cli


class S3Server:
    """moto's S3 server on 127.0.0.1 in this process; stopping and starting it again keeps its buckets and objects."""

    def __init__(self, port: int):
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self._server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    """A real S3-compatible server on loopback; boto3 reaches it through AWS_ENDPOINT_URL and dummy credentials."""
    server = S3Server(free_port())
    for name, value in {"AWS_ENDPOINT_URL": server.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(name, value)
    server.start()
    yield server
    server.stop()
    server.start()  # moto keeps its state per process: reset it so the next test starts empty
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{server.endpoint}/moto-api/reset", method="POST"), timeout=10).read()
    server.stop()


class LoopbackServer:
    """A socketserver on 127.0.0.1 (a free port) served from a thread, as a context manager."""

    def __init__(self, handler, server_class=ThreadingHTTPServer):
        self.server = server_class(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def pytest_collection_modifyitems(config, items):
    """Files holding `slow` tests first: with `-n 2 --dist loadfile` (make test) the long real-process tests then start
    early on both workers instead of ending the run one after another."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def pytest_configure(config):
    """Keep that order: pytest-xdist otherwise hands files out by their number of tests, most first, which put the few-test
    slow files (one daemon test, three recovery tests) at the very end of `make test`."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
