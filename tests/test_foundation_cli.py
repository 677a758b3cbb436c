"""End to end through the command line on real data (Palmer penguins)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from conftest import REPO

pytestmark = pytest.mark.lake_indexed  # runs enrich from the lake; its index is built once per process, not in every home


def _sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_run_classification_writes_every_output(home, cli, tmp_path, penguins):
    source = tmp_path / "penguins.csv"
    penguins.to_csv(source, index=False)
    before = _sha(source)
    result = cli("run", source, "--target", "species", "--user", "alice", "--json")
    assert result.code == 0, result.err
    out = result.json
    assert out["status"] == "success" and out["error"] is None
    assert out["analyzer"] == "ClassificationAnalyzer" and out["task"] == "classification"
    assert out["metrics"]["accuracy"] > 0.9
    predictions = pd.read_csv(out["predictions_path"])
    assert len(predictions) == len(penguins)
    assert {"prediction", "proba_Adelie", "proba_Chinstrap", "proba_Gentoo"} <= set(predictions.columns)
    assert (predictions["prediction"] == penguins["species"]).mean() > 0.9  # row-aligned with the input
    assert Path(out["model_path"]).exists() and Path(out["model_path"]).parent.name == out["run_id"]
    assert Path(out["model_path"]).is_relative_to(home)
    html = Path(out["dashboard_path"]).read_text()
    assert "confusion_matrix" in html and "<script" in html
    assert "species" in out["summary"] and f"{out['metrics']['accuracy']:.3f}" in out["summary"]
    assert _sha(source) == before, "the user's file must not be altered"
    assert list((home / "users" / "alice").glob("*/penguins.csv")), "the upload is staged under users/<user>/"


def test_score_reuses_model_on_held_back_rows(home, cli, tmp_path, penguins):
    shuffled = penguins.sample(frac=1.0, random_state=7).reset_index(drop=True)
    train, held = shuffled.iloc[:260], shuffled.iloc[260:]
    train.to_csv(tmp_path / "train.csv", index=False)
    held.drop(columns=["body_mass_g"]).iloc[:, ::-1].to_csv(tmp_path / "new.csv", index=False)  # reordered, no target
    trained = cli("run", tmp_path / "train.csv", "--target", "body_mass_g", "--json")
    assert trained.code == 0, trained.err
    model_path = trained.json["model_path"]
    digest = _sha(model_path)
    scored = cli("score", tmp_path / "new.csv", "--model", trained.json["run_id"], "--json")
    assert scored.code == 0, scored.err
    out = scored.json
    assert out["run_id"] != trained.json["run_id"]
    assert out["model_path"] == model_path and _sha(model_path) == digest
    predictions = pd.read_csv(out["predictions_path"])
    assert len(predictions) == len(held)
    truth = held["body_mass_g"].to_numpy()
    known = ~pd.isna(truth)
    error = abs(predictions["prediction"].to_numpy()[known] - truth[known]).mean()
    assert error < 400, f"mean absolute error {error:.0f} g is too high for a reused model"
    assert not (home / "models" / out["run_id"]).exists(), "scoring must not train or save a model"


def test_rerun_from_predictions_does_not_retrain(home, cli, tmp_path, penguins, monkeypatch):
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "3")  # what is checked is what the rerun rebuilds, not the model
    penguins.to_csv(tmp_path / "p.csv", index=False)
    first = cli("run", tmp_path / "p.csv", "--target", "species", "--json").json
    model_path = Path(first["model_path"])
    digest, mtime = _sha(model_path), model_path.stat().st_mtime_ns
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    model_events = len(instance.fetch_materializations(dg.AssetKey("model"), limit=100).records)
    prediction_events = len(instance.fetch_materializations(dg.AssetKey("predictions"), limit=100).records)
    again = cli("rerun", first["run_id"], "--from", "predictions", "--json")
    assert again.code == 0, again.err
    assert again.json["status"] == "success"
    assert _sha(model_path) == digest and model_path.stat().st_mtime_ns == mtime
    assert len(instance.fetch_materializations(dg.AssetKey("model"), limit=100).records) == model_events
    assert len(instance.fetch_materializations(dg.AssetKey("predictions"), limit=100).records) == prediction_events + 1
    assert pd.read_csv(again.json["predictions_path"]).equals(pd.read_csv(first["predictions_path"]))


def test_sessions_lists_newest_first(home, cli, tmp_path, penguins, monkeypatch):
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "3")
    penguins.iloc[:200].to_csv(tmp_path / "a.csv", index=False)
    penguins.iloc[100:].to_csv(tmp_path / "b.csv", index=False)
    ids = [cli("run", tmp_path / name, "--target", "species", "--json").json["run_id"] for name in ("a.csv", "b.csv")]
    listed = cli("sessions", "--limit", "5", "--json").json["sessions"]
    assert [row["run_id"] for row in listed] == ids[::-1]
    assert listed[0]["status"] == "success" and listed[0]["analyzer"] == "ClassificationAnalyzer"
    assert len(cli("sessions", "--limit", "1", "--json").json["sessions"]) == 1


@pytest.mark.parametrize("case", ["missing", "empty", "binary", "unknown_target", "header_only", "bad_format"])
def test_bad_input_gives_one_sentence_and_leaves_nothing(home, cli, tmp_path, penguins, case):
    path = tmp_path / "input.csv"
    target = []
    if case == "missing":
        path = tmp_path / "nope.csv"
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "binary":
        path.write_bytes(bytes(range(256)) * 40)
    elif case == "unknown_target":
        penguins.to_csv(path, index=False)
        target = ["--target", "wingspan"]
    elif case == "header_only":
        path.write_text("a,b,c\n")
    elif case == "bad_format":
        path = tmp_path / "input.docx"
        path.write_bytes(b"PK\x03\x04 not a table")
    original = path.read_bytes() if path.exists() else None
    result = cli("run", path, *target, "--json")
    assert result.code != 0
    message = result.err.strip()
    assert message.startswith("error: ") and "\n" not in message and "Traceback" not in message
    assert len(message) < 300
    if original is not None:
        assert path.read_bytes() == original
    for folder in ("models", "output_files", "dashboards"):
        assert not any((home / folder).glob("*")) if (home / folder).exists() else True
    stored = list((home / "assets").rglob("*.*")) if (home / "assets").exists() else []
    assert [p for p in stored if "semantic_index" not in p.parts] == []


def test_cli_usage_errors_are_one_sentence(home, cli):
    for args in ([], ["run"], ["sessions", "--limit", "x"], ["rerun", "no-such-run"], ["rerun", "x", "--from", "nothing"]):
        result = cli(*args)
        assert result.code == 2, args
        assert result.err.startswith("error: ") and result.err.count("\n") == 1, (args, result.err)


def test_definitions_validate():
    env = {**os.environ, "AUTOMODEL_HOME": str(REPO / "local_data")}
    proc = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m", "automodel_assets.definitions"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
