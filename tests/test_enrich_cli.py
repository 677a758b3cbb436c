"""Enrichment through the command line and the asset graph: `automodel run --json` reports the join,
`automodel score` applies the same enrichment to new rows, `automodel index` describes the catalog."""

from __future__ import annotations

import pandas as pd
import pytest
from lake_data import us_arrests

pytestmark = pytest.mark.lake_indexed  # the home starts with the lake's catalog as this process already built it


def test_run_reports_and_keeps_the_enrichment_and_score_reuses_it(home, cli, tmp_path, monkeypatch):
    # Explanations are another stage's concern (and slow); this test is about enrichment.
    monkeypatch.setenv("ENABLE_SHAP_EXPLANATIONS", "0")
    arrests = us_arrests()
    train = tmp_path / "arrests.csv"
    arrests.iloc[:40].to_csv(train, index=False)
    original = train.read_bytes()
    result = cli("run", train, "--target", "Murder", "--json")
    assert result.code == 0, result.err
    out = result.json
    assert out["status"] == "succeeded" or out["error"] is None
    enrichment = out["enrichment"]
    assert set(enrichment) == {"table", "keys", "strategy", "coverage", "kept", "lift", "tables", "candidates"}
    assert enrichment["candidates"][0]["table"] == "state_crime" and enrichment["candidates"][0]["containment"] == 1.0
    assert {c["table"] for c in enrichment["tables"]} <= {c["table"] for c in enrichment["candidates"] if "lift" in c}
    assert enrichment["keys"][0] == "State" and enrichment["coverage"] == 1.0 and isinstance(enrichment["lift"], float)
    assert enrichment["kept"] == (enrichment["lift"] >= 0.005) == bool(enrichment["tables"])
    for kept in enrichment["tables"]:
        assert set(kept) == {"table", "keys", "strategy", "coverage", "kept", "lift", "grain", "aggregation"} and kept["lift"] >= 0.005
    assert train.read_bytes() == original
    predictions = pd.read_csv(out["predictions_path"])
    assert len(predictions) == 40

    new_rows = tmp_path / "new_states.csv"
    arrests.iloc[40:].drop(columns=["Murder"]).to_csv(new_rows, index=False)
    scored = cli("score", new_rows, "--model", out["run_id"], "--json")
    assert scored.code == 0, scored.err
    reused = scored.json["enrichment"]
    if enrichment["kept"]:
        assert reused["table"] == enrichment["table"] and reused["strategy"] == "reused from the model's run" and reused["coverage"] == 1.0
        assert [t["table"] for t in reused["tables"]] == [t["table"] for t in enrichment["tables"]]
    else:  # the model saw no lake columns, so scoring adds none
        assert reused["table"] is None and not reused["kept"]
    assert len(pd.read_csv(scored.json["predictions_path"])) == 10


def test_index_command_describes_the_catalog(home, cli):
    result = cli("index", "--json")
    assert result.code == 0, result.err
    out = result.json
    assert out["tables"] == 7 and out["profiled"] == [] and len(out["unchanged"]) == 7
    assert out["keys_by_kind"]["state"] >= 3 and out["keys_by_kind"]["generic+hour"] == 1 and out["keys_by_kind"]["generic"] >= 3
    assert out["columns"] > 40
    text = cli("index")
    assert text.code == 0 and "7 lake tables" in text.out and "columns embedded" in text.out
