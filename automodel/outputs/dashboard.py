"""A self-contained plotly HTML report per run (plotly.js inlined once, so it opens with no network and
prints to PDF from the browser).

The report reads as a page: a headline (task, target, the metric with the basis it was measured on,
trusted or not and why), a table of contents, then sections for the evaluation, the explanations,
the leaderboard, the data, the enrichment, the predictions and the actions. Every number in it comes
from the run's facts (automodel.outputs.facts), the same object the summary and the run JSON use.

This module writes the sections and the report; the charts are ``automodel.outputs.report_charts`` and the
page's look and assembly ``automodel.outputs.report_page``.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from automodel.atomic import write_text_atomic
from automodel.outputs.facts import headline_metric_text, metric_label, metric_text, time_baseline_sentence, validation_sentence
from automodel.outputs.report_charts import EVALUATION_CHARTS
from automodel.outputs.report_page import Section, figure_html, html_table, page_html

PREVIEW_ROWS = 10


def key_figures(task: str, metrics: dict, rows: int, charts: list[str] | None = None) -> dict:
    """The numbers shown at the top of the dashboard and in the asset's UI metadata."""
    keep = {"regression": ("r2", "rmse", "mae", "mape"), "classification": ("accuracy", "f1", "roc_auc"),
            "clustering": ("clusters", "silhouette"), "anomaly": ("anomalies", "anomaly_rate")}.get(task, ("missing_cells_pct",))
    figures = {"rows": rows}
    for key in keep:
        value = metrics.get(key)
        if isinstance(value, (int, float)) and value == value:
            figures[key] = round(float(value), 4)
    return figures


def prediction_overview(task: str, predictions: pd.DataFrame) -> dict:
    """What the predictions say at a glance: rows per predicted class or cluster, flagged rows, or the spread of values."""
    values = predictions["prediction"] if "prediction" in predictions else pd.Series(dtype=float)
    if values.dropna().empty:
        return {"rows": int(len(predictions)), "predicted": 0}
    if task in ("classification", "clustering"):
        return {f"predicted {k}": int(v) for k, v in values.astype(str).value_counts().items()}
    if task == "anomaly":
        return {"rows": int(len(values)), "flagged anomalous": int((values == 1).sum())}
    numbers = pd.to_numeric(values, errors="coerce")
    return {"mean": round(float(numbers.mean()), 4), "min": round(float(numbers.min()), 4), "max": round(float(numbers.max()), 4)}


def _metric_spans(facts: dict) -> str:
    spans = []
    for name, value in facts["metrics"].items():
        spans.append(f"<tr><th>{html.escape(metric_label(name))}</th><td class='num'><span class='metric' data-metric='{html.escape(name)}' "
                     f"data-value='{value!r}'>{html.escape(metric_text(value))}</span></td></tr>")
    return "<table id='metrics'>" + "".join(spans) + "</table>" if spans else ""


def headline_html(facts: dict, title: str, summary_text: str) -> str:
    rows = [("task", facts["task"]), ("target", facts.get("target") or "none"), ("analyzer", facts["analyzer"]),
            ("model", facts.get("model") or "none"), ("rows", f"{facts['rows']:,}"), ("columns", f"{facts['columns']:,}")]
    headline = headline_metric_text(facts)
    if headline:
        rows.append(("headline metric", headline))
    if facts.get("metric_interval"):
        rows.append(("metric interval", facts["metric_interval"]["text"]))
    if validation_sentence(facts):
        rows.append(("validation", validation_sentence(facts)))
    if facts.get("baseline"):
        rows.append(("against a baseline", facts["baseline"]["text"]))
    if time_baseline_sentence(facts):
        rows.append(("against time-order baselines", time_baseline_sentence(facts)))
    table = "<table id='headline'>" + "".join(f"<tr><th>{html.escape(k)}</th><td data-field='{html.escape(k)}'>{html.escape(str(v))}</td></tr>"
                                              for k, v in rows) + "</table>"
    verdict = ""
    if facts.get("no_model_reason"):
        verdict = f"<div class='verdict untrusted' id='no-model'>No predictive model was trained: {html.escape(facts['no_model_reason'])}.</div>"
    elif facts["task"] in ("regression", "classification"):
        kind = "trusted" if facts["trusted"] else "untrusted"
        verdict = f"<div class='verdict {kind}' id='trust' data-trusted='{str(facts['trusted']).lower()}'>{html.escape(facts['trust_reason'])}</div>"
    caveats = "".join(f"<li>{html.escape(c)}</li>" for c in facts.get("caveats") or [])
    caveats = f"<h3>Caveats</h3><ul id='caveats'>{caveats}</ul>" if caveats else ""
    basis = facts.get("holdout_basis")
    metrics_caption = f"<p class='note' id='basis'>Metrics measured on {html.escape(basis)}.</p>" if basis and facts["metrics"] else ""
    return (f"<h1>{html.escape(title)}</h1>{table}{verdict}{_metric_spans(facts)}{metrics_caption}"
            f"<p id='summary'>{html.escape(summary_text)}</p>{caveats}")


def _validation_html(facts: dict) -> str:
    """How the run measured itself: the scheme and its reason, the headline's interval, the time-order baselines."""
    parts = [p for p in (validation_sentence(facts), (facts.get("metric_interval") or {}).get("text"), time_baseline_sentence(facts)) if p]
    baselines = facts.get("time_baselines") or []
    table = html_table([{"baseline": b["model"], metric_label(b["metric"]): b["score"], "rows": b["rows"]} for b in baselines],
                       table_id="time-baselines") if baselines else ""
    return ("<div id='validation'>" + "".join(f"<p class='note'>{html.escape(p)}</p>" for p in parts) + table + "</div>") if parts else ""


def _leaderboard_html(facts: dict) -> str:
    rows = facts.get("leaderboard") or []
    if not rows:
        return "<p class='note'>No candidate models were compared in this run.</p>"
    label = metric_label(facts.get("leaderboard_metric") or facts.get("metric") or "score")
    shown = [{"model": r["model"], f"held-out {label}": r.get("score"), "training rows": r.get("rows"), "seconds": r.get("seconds"),
              "error": r.get("error") or ""} for r in rows]
    chosen = facts.get("model")
    note = f"<p class='note'>Chosen: {html.escape(str(chosen))}. Scores are on the search's validation rows; each row is one candidate fit.</p>"
    return note + html_table(shown, table_id="leaderboard")


def _data_html(facts: dict) -> str:
    roles = facts.get("roles") or {}
    missing = facts.get("missing") or {}
    excluded = facts.get("excluded") or {}
    rows = [{"column": c, "role": r, "missing": int(missing.get(c, 0)), "used by the model": "no: " + excluded[c] if c in excluded
             else ("target" if c == facts.get("target") else "")} for c, r in roles.items()]
    changes = cleaning_rows(facts.get("cleaning") or {})
    return (f"<p>{facts['rows']:,} rows, {facts['columns']:,} columns.</p><h3>Columns and roles</h3>" + html_table(rows, table_id="roles")
            + "<h3>What cleaning changed</h3>" + (html_table(changes, table_id="cleaning") if changes else "<p class='note'>Nothing.</p>"))


def cleaning_rows(cleaning: dict) -> list[dict]:
    """What cleaning changed, one row per step and column (the cleaned_frame asset's report)."""
    rows = []
    for step, columns in (cleaning.get("steps") or {}).items():
        rows += [{"change": step.replace("_", " "), "column": column, "values changed": int(n)}
                 for column, n in sorted(columns.items(), key=lambda kv: -kv[1])]
    rows += [{"change": "column dropped", "column": column, "values changed": why} for column, why in (cleaning.get("dropped_columns") or {}).items()]
    rows += [{"change": f"read as {kind}", "column": column, "values changed": ""} for column, kind in (cleaning.get("converted") or {}).items()]
    for key, what in (("duplicate_rows", "duplicate rows kept but left out of training"), ("outlier_rows", "outlier rows marked (kept, and trained on)")):
        if cleaning.get(key):
            rows.append({"change": what, "column": "", "values changed": int(cleaning[key])})
    return rows


def _enrichment_html(facts: dict) -> str:
    enrichment = facts.get("enrichment") or {}
    candidates = enrichment.get("candidates") or []
    rows = [{"table": c.get("table"), "search score": c.get("score"), "tried": "yes" if c.get("tried") else "no", "coverage": c.get("coverage"),
             "lift": c.get("lift")} for c in candidates]
    if enrichment.get("kept"):
        metric = metric_label(enrichment.get("metric") or "")
        lift = enrichment.get("lift")
        lift_text = (f"; quick 3-fold {metric} {metric_text(enrichment.get('plain_score'))} without it, "
                     f"{metric_text(enrichment.get('enriched_score'))} with it (lift {metric_text(lift)})") if lift is not None else ""
        kept = (f"<p id='enrichment-kept' data-lift='{lift!r}'>Kept: <b>{html.escape(str(enrichment['table']))}</b>, joined on "
                f"{html.escape(' = '.join(enrichment.get('keys') or []))} ({html.escape(str(enrichment.get('strategy') or ''))}), "
                f"{enrichment['coverage']:.0%} of rows matched{html.escape(lift_text)}; added "
                f"{len(enrichment.get('added_columns') or [])} column(s).</p>")
        if len(enrichment.get("tables") or []) > 1:
            kept += "<h3>Kept tables</h3>" + html_table([{"table": t.get("table"), "key": " = ".join(t.get("keys") or []),
                                                          "how": t.get("strategy"), "coverage": t.get("coverage"), "lift": t.get("lift")}
                                                         for t in enrichment["tables"]], table_id="enrichment-tables")
    else:
        kept = f"<p id='enrichment-kept'>No lake table was kept: {html.escape(str(enrichment.get('reason') or 'enrichment did not run'))}.</p>"
    refused = enrichment.get("refused") or []
    if refused:
        kept += "<h3>Refused</h3>" + html_table(refused, table_id="enrichment-refused")
    return kept + ("<h3>Candidates</h3>" + html_table(rows, table_id="enrichment-candidates") if rows else "")


def _predictions_html(predictions: pd.DataFrame | None, predictions_link: str | None, frame: pd.DataFrame, target: str | None) -> str:
    if predictions is None or predictions.empty:
        return "<p class='note'>No predictions.</p>"
    preview = predictions.head(PREVIEW_ROWS).copy()
    if target and target in frame:
        preview.insert(0, f"{target} (actual)", frame[target].head(PREVIEW_ROWS).to_numpy())
    link = (f"<p>All {len(predictions):,} rows: <a id='predictions-link' href='{html.escape(predictions_link)}'>the predictions CSV</a>, "
            "row-aligned with the input.</p>") if predictions_link else ""
    rows = [{str(k): (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in preview.to_dict(orient="records")]
    return link + html_table(rows, table_id="predictions-preview")


def actions_html(actions: list[dict] | None) -> str:
    if not actions:
        return "<p class='note' id='actions-none'>No action recipe ran for this run.</p>"
    rows = [{"recipe": a.get("recipe"), "triggered": "yes" if a.get("triggered") else "no", "what happened": a.get("message"),
             "notified": ", ".join(a.get("notified") or []) or "none"} for a in actions]
    return html_table(rows, table_id="actions-table")


def write_report(path: Path, facts: dict, summary_text: str, figures: list[tuple[str, object]], *, title: str,
                 predictions: pd.DataFrame | None = None, frame: pd.DataFrame | None = None, actions: list[dict] | None = None) -> Path:
    """The run's report: headline, contents, then the sections that have something to show."""
    by_name = dict(figures)
    evaluation = [(n, f) for n, f in figures if n in EVALUATION_CHARTS or n.startswith("residuals_vs_feature_")]
    explaining = [(n, f) for n, f in figures if n == "feature_importance" or n.startswith("shap_")]
    data_charts = [(n, by_name[n]) for n in ("target_distribution", "missing_values", "correlation_heatmap") if n in by_name]
    analysis = [(n, by_name[n]) for n in ("clusters_2d", "anomaly_scores") if n in by_name]
    sections = []
    fallback = facts.get("fallback")
    if facts["task"] in ("regression", "classification"):
        if fallback:
            body = (f"<p id='baseline-reason'>The predictions come from a baseline model ({html.escape(str(facts['model']))}): "
                    f"{html.escape(fallback['reason'])}. Evaluation and explanation charts are left out: a constant prediction has no "
                    "errors worth plotting and no features that matter.</p>")
        elif evaluation:
            basis = facts.get("holdout_basis")
            body = f"<p class='note'>Drawn from {html.escape(basis)}: rows the model was not trained on.</p>" if basis else ""
            body += _validation_html(facts)
        else:
            body = "<p class='note'>The file has no target values to evaluate the predictions against.</p>"
        sections.append(Section("evaluation", "Evaluation", body, evaluation))
        if explaining:
            method = facts.get("importance_method") or ""
            sections.append(Section("explanations", "Explanations",
                                    f"<p class='note'>Computed on a sample of rows ({html.escape(str(method))}).</p>", explaining))
        sections.append(Section("leaderboard", "Leaderboard", _leaderboard_html(facts)))
    if analysis:
        sections.append(Section("analysis", "Analysis", "", analysis))
    sections.append(Section("data", "Data", _data_html(facts), data_charts))
    sections.append(Section("enrichment", "Enrichment", _enrichment_html(facts)))
    link = None
    if facts.get("predictions_path"):
        link = Path(os.path.relpath(facts["predictions_path"], Path(path).parent)).as_posix()
    if frame is not None:
        sections.append(Section("predictions", "Predictions", _predictions_html(predictions, link, frame, facts.get("target"))))
    sections.append(Section("actions", "Actions taken", actions_html(actions)))
    toc = "<nav class='toc'><b>Contents</b><ol>" + "".join(f"<li><a href='#{s.ident}'>{html.escape(s.title)}</a></li>" for s in sections) + "</ol></nav>"
    from automodel.safety import redact_pii

    body = headline_html(facts, title, redact_pii(summary_text)) + toc + "".join(s.html() for s in sections)
    return write_text_atomic(path, page_html(title, body))


def write_dashboard(path: Path, title: str, headline: dict, summary: str, figures: list[tuple[str, object]]) -> Path:
    """A plain report: a table of key figures, a paragraph and the charts (for callers without a run's facts)."""
    from automodel.safety import redact_pii

    table = "<table id='headline'>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(redact_pii(str(v)))}</td></tr>"
                                              for k, v in headline.items()) + "</table>"
    body = f"<h1>{html.escape(title)}</h1>{table}<p id='summary'>{html.escape(redact_pii(summary))}</p>" + "".join(figure_html(n, f) for n, f in figures)
    return write_text_atomic(path, page_html(title, body))
