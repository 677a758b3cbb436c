"""Run summaries: a deterministic template (the default) or an LLM whose every number is checked.

``summary_facts`` gathers what a summary may say. ``template_summary`` writes plain English from
those facts alone, differently for each analyzer. ``summarize`` asks a language model when one is
configured and keeps its text only if every number in it comes from the facts; otherwise it uses
the template and records why. ``ask_follow_up_question`` does the same for recommendations.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from automodel.outputs.facts import (build_facts, caveats, metric_label, metric_text, time_baseline_sentence,
                                     validation_sentence)
from automodel.outputs.llm import ChatProvider, LLMError, unsupported_numbers
from automodel.safety import redact_pii


def _fmt(value) -> str:
    return metric_text(value)


def summary_facts(result, rows: int, columns: int, enrichment: dict | None, cleaning: dict | None, importance: list[dict] | None,
                  **more) -> dict:
    """The facts a summary may state; an LLM summary is checked against exactly these. They are the run's one
    facts object (automodel.outputs.facts), which the dashboard, the run JSON and the assets' metadata also use."""
    return build_facts(result, rows=rows, columns=columns, enrichment=enrichment, cleaning=cleaning, importance=importance, **more)


def _basis(facts: dict) -> str:
    return f" ({facts['holdout_basis']})" if facts.get("holdout_basis") else ""


def _headline(facts: dict) -> list[str]:
    task, metrics = facts["task"], facts["metrics"]
    if task in ("regression", "classification") and not metrics:
        return [f"The model ({facts['model']}) of run {facts['reused_from']} scored these rows; the file has no {facts['target']!r} values to check it against."]
    if task in ("regression", "classification") and facts.get("fallback"):
        shown = ", ".join(f"{metric_label(k)} {_fmt(metrics[k])}" for k in (("r2", "rmse", "mae") if task == "regression" else ("accuracy", "f1")) if k in metrics)
        what = "the mean of" if task == "regression" else "the class shares of"
        return [f"No learned model was good enough, so the predictions of {facts['target']!r} are {what} the training rows "
                f"({facts['model']}; {shown} on training rows)."]
    where = " on held-out rows" + _basis(facts) if not facts.get("reused_from") else " on these rows"
    if task == "regression":
        return [f"The best model ({facts['model']}) predicts {facts['target']!r} with R² {_fmt(metrics.get('r2'))}, "
                f"RMSE {_fmt(metrics.get('rmse'))}, MAE {_fmt(metrics.get('mae'))} and MAPE {_fmt(metrics.get('mape'))}{where}."]
    if task == "classification":
        auc = f", ROC-AUC {_fmt(metrics['roc_auc'])}" if "roc_auc" in metrics else ""
        return [f"The best model ({facts['model']}) predicts {facts['target']!r} with accuracy {_fmt(metrics.get('accuracy'))}, "
                f"macro F1 {_fmt(metrics.get('f1'))}{auc}{where}."]
    if task == "clustering":
        lines = [f"The rows fall into {int(metrics.get('clusters', 0))} clusters (silhouette {_fmt(metrics.get('silhouette'))})."]
        sizes = facts.get("cluster_sizes") or {}
        if sizes:
            largest = max(sizes, key=sizes.get)
            lines.append(f"The largest cluster, {largest}, holds {sizes[largest]:,} rows and the smallest {min(sizes.values()):,}.")
        return lines
    if task == "anomaly":
        return [f"{int(metrics.get('anomalies', 0))} rows ({metrics.get('anomaly_rate', 0):.1%}) look anomalous; "
                "the dashboard ranks them by anomaly score."]
    why = f": {facts['no_model_reason']}" if facts.get("no_model_reason") else ""
    lines = [f"No predictive model was trained{why}; {_fmt(metrics.get('missing_cells_pct', 0.0))}% of cells are empty."]
    for pair in (facts.get("top_correlations") or [])[:1]:
        lines.append(f"The strongest relationship is between {pair['a']!r} and {pair['b']!r} (Pearson {_fmt(pair['pearson'])}).")
    return lines


def enrichment_sentence(facts: dict) -> str | None:
    enrichment = facts.get("enrichment") or {}
    if not enrichment.get("kept"):
        return None
    lift = enrichment.get("lift")
    metric = metric_label(enrichment.get("metric") or facts.get("metric") or "score")
    gain = (f", which raised a quick 3-fold {metric} from {_fmt(enrichment.get('plain_score'))} to {_fmt(enrichment.get('enriched_score'))} "
            f"(lift {_fmt(float(lift))})") if isinstance(lift, (int, float)) and enrichment.get("plain_score") is not None else ""
    names = [t["table"] for t in enrichment.get("tables") or []] or [enrichment["table"]]
    tables = "the lake table " + repr(names[0]) if len(names) == 1 else "the lake tables " + ", ".join(repr(n) for n in names)
    return f"The data was enriched with {tables} ({enrichment['coverage']:.0%} of rows matched){gain}."


def template_summary(facts: dict) -> str:
    lines = [f"automodel analysed {facts['rows']:,} rows and {facts['columns']} columns with the {facts['analyzer']}."]
    lines += _headline(facts)
    for sentence in (validation_sentence(facts), (facts.get("metric_interval") or {}).get("text"), time_baseline_sentence(facts)):
        if sentence:
            lines.append(sentence if sentence.endswith(".") else f"The headline metric: {sentence}.")
    if facts.get("baseline"):
        text = facts["baseline"]["text"]
        lines.append(text[0].upper() + text[1:] + ".")
    if facts["top_features"] and not facts.get("fallback"):
        lines.append("The most influential features are " + ", ".join(repr(f) for f in facts["top_features"]) + ".")
    enriched = enrichment_sentence(facts)
    if enriched:
        lines.append(enriched)
    lines += [f"Caveat: {c}" for c in facts.get("caveats") or caveats(facts)]
    lines += facts.get("scoring_notes") or []
    lines.append("Recommendations: " + " ".join(recommendations(facts)))
    return redact_pii(" ".join(lines))


def recommendations(facts: dict) -> list[str]:
    out = list(facts.get("recommendations", []))
    task, metrics = facts["task"], facts["metrics"]
    if facts.get("fallback"):
        out.append("Look for data that drives the target (the lake's tables, more columns) before acting on these predictions.")
    elif task == "regression" and metrics.get("r2", 1) < 0.5:
        out.append("Add features that drive the target, or check the target for data-entry errors.")
    if task == "classification" and metrics.get("f1", 1) < 0.7:
        out.append("Collect more examples of the rarer classes or add more informative features.")
    if task == "clustering":
        out.append("Name the clusters from their profiles in the dashboard before using them as segments.")
    if task == "anomaly":
        out.append("Review the highest-scoring rows first; confirmed anomalies can become labels for a classifier.")
    if task in ("regression", "classification") and facts["trusted"] and not facts.get("reused_from"):
        out.append("Use `automodel score NEW_FILE --model RUN_ID` to score new rows with this model.")
    if not out:
        out.append("Review the dashboard for patterns worth acting on.")
    return out


# ---- LLM summaries, checked -----------------------------------------------------------------------

SUMMARY_SYSTEM = (
    "You are a careful data analyst writing for a business reader. Write a plain-English summary of an automated "
    "analysis in at most five sentences: what was analysed, how good the result is, the most influential features, "
    "and one caveat. Use only the facts given. Every number you write must appear in the facts, written the same way "
    "or rounded; do not compute, estimate or invent any other number (no years, no counts you derived)."
)
FOLLOW_UP_SYSTEM = (
    "You are a careful data analyst. From the facts of an automated analysis, give up to three concrete follow-up "
    "recommendations for the business, one per line, each starting with '- '. Use only numbers that appear in the facts."
)


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def facts_prompt(facts: dict) -> str:
    return "FACTS (JSON):\n" + json.dumps(_rounded(facts), default=str, indent=1)


@dataclass
class Summary:
    text: str
    provider: str  # what wrote the kept text: "template", "openai" or "vllm"
    requested_provider: str
    recommendations: list[str] = field(default_factory=list)
    fallback_reason: str | None = None
    recommendations_source: str = "template"

    def to_dict(self) -> dict:
        return asdict(self)


def _llm_text(provider: ChatProvider, system: str, facts: dict) -> tuple[str | None, str | None]:
    """(text, None) when the reply passes the checks, else (None, why it was rejected)."""
    try:
        reply = redact_pii(provider.complete(system, facts_prompt(facts)))  # before the check: a phone number is not a claim
    except LLMError as exc:
        return None, f"the {provider.name} provider failed: {exc}"
    invented = unsupported_numbers(reply, facts)
    if invented:
        shown = ", ".join(invented[:5])
        return None, f"the {provider.name} reply stated number(s) not in the run's facts ({shown})"
    return reply, None


def ask_follow_up_question(facts: dict, provider: ChatProvider | None = None) -> tuple[list[str], str, str | None]:
    """Follow-up recommendations: (recommendations, source, why the LLM's were not used)."""
    fallback = [redact_pii(r) for r in recommendations(facts)]
    if provider is None:
        return fallback, "template", None
    text, reason = _llm_text(provider, FOLLOW_UP_SYSTEM, facts)
    if text is None:
        return fallback, "template", reason
    lines = [re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if len(line) > 3][:3]
    if not lines:
        return fallback, "template", f"the {provider.name} reply held no recommendations"
    return lines, provider.name, None


def summarize(facts: dict, provider: ChatProvider | None = None) -> Summary:
    """The run's summary: the LLM's when it passes the number check, else the template's with the reason."""
    template = template_summary(facts)
    if provider is None:
        return Summary(template, "template", "template", [redact_pii(r) for r in recommendations(facts)])
    text, reason = _llm_text(provider, SUMMARY_SYSTEM, facts)
    if text is None and reason.startswith(f"the {provider.name} provider failed"):
        # The endpoint is down or refusing: asking again for recommendations would only repeat the wait.
        return Summary(template, "template", provider.name, [redact_pii(r) for r in recommendations(facts)], reason)
    recs, recs_source, recs_reason = ask_follow_up_question(facts, provider)
    if text is None:
        return Summary(template, "template", provider.name, recs, reason, recs_source)
    if recs_reason:
        reason = f"recommendations from the template because {recs_reason}"
    return Summary(text, provider.name, provider.name, recs, reason, recs_source)
