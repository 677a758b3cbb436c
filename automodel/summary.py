"""Template summaries: deterministic plain English with the run's real numbers, caveats and recommendations."""

from __future__ import annotations

from automodel.safety import redact_pii


def _fmt(value) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def summary_facts(result, rows: int, columns: int, enrichment: dict | None, cleaning: dict | None, importance: list[dict] | None) -> dict:
    """The facts a summary may state; an LLM summary is checked against exactly these."""
    return {
        "analyzer": result["analyzer"], "task": result["task"], "target": result.get("target"), "rows": rows, "columns": columns,
        "metrics": result.get("metrics", {}), "model": result.get("model_info", {}).get("model"), "trusted": result.get("trusted", True),
        "notes": result.get("notes", []), "enrichment": enrichment or {}, "cleaning": cleaning or {},
        "top_features": [f["feature"] for f in (importance or [])[:3]], "excluded": result.get("excluded_columns", {}),
        "recommendations": result.get("details", {}).get("recommendations", []),
    }


def template_summary(facts: dict) -> str:
    task, metrics = facts["task"], facts["metrics"]
    lines = [f"automodel analysed {facts['rows']:,} rows and {facts['columns']} columns with the {facts['analyzer']}."]
    if task == "regression":
        lines.append(
            f"The best model ({facts['model']}) predicts {facts['target']!r} with R² {_fmt(metrics.get('r2'))}, "
            f"RMSE {_fmt(metrics.get('rmse'))}, MAE {_fmt(metrics.get('mae'))} and MAPE {_fmt(metrics.get('mape'))} on held-out rows."
        )
    elif task == "classification":
        auc = f", ROC-AUC {_fmt(metrics['roc_auc'])}" if "roc_auc" in metrics else ""
        lines.append(
            f"The best model ({facts['model']}) predicts {facts['target']!r} with accuracy {_fmt(metrics.get('accuracy'))}, "
            f"macro F1 {_fmt(metrics.get('f1'))}{auc} on held-out rows."
        )
    elif task == "clustering":
        lines.append(f"The rows fall into {int(metrics.get('clusters', 0))} clusters (silhouette {_fmt(metrics.get('silhouette'))}).")
    elif task == "anomaly":
        lines.append(f"{int(metrics.get('anomalies', 0))} rows ({metrics.get('anomaly_rate', 0):.1%}) look anomalous.")
    else:
        lines.append(f"No predictive model was trained; {_fmt(metrics.get('missing_cells_pct', 0.0))}% of cells are empty.")
    if facts["top_features"]:
        lines.append("The most influential features are " + ", ".join(repr(f) for f in facts["top_features"]) + ".")
    enrichment = facts["enrichment"]
    if enrichment.get("kept"):
        lines.append(f"The data was enriched with the lake table {enrichment['table']!r} ({enrichment['coverage']:.0%} of rows matched).")
    if not facts["trusted"]:
        lines.append("Caveat: the model is below the quality thresholds (" + "; ".join(facts["notes"][-2:]) + "), so treat its predictions with care.")
    if facts["excluded"]:
        lines.append(f"{len(facts['excluded'])} column(s) were left out of the model (identifiers, free text or leakage).")
    lines.append("Recommendations: " + " ".join(recommendations(facts)))
    return redact_pii(" ".join(lines))


def recommendations(facts: dict) -> list[str]:
    out = list(facts.get("recommendations", []))
    task, metrics = facts["task"], facts["metrics"]
    if task == "regression" and metrics.get("r2", 1) < 0.5:
        out.append("Add features that drive the target, or check the target for data-entry errors.")
    if task == "classification" and metrics.get("f1", 1) < 0.7:
        out.append("Collect more examples of the rarer classes or add more informative features.")
    if task in ("regression", "classification") and facts["trusted"]:
        out.append("Use `automodel score NEW_FILE --model RUN_ID` to score new rows with this model.")
    if not out:
        out.append("Review the dashboard for patterns worth acting on.")
    return out
