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


def selection_held_out(prepared: PreparedFolds, top: list[Trial], ensemble: dict | None, chosen_predictions: np.ndarray,
                       held_out: np.ndarray, metric: str, n_classes: int | None, seed: int) -> np.ndarray | None:
    """Held-out predictions of the whole choice, each row's from a winner chosen without it.

    The winner of many candidates scores best on the rows that chose it partly by luck, so its own held-out score is
    optimistic. Each validation fold (the two halves of a single holdout) is predicted by the candidate, or the blend,
    that scores best on the other held-out rows; the reported metrics come from these predictions. No model is
    refitted: the candidates' held-out predictions are reused. None when the chosen predictions are not the
    candidates' own (a large table's refitted final model)."""
    pool = [t for t in top if t.predictions is not None and len(t.predictions) == len(held_out)][:ENSEMBLE_POOL]
    if len(pool) < 2 or len(chosen_predictions) != len(held_out):
        return None
    if ensemble is None and not any(np.array_equal(chosen_predictions, t.predictions) for t in pool):
        return None
    y_valid = scored_targets(prepared)
    if len(prepared.folds) > 1:
        groups = [np.searchsorted(held_out, valid) for _, valid in prepared.folds]
    else:
        order = np.random.default_rng(seed + 3).permutation(len(held_out))
        groups = [np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])]
    out = np.array(chosen_predictions, dtype=float, copy=True)
    for group in groups:
        others = np.setdiff1d(np.arange(len(held_out)), group)
        if len(others) == 0 or len(group) == 0:
            return None
        options = [(score_predictions(metric, y_valid[others], t.predictions[others], n_classes), t.predictions[group]) for t in pool]
        if ensemble is not None:
            blend = _blend_on(pool, y_valid, others, metric, n_classes)
            if blend is not None:
                weights, score = blend
                options.append((score, sum(w * t.predictions[group] for w, t in zip(weights, pool))))
        out[group] = max(options, key=lambda o: o[0])[1]
    return out


def _blend_on(pool: list[Trial], y_valid: np.ndarray, rows: np.ndarray, metric: str, n_classes: int | None) -> tuple[np.ndarray, float] | None:
    """Greedy ensemble weights over ``pool`` chosen on ``rows`` only, and their score there (as ``greedy_ensemble``)."""
    counts = np.zeros(len(pool))
    running, best_score, best_counts = None, -np.inf, None
    for _ in range(ENSEMBLE_ROUNDS):
        options = []
        for i, trial in enumerate(pool):
            part = trial.predictions[rows]
            blend = part if running is None else (running * counts.sum() + part) / (counts.sum() + 1)
            options.append((score_predictions(metric, y_valid[rows], blend, n_classes), -i, blend))
        score, minus_i, running = max(options, key=lambda o: (o[0], o[1]))
        counts[-minus_i] += 1
        if score > best_score + 1e-6:
            best_score, best_counts = score, counts.copy()
    if best_counts is None:
        return None
    return best_counts / best_counts.sum(), best_score
