"""The three built-in recipes: role_review, anomaly_alert and reorder."""

from __future__ import annotations

import math

import pandas as pd

from recipes.base import ActionContext, ActionOutcome, Recipe

# Values shown in alerts and purchase orders; roles that identify a person are never copied out.
_PRIVATE_ROLES = {"email", "phone", "text", "url"}


def _row_context(context: ActionContext, row: int, limit: int = 8) -> dict:
    """A few of the row's own values, so an alert can be acted on without opening the file."""
    if context.frame is None or row >= len(context.frame):
        return {}
    private = {m.name for m in context.column_metadata if m.role in _PRIVATE_ROLES}
    values = context.frame.iloc[row]
    out = {}
    for column, value in values.items():
        if column in private or len(out) >= limit:
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        out[str(column)] = value.item() if hasattr(value, "item") else (str(value) if not isinstance(value, (int, float, str, bool)) else value)
    return out


def _identifier(context: ActionContext) -> str | None:
    return next((m.name for m in context.column_metadata if m.role == "identifier"), None)


class RoleReviewRecipe(Recipe):
    """Ask a person to review column roles inferred with low confidence: one review task per column."""

    name = "role_review"

    def __init__(self, min_confidence: float = 0.7):
        self.min_confidence = float(min_confidence)

    def execute(self, context: ActionContext) -> ActionOutcome:
        uncertain = [m for m in context.column_metadata if m.confidence < self.min_confidence and not m.user_labelled]
        leakage = (context.model_details or {}).get("leakage") or {}
        # Columns the leakage guard left out, or suspected and kept, are a person's call too.
        leak_records = [{"column": col, "role": "left out as likely leakage", "confidence": None, "reason": why,
                         "suggested_fix": f"automodel run FILE --keep {col}"} for col, why in (leakage.get("leaks") or {}).items()]
        leak_records += [{"column": col, "role": "suspected leakage, kept", "confidence": None, "reason": why,
                          "suggested_fix": f"automodel run FILE --drop {col}"} for col, why in (leakage.get("suspected") or {}).items()
                         if col not in (leakage.get("kept_by_user") or [])]
        if not uncertain and not leak_records:
            if context.needs_role_review:
                return ActionOutcome(self.name, False, f"the run was flagged for review but no column is below confidence {self.min_confidence}")
            return ActionOutcome(self.name, False, "all column roles are confident")
        records = [{"column": m.name, "role": m.role, "confidence": round(float(m.confidence), 3), "reason": m.reason} for m in uncertain]
        tasks = [{**r, "key": r["column"], "suggested_fix": f"automodel run FILE --label {r['column']}=ROLE"} for r in records]
        tasks += [{**r, "key": f"leakage:{r['column']}"} for r in leak_records]
        records += [{k: v for k, v in r.items() if k != "suggested_fix"} for r in leak_records]
        parts = []
        if uncertain:
            parts.append(f"{len(uncertain)} column role(s) need review: " + ", ".join(
                f"{r['column']} ({r['role']}, {r['confidence']:.2f})" for r in records[:5] if r["confidence"] is not None))
        if leak_records:
            parts.append(f"{len(leak_records)} column(s) to review for leakage: " + ", ".join(
                f"{r['column']} ({r['role']})" for r in leak_records[:5]))
        return ActionOutcome(self.name, True, "; ".join(parts), records, notify=True, severity="low", tasks=tasks, task_kind="role_review")


class AnomalyAlertRecipe(Recipe):
    """Alert when anomalies pass the severity thresholds, with the worst rows and their values as context.

    ``min_rate``: the share of anomalous rows that raises an alert. ``min_score``: only rows scoring at least this count
    (None: every row the analyzer flagged). Severity is high at twice ``min_rate``.
    """

    name = "anomaly_alert"
    needs_trusted_model = True

    def __init__(self, min_rate: float = 0.05, min_score: float | None = None, top: int = 10):
        self.min_rate = float(min_rate)
        self.min_score = None if min_score is None else float(min_score)
        self.top = int(top)

    def execute(self, context: ActionContext) -> ActionOutcome:
        predictions = context.predictions
        if context.task != "anomaly" or "anomaly_score" not in predictions:
            return ActionOutcome(self.name, False, "no anomaly analysis in this run")
        flagged = predictions["prediction"] == 1
        if self.min_score is not None:
            flagged &= predictions["anomaly_score"] >= self.min_score
        rows = predictions[flagged]
        rate = len(rows) / max(len(predictions), 1)
        if rate < self.min_rate:
            return ActionOutcome(self.name, False, f"anomaly rate {rate:.1%} is below the alert threshold {self.min_rate:.0%}")
        severity = "high" if rate >= 2 * self.min_rate else "medium"
        worst = rows.sort_values("anomaly_score", ascending=False, kind="stable").head(self.top)
        records = [{"row": int(i), "anomaly_score": round(float(s), 4), "values": _row_context(context, int(i))} for i, s in worst["anomaly_score"].items()]
        return ActionOutcome(self.name, True, f"{len(rows)} anomalous rows ({rate:.1%}, severity {severity}) in {context.file_name}",
                             records, notify=True, severity=severity)


STOCK_WORDS = ("stock", "inventory", "on_hand", "onhand", "level")
DEMAND_WORDS = ("demand", "sales", "sold", "units", "quantity", "orders")


class ReorderRecipe(Recipe):
    """Turn stock or demand predictions into purchase orders.

    A stock-like target (stock, inventory, on_hand) is reordered when its prediction falls below ``threshold`` (the
    reorder point), up to ``order_up_to`` (default: the threshold). A demand-like target (demand, sales, units) is
    reordered when predicted demand exceeds ``threshold`` (the stock on hand), by the shortfall.
    """

    name = "reorder"
    needs_trusted_model = True

    def __init__(self, threshold: float | None = None, order_up_to: float | None = None, target_words: tuple[str, ...] | list[str] | None = None,
                 max_orders: int = 500):
        self.threshold = None if threshold is None else float(threshold)
        self.order_up_to = None if order_up_to is None else float(order_up_to)
        self.target_words = tuple(w.lower() for w in (target_words or STOCK_WORDS + DEMAND_WORDS))
        self.max_orders = int(max_orders)

    def _direction(self, target: str) -> str | None:
        if not any(w in target for w in self.target_words):
            return None
        return "demand" if any(w in target for w in DEMAND_WORDS) and not any(w in target for w in STOCK_WORDS) else "stock"

    def execute(self, context: ActionContext) -> ActionOutcome:
        target = (context.target or "").lower()
        direction = self._direction(target)
        if context.task != "regression" or self.threshold is None or direction is None:
            return ActionOutcome(self.name, False, "no inventory prediction with a reorder threshold in this run")
        predicted = pd.to_numeric(context.predictions["prediction"], errors="coerce")
        if direction == "stock":
            level = self.order_up_to if self.order_up_to is not None else self.threshold
            low = predicted[predicted < self.threshold]
            quantities = (level - low).clip(lower=0)
            rule = f"predicted {context.target} below the reorder point {self.threshold:g}"
        else:
            low = predicted[predicted > self.threshold]
            quantities = low - self.threshold
            rule = f"predicted {context.target} above the stock on hand {self.threshold:g}"
        if low.empty:
            return ActionOutcome(self.name, False, f"no row has {rule}")
        item_column = _identifier(context)
        tasks = []
        for row, value in low.items():
            item = str(context.frame.iloc[int(row)][item_column]) if item_column and context.frame is not None else f"row {int(row)}"
            tasks.append({"key": f"PO-{context.run_id}-{int(row)}", "row": int(row), "item": item, "predicted": round(float(value), 4),
                          "threshold": self.threshold, "order_quantity": round(float(quantities[row]), 4)})
        total = round(float(quantities.sum()), 2)
        message = f"{len(tasks)} purchase order(s) proposed for {rule}, {total:g} units in total"
        return ActionOutcome(self.name, True, message, tasks[:20], notify=True, severity="medium",
                             tasks=tasks[: self.max_orders], task_kind="purchase_order")


class DriftAlertRecipe(Recipe):
    """Alert when a scoring run's rows have moved away from the rows the model was trained on (automodel.drift).

    ``threshold``: the population stability index at which a column counts as moved (0.25, the usual reading).
    ``min_columns``: how many moved columns raise the alert. Severity is high when a moved column reaches twice the threshold.
    """

    name = "drift_alert"

    def __init__(self, threshold: float = 0.25, min_columns: int = 1, top: int = 10):
        self.threshold = float(threshold)
        self.min_columns = int(min_columns)
        self.top = int(top)

    def execute(self, context: ActionContext) -> ActionOutcome:
        drift = (context.model_details or {}).get("drift")
        if not drift:
            return ActionOutcome(self.name, False, "no drift measured (only scoring runs compare their rows with the training rows)")
        if not drift.get("judged", True):
            return ActionOutcome(self.name, False, drift.get("reason") or "too few rows to judge drift")
        # A column counts only when its shift is significant for the batch's size (automodel.drift), not on PSI alone.
        moved = [m for m in drift["columns"] if m.get("status", "moved") == "moved" and m["psi"] >= self.threshold]
        if len(moved) < self.min_columns:
            top = drift["columns"][0] if drift["columns"] else None
            worst = f"; largest PSI {top['psi']:.3f} ({top['column']})" if top else ""
            return ActionOutcome(self.name, False, f"no column moved past PSI {self.threshold:g}{worst}")
        records = [{"column": m["column"], "psi": m["psi"], "kind": m["kind"]} for m in moved[: self.top]]
        shown = ", ".join(f"{r['column']} ({r['psi']:.2f})" for r in records[:5])
        severity = "high" if moved[0]["psi"] >= 2 * self.threshold else "medium"
        return ActionOutcome(self.name, True, f"{len(moved)} column(s) moved since training (PSI >= {self.threshold:g}): {shown}",
                             records, notify=True, severity=severity)
