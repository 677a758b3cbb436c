"""What a run shows the people who asked for it: the fields ``automodel run --json`` prints (and the HTTP API returns),
and answers to questions about its data (``automodel ask``, ``POST /runs/{id}/ask``).

Both the command line and the service (service/) read runs through here, so neither imports the other.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from automodel.errors import AutomodelError
from automodel.outputs.facts import read_facts
from automodel.safety import redact_pii
from automodel.sessions import SessionStore
from automodel.trust import may_read


def run_result(store, run_id: str, error: str | None = None, layout=None) -> dict:
    """The fields `automodel run --json` prints for a run (and the HTTP API returns), from the session store and the run's facts."""
    row = store.get(run_id) or {}
    enrichment = row.get("enrichment") or {}
    facts = (read_facts(layout.facts_path(run_id)) if layout is not None and not error else None) or {}
    return {
        "run_id": run_id, "status": "failed" if error else row.get("status", "unknown"), "error": error,
        "analyzer": row.get("analyzer"), "task": row.get("task"), "target": row.get("target"), "metrics": row.get("metrics") or {},
        "model_path": row.get("model_path"), "predictions_path": row.get("predictions_path"), "summary": row.get("summary"),
        "dashboard_path": row.get("dashboard_path"),
        "enrichment": {**{k: enrichment.get(k) for k in ("table", "keys", "strategy", "coverage", "kept", "lift")},
                       "tables": [{k: t.get(k) for k in ("table", "keys", "strategy", "grain", "aggregation", "coverage", "kept", "lift")}
                                  for t in enrichment.get("tables") or []],
                       "candidates": [{k: c.get(k) for k in ("table", "score", "containment", "user_columns", "lake_columns", "strategy",
                                                             "coverage", "lift", "refused") if k in c}
                                      for c in enrichment.get("candidates") or []]},
        "actions": row.get("actions") or [],
        # From the run's facts, like the summary and the dashboard (automodel.outputs.facts).
        "holdout_basis": facts.get("holdout_basis"), "trusted": facts.get("trusted"), "trust_reason": facts.get("trust_reason"),
        "caveats": facts.get("caveats") or [], "baseline_reason": (facts.get("fallback") or {}).get("reason"),
        "baseline": facts.get("baseline"),
        "facts_path": str(layout.facts_path(run_id)) if facts else None,
        "scoring": row.get("scoring"),  # scoring runs: what replaying the training schema did (missing, unseen, extra columns)
        # Which path the table took and which rows trained what (automodel.large: search_rows, final_rows, the refit's gain).
        "training": row.get("training"),
        # How sure the predictions are: the regression interval's coverage and half-width, the classifier's calibration.
        "interval": facts.get("interval"), "calibration": facts.get("calibration"),
        # How the run measured itself and how sure that measure is (analyzers.validation).
        "validation": facts.get("validation"), "metric_interval": facts.get("metric_interval"),
        # Scoring runs: the columns whose values moved away from the training rows (automodel.drift).
        # Scoring runs with the target present: labels the model never learned (counted as errors in the metrics).
        "unlearned_target_labels": facts.get("unlearned_target_labels"),
        "drift": {k: (facts.get("drift") or {}).get(k) for k in ("judged", "reason", "moved", "max_psi", "threshold", "alpha", "min_rows",
                                                                  "rows", "columns")} if facts.get("drift") else None,
        # Where the lake came from (automodel.lake.remembered) and, scoring, the joined tables that changed or are gone.
        "lake": enrichment.get("lake"),
    }


def ask_run(settings, run_id: str, question: str, user_id: str, admin: bool | None = None) -> dict:
    """``automodel ask``: the answer about a run's data and, when there is one, its chart; the JSON the command prints.
    The HTTP API (``POST /runs/{id}/ask``) calls it too. Another user's run is refused exactly like a missing one."""
    # deferred: Dagster, pandas, the model stack and the wiring (seconds), for this command only
    import dagster as dg
    import pandas as pd

    from automodel import stages
    from automodel.outputs.ask import answer, write_answer_chart
    from automodel_assets.assets import ALL_ASSETS
    from automodel_assets.home import build_resources, get_instance
    from automodel_assets.links import dashboard_link

    row = SessionStore(settings.layout.sessions_db).get(run_id)
    if row is None or not may_read(row["user_id"], user_id, settings.admin if admin is None else admin):  # another user's run: like a missing one
        raise AutomodelError(f"Run {run_id} is not known for user {user_id!r}; list runs with `automodel sessions --user {user_id}`.")
    resources = build_resources(settings)
    instance = get_instance(settings.layout)
    try:
        frame = dg.Definitions(assets=ALL_ASSETS, resources=resources).load_asset_value("enriched_frame", partition_key=run_id, instance=instance)
    except Exception as exc:  # the partition or its stored output is gone
        raise AutomodelError(f"Run {run_id} has no stored data to ask about ({type(exc).__name__}); rerun it with `automodel rerun {run_id}`.") from exc
    predictions = pd.read_csv(row["predictions_path"]) if row.get("predictions_path") and Path(row["predictions_path"]).exists() else None
    explanation_path = settings.layout.explanation_path(run_id)
    importance = pd.read_csv(explanation_path).to_dict(orient="records") if explanation_path.exists() else None
    fitted = stages.load_model_bundle(Path(row["model_path"]))["fitted"] if row.get("model_path") else None
    try:
        provider = resources["llm"].get_provider()
    except AutomodelError:  # heuristics answer most questions; a provider that cannot start only loses the fallback
        provider = None
    result = answer(question, frame, target=row.get("target"), task=row.get("task"), predictions=predictions, importance=importance,
                    fitted=fitted, provider=provider)
    digest = hashlib.sha256(question.strip().lower().encode()).hexdigest()[:10]
    write_answer_chart(result, settings.layout.dashboard_path(run_id).with_name(f"{run_id}_ask_{digest}.html"))
    out = {"run_id": run_id, **result.to_dict()}
    if result.chart_path:  # the chart is linked from the run's dashboard asset in the UI, like the dashboard itself
        out["chart_url"] = dashboard_link(settings, Path(result.chart_path))
        redacted = redact_pii(question)
        instance.report_runless_asset_event(dg.AssetObservation(
            "dashboard", partition=run_id, description=f"automodel ask: {redacted}"[:500],
            metadata={"question": redacted, "chart": dg.MetadataValue.url(out["chart_url"]),
                      "chart_path": dg.MetadataValue.path(str(result.chart_path))}))
    return out
