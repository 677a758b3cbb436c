"""The budget a user gives is the run's, not the search's alone.

A run spends time before the model (loading, cleaning and its checks, profiling, enrichment) and after it (predictions,
SHAP explanations, summary, actions, dashboard). The model stage gives the search what is left of the run's budget once
the stages before it have taken theirs and the stages after it have been reserved for, so the run's wall time stays near
the budget plus a fixed start-up (the process importing its libraries and opening the Dagster instance before the run
starts), which bench/automl.py measures.

The stages after the model were measured to take about as long as those before it on the same table and machine (the
same rows are read, profiled and written; on a loaded 2-core machine, Carseats, 400 rows: 36 s before the model, 22 s
after it), so the reserve for them is a share of the time already spent, within bounds. The search never gets less than
``MIN_SEARCH_SHARE`` of the budget: a short run that cannot keep to its budget still trains a model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

AFTER_MODEL_SHARE = 0.6  # reserve for the stages after the model, as a share of the time spent before it
MIN_AFTER_MODEL_S = 3.0
MAX_AFTER_MODEL_SHARE = 0.3  # of the budget
MIN_SEARCH_SHARE = 0.5  # of the budget


@dataclass
class RunBudget:
    budget_s: float  # the run's, as the user gave it (AUTOMODEL_SEARCH_BUDGET_S or the run's budget option)
    spent_before_model_s: float
    reserved_after_model_s: float
    search_s: float  # what the model stage gives the search (and the checks inside it)
    floored: bool  # the search got its minimum share although the run will then outlast its budget

    def to_dict(self) -> dict:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in asdict(self).items()}


def search_budget(budget_s: float, spent_before_model_s: float) -> RunBudget:
    """How many seconds of ``budget_s`` the search may have once ``spent_before_model_s`` are gone."""
    budget_s = float(budget_s)
    spent = max(float(spent_before_model_s), 0.0)
    after = min(max(AFTER_MODEL_SHARE * spent, MIN_AFTER_MODEL_S), MAX_AFTER_MODEL_SHARE * budget_s)
    left = budget_s - spent - after
    floor = MIN_SEARCH_SHARE * budget_s
    return RunBudget(budget_s, spent, after, max(left, floor), left < floor)
