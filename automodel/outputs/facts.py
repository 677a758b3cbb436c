"""One set of facts per run, from which the summary, its caveats, the dashboard, the run JSON and the
assets' metadata are all written, so no number in one contradicts another.

``build_facts`` gathers them from the model's outcome (its held-out metrics and the basis they were
measured on), the data (rows, columns, roles, cleaning changes, missing values), the enrichment
decision and the explanations. ``metric_text`` is the one way a metric is written for a person.
"""

from __future__ import annotations

import json
from pathlib import Path

from analyzers.metric_names import METRIC_LABELS, metric_label  # noqa: F401  (facts' API: the dashboard and summary use them)
from automodel.atomic import write_text_atomic
from automodel.drift import drift_sentence

HEADLINE_METRIC = {"regression": "r2", "classification": "f1", "clustering": "silhouette", "anomaly": "anomaly_rate",
                   "descriptive": "missing_cells_pct"}
SUPERVISED = ("regression", "classification")


def metric_text(value) -> str:
    """How every metric is written for a person: three decimals below 1,000, thousands separated above."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "n/a"
        return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def is_baseline(model_name: str | None) -> bool:
    return str(model_name or "").startswith("baseline")


def _leaderboard(rows: list[dict], metric: str | None) -> list[dict]:
    out = []
    for row in rows or []:
        score = row.get(metric) if metric else None
        if score is None:  # other backends name their columns differently (PyCaret: R2, F1, ...)
            score = next((v for k, v in row.items() if k.lower() in (metric or "", "r2", "f1") and isinstance(v, (int, float))), None)
        out.append({"model": str(row.get("model")), "score": score, "rows": row.get("rows"), "seconds": row.get("seconds", row.get("TT (Sec)")),
                    "error": row.get("error")})
    return out


def _fallback(outcome: dict, metric: str | None, leaderboard: list[dict], bar: dict | None, leaderboard_metric: str | None = None) -> dict | None:
    """Why a baseline stands in for a model, with the rejected model's own (held-out) score named as such."""
    model = (outcome.get("model_info") or {}).get("model")
    if not is_baseline(model):
        return None
    details = outcome.get("details") or {}
    baseline = details.get("baseline") or bar or {}
    notes = [str(n) for n in outcome.get("notes") or []]
    from analyzers.search import LOWER_IS_BETTER

    scored = [r for r in leaderboard if isinstance(r.get("score"), (int, float)) and not r.get("error")]
    ranked_by = leaderboard_metric or metric
    best = (min if ranked_by in LOWER_IS_BETTER else max)(scored, key=lambda r: r["score"]) if scored else None
    if baseline and "model_score" in baseline:
        # The comparison the fallback made: the chosen model and the baseline on the same held-out rows, by one metric.
        label = metric_label(baseline["metric"])
        what = f"the {baseline['model']}"
        rejected = (outcome.get("model_info") or {}).get("rejected_model") or (best or {}).get("model") or "the best model"
        rows = f" on {baseline['rows']:,} held-out rows" if baseline.get("rows") else ""
        noise = (f" ({metric_text(float(baseline['z']))} standard errors of a paired bootstrap, the best of {baseline['candidates']} candidates)"
                 if baseline.get("standard_error") is not None else "")
        reason = (f"no candidate model beat predicting {what} by more than noise: the best, {rejected}, scored held-out {label} "
                  f"{metric_text(float(baseline['model_score']))}{rows}, where {what} scores {metric_text(float(baseline['score']))}; "
                  f"a lead of {metric_text(float(baseline['lead']))} needed more than {metric_text(float(baseline['margin']))}{noise}")
        return {"reason": reason, "rejected_model": rejected, "rejected_score": float(baseline["model_score"]), "metric": baseline["metric"],
                "baseline_score": float(baseline["score"]), "margin": float(baseline["margin"])}
    if baseline and best is not None:
        from analyzers.selection import FIXED_MARGIN

        margin = FIXED_MARGIN.get(outcome.get("task"), 0.0)
        label = metric_label(baseline.get("metric", metric))
        what = str(baseline.get("model") or "a baseline")
        what = what if what.startswith(("the ", "a ")) else f"the {what}"
        # The search may rank by another metric than the one the baseline is judged on (ROC-AUC for two classes, log loss
        # for several): the rejected model's score is named by its own metric.
        reason = (f"no candidate model beat predicting {what} by enough: the best, {best['model']}, scored "
                  f"held-out {metric_label(ranked_by)} {metric_text(float(best['score']))}, while the baseline scores {label} {metric_text(float(baseline.get('score', 0.0)))} "
                  f"and a model must beat it by {metric_text(float(margin))}")
        return {"reason": reason, "rejected_model": best["model"], "rejected_score": float(best["score"]), "metric": baseline.get("metric", metric),
                "baseline_score": float(baseline.get("score", 0.0)), "margin": float(margin)}
    failed = next((n for n in notes if " failed (" in n), None)
    reason = f"the model search failed ({failed.split(' failed (', 1)[1].rstrip(')')})" if failed else "no candidate model could be trained"
    return {"reason": reason, "rejected_model": None, "rejected_score": None, "metric": metric, "baseline_score": None, "margin": None}


def _trust_reason(outcome: dict, fallback: dict | None, metric: str | None, basis: str | None) -> str:
    if outcome.get("reused_from"):
        return f"reused the model of run {outcome['reused_from']}; it was judged when it was trained"
    if fallback:
        return f"not trusted: {fallback['reason']}"
    task = outcome.get("task")
    if task not in SUPERVISED:
        return "no predictive model; nothing to trust or distrust"
    metrics = outcome.get("metrics") or {}
    value = metrics.get(metric)
    measured = f"held-out {metric_label(metric)} {metric_text(value)}" if value is not None else "its held-out metrics"
    if outcome.get("trusted", True):
        return f"trusted: {measured} ({basis}) clears the quality thresholds" if basis else f"trusted: {measured} clears the quality thresholds"
    # The analyzer's own threshold notes for this model (they name the metric and the threshold it missed).
    misses = [n for n in outcome.get("notes") or [] if "below MIN_" in n or "above MAX_" in n or "barely beats" in n or "close to chance" in n]
    return "not trusted: " + ("; ".join(misses) if misses else f"{measured} misses the quality thresholds")


def build_facts(outcome: dict, *, rows: int, columns: int, enrichment: dict | None = None, cleaning: dict | None = None,
                importance: list[dict] | None = None, roles: dict | None = None, missing: dict | None = None,
                predictions_path: str | None = None, holdout_rows: int | None = None, baseline: dict | None = None) -> dict:
    """Everything a person is told about a run. ``outcome`` is ``ModelOutcome.to_dict()`` (or the same keys)."""
    details = outcome.get("details") or {}
    model_info = outcome.get("model_info") or {}
    task = outcome["task"]
    metrics = {k: float(v) for k, v in (outcome.get("metrics") or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    metric = HEADLINE_METRIC.get(task)
    if metric not in metrics:
        metric = next(iter(metrics), None)
    leaderboard_metric = (details.get("search") or {}).get("metric") or metric
    leaderboard = _leaderboard(outcome.get("leaderboard") or [], leaderboard_metric)
    fallback = _fallback(outcome, metric, leaderboard, baseline, leaderboard_metric) if task in SUPERVISED else None
    if outcome.get("reused_from"):
        basis = "the rows of this file, scored by a model trained on another run" if metrics else None
    elif fallback:
        basis = "training rows; a baseline model has no held-out evaluation"
    elif task in SUPERVISED:
        basis = details.get("holdout_basis")
    else:
        basis = None
    enrichment = enrichment or {}
    kept_enrichment = {k: enrichment.get(k) for k in ("table", "keys", "strategy", "coverage", "kept", "lift", "added_columns", "reason",
                                                       "metric", "plain_score", "enriched_score") if k in enrichment}
    kept_enrichment["tables"] = [{k: t.get(k) for k in ("table", "keys", "strategy", "coverage", "lift") if k in t}
                                 for t in enrichment.get("tables") or []]
    kept_enrichment["refused"] = [{"table": r.get("table"), "reason": r.get("reason")} for r in enrichment.get("refused") or []]
    kept_enrichment["candidates"] = [
        {k: c.get(k) for k in ("table", "score", "coverage", "lift", "strategy", "tried", "user_columns", "lake_columns") if k in c}
        for c in enrichment.get("candidates") or []
    ]
    facts = {
        "analyzer": outcome["analyzer"], "task": task, "target": outcome.get("target"), "rows": int(rows), "columns": int(columns),
        "metrics": metrics, "metric": metric, "metric_label": metric_label(metric) if metric else None, "leaderboard_metric": leaderboard_metric,
        "holdout_basis": basis, "holdout_rows": holdout_rows,
        "model": model_info.get("model"), "training_rows": model_info.get("training_rows"), "candidates_tried": model_info.get("candidates"),
        "validation": _validation(details, model_info), "metric_interval": _interval(details.get("metric_interval"), outcome),
        "time_baselines": details.get("time_baselines") or [], "trusted": bool(outcome.get("trusted", True)) and fallback is None,
        "trust_reason": _trust_reason(outcome, fallback, metric, basis), "fallback": fallback,
        "notes": [str(n) for n in outcome.get("notes") or []], "leaderboard": leaderboard,
        "no_model_reason": details.get("no_model_reason"),  # a descriptive analysis says why no model was trained
        "enrichment": kept_enrichment, "cleaning": cleaning or {}, "roles": dict(roles or {}),
        "missing": {str(k): int(v) for k, v in (missing or {}).items() if v},
        "top_features": [f["feature"] for f in (importance or []) if f.get("importance", 0) > 0][:3],
        "importance_method": (importance or [{}])[0].get("method") if importance else None,
        "excluded": dict(outcome.get("excluded_columns") or {}),
        "recommendations": details.get("recommendations", []),
        "cluster_sizes": {str(k): int(v) for k, v in (details.get("cluster_sizes") or {}).items()},
        "top_correlations": (details.get("top_correlations") or [])[:3],
        "reused_from": outcome.get("reused_from"), "predictions_path": predictions_path,
        "training_seconds": outcome.get("training_seconds"),
        "run_budget": details.get("run_budget"),  # how the run's budget was split around the search (automodel.run_budget)
        "scoring_notes": (details.get("scoring") or {}).get("notes", []),  # a scoring run: what reading the batch as in training had to do
        "drift": details.get("drift"),
        "unlearned_target_labels": details.get("unlearned_target_labels"),  # a scored batch's labels the model has no class for
        "interval": details.get("interval"), "calibration": details.get("calibration"),
    }
    compared = details.get("baseline") if isinstance(details.get("baseline"), dict) and "model_score" in details["baseline"] else None
    facts["baseline"] = _against_baseline(compared or baseline, metrics, fallback)
    facts["caveats"] = caveats(facts)
    return facts


def _validation(details: dict, model_info: dict) -> dict | None:
    """The scheme the run was judged by (analyzers.validation), with the folds it made; a run saved before schemes
    existed has only the folds' description."""
    plan = details.get("validation")
    if isinstance(plan, dict):
        return {**plan, "folds": plan.get("folds") or model_info.get("validation")}
    return {"scheme": None, "folds": model_info.get("validation")} if model_info.get("validation") else None


def _interval(interval: dict | None, outcome: dict) -> dict | None:
    if not interval or outcome.get("reused_from"):
        return None
    # A baseline standing in shows its own held-out interval (analyzers.selection), never the rejected model's.
    if is_baseline((outcome.get("model_info") or {}).get("model")) and not is_baseline(interval.get("model")):
        return None
    own = f"{interval['model']}, held-out " if interval.get("model") else ""
    return {**interval, "text": f"{own}{metric_label(interval['metric'])} {metric_text(interval['value'])}, {interval['level']:.0%} interval "
                                f"{metric_text(interval['low'])} to {metric_text(interval['high'])} ({interval['method']})"}


def validation_sentence(facts: dict) -> str | None:
    """'Validated by time on 'date': ...': the scheme, its column and its reason, for the summary and the dashboard."""
    plan = facts.get("validation") or {}
    if not plan.get("scheme"):
        return None
    how = {"time": "by time", "group": "by entity", "random": "on random rows"}[plan["scheme"]]
    column = f" on {plan['column']!r}" if plan.get("column") else ""
    return f"Validated {how}{column}: {plan['reason']}."


def time_baseline_sentence(facts: dict) -> str | None:
    baselines = facts.get("time_baselines") or []
    if not baselines or facts.get("reused_from"):
        return None
    best = max(baselines, key=lambda b: b["score"])
    # A baseline model standing in has no held-out score of its own to set beside them.
    value = None if facts.get("fallback") else (facts.get("metrics") or {}).get(best["metric"])
    verdict = "" if value is None else (f"; the model's {metric_text(value)} {'beats' if value > best['score'] else 'does not beat'} it")
    return (f"On the same latest period the best time-order baseline, the {best['model']}, scores {metric_label(best['metric'])} "
            f"{metric_text(best['score'])}{verdict}.")


def baseline_for(target_values, task: str) -> dict | None:
    """The bar a model must clear: R² of predicting the mean (0) or macro F1 of always predicting the majority class."""
    if task not in SUPERVISED or target_values is None or target_values.dropna().empty:
        return None
    from analyzers.selection import baseline_score

    return {"model": "the mean" if task == "regression" else "the majority class", "metric": "r2" if task == "regression" else "f1",
            "score": float(baseline_score(target_values.dropna(), task))}


def _the(what: str) -> str:
    return what if str(what).startswith(("the ", "a ")) else f"the {what}"


def _against_baseline(baseline: dict | None, metrics: dict, fallback: dict | None) -> dict | None:
    if not baseline or fallback:
        return None
    if "model_score" in baseline:  # the fallback's own comparison, on held-out rows (losses: the baseline's minus the model's)
        gain = float(baseline["lead"])
    elif baseline["metric"] in metrics:
        gain = metrics[baseline["metric"]] - baseline["score"]
    else:
        return None
    return {**baseline, "gain": gain, "beats": gain > 0,
            "text": f"predicting {_the(baseline['model'])} scores {metric_label(baseline['metric'])} {metric_text(baseline['score'])}; "
                    f"this model {'beats' if gain > 0 else 'does not beat'} it by {metric_text(abs(gain))}"}


def caveats(facts: dict) -> list[str]:
    """What a reader must know before using the result; the summary and the dashboard both print exactly these."""
    out = []
    task = facts["task"]
    if facts.get("fallback"):
        out.append(f"The predictions come from a baseline model ({facts['model']}), not a learned one: {facts['fallback']['reason']}.")
    elif task in SUPERVISED and not facts["trusted"] and not facts.get("reused_from"):
        out.append(f"The model is below the quality thresholds ({facts['trust_reason'].removeprefix('not trusted: ')}), "
                   "so treat its predictions with care.")
    if task in SUPERVISED and facts["metrics"] and facts["rows"] < 200:
        out.append(f"With only {facts['rows']:,} rows the held-out metrics are noisy.")
    moved = drift_sentence(facts.get("drift"))
    if moved:
        out.append(moved[0].upper() + moved[1:])
    unlearned = facts.get("unlearned_target_labels")
    if unlearned:
        shown = ", ".join(repr(v) for v in unlearned["values"])
        out.append(f"{unlearned['rows']} scored row(s) have a {facts['target']!r} the model never learned ({shown}): it cannot predict "
                   "that label, so those rows count as errors in this batch's metrics.")
    if facts.get("excluded"):
        out.append(f"{len(facts['excluded'])} column(s) were left out of the model (identifiers, free text or leakage).")
    return out


def headline_metric_text(facts: dict) -> str | None:
    """'held-out R² 0.812 (5-fold out-of-fold predictions, 344 rows)': the metric with the basis it was measured on."""
    metric = facts.get("metric")
    if not metric or metric not in facts["metrics"]:
        return None
    text = f"{facts['metric_label']} {metric_text(facts['metrics'][metric])}"
    return f"{text} ({facts['holdout_basis']})" if facts.get("holdout_basis") else text


def write_facts(path: Path, facts: dict) -> Path:
    return write_text_atomic(Path(path), json.dumps(facts, default=str, indent=1))


def read_facts(path: Path | str | None) -> dict | None:
    if not path or not Path(path).exists():
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
