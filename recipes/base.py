"""The recipe contract and the context every recipe receives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class ActionContext:
    run_id: str
    file_name: str
    user_id: str
    analyzer: str
    task: str
    target: str | None
    metrics: dict[str, float]
    summary: str
    predictions: pd.DataFrame
    column_metadata: list  # list[ColumnMeta]
    needs_role_review: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    frame: pd.DataFrame | None = None  # the run's (enriched) rows, row-aligned with predictions, for alert context
    trusted: bool = True  # the model cleared the quality thresholds (a baseline or below-threshold model did not)
    model_name: str = ""
    model_details: dict[str, Any] = field(default_factory=dict)  # the model stage's details: leakage review, drift of scored rows


@dataclass
class ActionOutcome:
    """What a recipe did. ``tasks`` are work items for people (role reviews, purchase orders), each with a ``key``
    unique within the run and recipe, so rematerializing a run updates them instead of adding duplicates."""

    recipe: str
    triggered: bool
    message: str
    records: list[dict] = field(default_factory=list)
    notify: bool = False
    severity: str = "info"
    tasks: list[dict] = field(default_factory=list)
    task_kind: str = ""


class Recipe(ABC):
    """A pluggable action. ``execute`` decides whether to act and returns what it did.

    Constructor keyword arguments are the recipe's options (AUTOMODEL_RECIPE_OPTIONS={"name": {...}}).
    """

    name: str = "recipe"
    # A recipe that acts on the model's predictions runs only when the model is trusted, unless its options say
    # {"act_on_untrusted": true} (AUTOMODEL_RECIPE_OPTIONS): a mean-only model must not raise purchase orders.
    needs_trusted_model: bool = False

    @abstractmethod
    def execute(self, context: ActionContext) -> ActionOutcome:
        ...
