"""The greedy weighted ensemble (Caruana) over the candidates' validation predictions."""

from __future__ import annotations

import numpy as np

from analyzers.search.folds import PreparedFolds
from analyzers.search.scoring import score_predictions
from analyzers.search.trials import Trial

ENSEMBLE_POOL = 8  # best candidates the greedy ensemble may draw from
ENSEMBLE_ROUNDS = 25


def greedy_ensemble(prepared: PreparedFolds, top: list[Trial], metric: str, n_classes: int | None) -> dict | None:
    """Greedy forward selection with replacement (Caruana et al.) over the validation predictions (out-of-fold on
    small tables): ENSEMBLE_ROUNDS additions, the best-scoring blend along the way is kept."""
    pool = [t for t in top if t.predictions is not None][:ENSEMBLE_POOL]
    if len(pool) < 2:
        return None
    y_valid = scored_targets(prepared)
    counts = np.zeros(len(pool))
    running, best_score, best_counts, current = None, -np.inf, None, None
    for _ in range(ENSEMBLE_ROUNDS):
        options = []
        for i, trial in enumerate(pool):
            blend = trial.predictions if running is None else (running * counts.sum() + trial.predictions) / (counts.sum() + 1)
            options.append((score_predictions(metric, y_valid, blend, n_classes), -i, blend))
        score, minus_i, running = max(options, key=lambda o: (o[0], o[1]))
        counts[-minus_i] += 1
        if score > best_score + 1e-6:
            best_score, best_counts, current = score, counts.copy(), running
    counts = best_counts
    used = counts > 0
    if used.sum() < 2 or best_score <= pool[0].score + 1e-4:
        return None
    members = [pool[i] for i in np.flatnonzero(used)]
    weights = [float(counts[i] / counts.sum()) for i in np.flatnonzero(used)]
    name = "ensemble(" + ", ".join(f"{m.candidate.name} {w:.2f}" for m, w in zip(members, weights)) + ")"
    return {"name": name, "members": members, "score": best_score, "predictions": current,
            "weights_by_model": {m.candidate.name: w for m, w in zip(members, weights)},
            "weights": {m.candidate.name: round(w, 4) for m, w in zip(members, weights)}}


def scored_targets(prepared: PreparedFolds) -> np.ndarray:
    scored = np.zeros(len(prepared.y), dtype=bool)
    for _, valid in prepared.folds:
        scored[valid] = True
    return prepared.y[scored]
