"""The time budget: how long a fit should take, what to keep for the final refit, how many threads pay, and the
callbacks that stop boosting at the deadline."""

from __future__ import annotations

import os
import time

from analyzers.search.portfolio import CATBOOST_COST_RATIO, Candidate

SMALL_FIT_ROWS = 10_000
BUDGET_SAFETY = 0.9


def machine_busy() -> bool:
    """More runnable processes than cores over the last minute."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1) - 0.5
    except OSError:
        return False


class Deadline:
    """Stops boosting when the wall clock passes ``at`` (LightGBM callback and XGBoost callback)."""

    def __init__(self, at: float):
        self.at = at

    def lightgbm(self):
        from lightgbm.callback import EarlyStopException

        def callback(env):
            if time.perf_counter() > self.at and env.iteration > 0:
                raise EarlyStopException(env.iteration, env.evaluation_result_list)

        callback.order = 40
        return callback

    def xgboost(self):
        from xgboost.callback import TrainingCallback

        at = self.at

        class Stop(TrainingCallback):
            def after_iteration(self, model, epoch, evals_log):
                return time.perf_counter() > at and epoch > 0

        return Stop()


def estimate_seconds(trials: list, candidate: Candidate, rows: int) -> float:
    """Seconds ``candidate`` should take on ``rows`` rows, from the trials so far."""
    same = [t for t in trials if t.candidate.name == candidate.name and t.error is None]
    if same:
        t = max(same, key=lambda t: t.rows)
        return t.seconds * rows / max(t.rows, 1)
    done = [t for t in trials if t.error is None and t.candidate.family != "ensemble"]
    if not done:
        return 0.0
    # The slowest trial of the same family; a family not tried yet is estimated by the cheapest trial so far. (Taking
    # the slowest trial of any family skipped every forest and linear model on digits, 10 classes, after one slow
    # boosted fit; boosting stops at the deadline anyway, and a small table's forests are cheap.)
    family = [t for t in done if t.candidate.family == candidate.family]
    boosted = [t for t in done if t.candidate.boosted]
    if not family and candidate.family == "catboost" and boosted:
        # Every round of it, never stopped early: a short budget skips it rather than keep a half-trained one.
        t = max(boosted, key=lambda t: t.seconds / max(t.rows, 1))
        return CATBOOST_COST_RATIO * t.seconds * rows / max(t.rows, 1)
    t = max(family, key=lambda t: t.seconds / max(t.rows, 1)) if family else min(done, key=lambda t: t.seconds / max(t.rows, 1))
    return t.seconds * rows / max(t.rows, 1)


def final_reserve(trials: list, n_all: int, max_rows_full: int, budget: float, large_table: bool, bagging: bool = False) -> float:
    """Seconds to keep for the final refit of the best candidate so far, from its own time per row. ``bagging``: the
    fold models will be the final model (a small table), so only forests, which are refitted anyway, keep time."""
    done = [t for t in trials if t.error is None and t.fitted and not t.all_rows]
    if not done:
        return 0.0
    best = max(done, key=lambda t: (t.rows, t.score))
    if bagging and best.candidate.family not in ("random_forest", "extra_trees"):
        # Keeping a refit's time here skipped every candidate after the first on a busy machine (College, 777 rows,
        # 15 s: ridge alone, for a refit that bagging never makes).
        return 0.0
    per_row = best.seconds / max(best.rows, 1) / max(len(best.fitted), 1)
    # A large table already has its all-rows default, so a refit is a bonus and may keep less of the budget.
    cap = 0.25 if large_table else 0.5
    return min(per_row * min(n_all, max_rows_full) * 1.2, cap * budget)
