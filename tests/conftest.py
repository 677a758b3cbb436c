"""Shared fixtures: every test gets its own AUTOMODEL_HOME; real data comes from PyPI packages."""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh AUTOMODEL_HOME with the repo's lake and a small search budget."""
    home = tmp_path / "home"
    monkeypatch.setenv("AUTOMODEL_HOME", str(home))
    monkeypatch.setenv("AUTOMODEL_LAKE", str(REPO / "datasets"))
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "20")
    monkeypatch.delenv("AUTOMODEL_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
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
