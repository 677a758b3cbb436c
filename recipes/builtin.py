"""The three built-in recipes: role_review, anomaly_alert and reorder."""

from __future__ import annotations

from recipes.base import ActionContext, ActionOutcome, Recipe


class RoleReviewRecipe(Recipe):
    """Ask a person to review column roles inferred with low confidence."""

    name = "role_review"

    def __init__(self, min_confidence: float = 0.7):
        self.min_confidence = min_confidence

    def execute(self, context: ActionContext) -> ActionOutcome:
        uncertain = [m for m in context.column_metadata if m.confidence < self.min_confidence and not m.user_labelled]
        if not uncertain and not context.needs_role_review:
            return ActionOutcome(self.name, False, "all column roles are confident")
        records = [{"column": m.name, "role": m.role, "confidence": m.confidence, "reason": m.reason} for m in uncertain]
        shown = ", ".join(f"{r['column']} ({r['role']}, {r['confidence']:.2f})" for r in records[:5])
        return ActionOutcome(self.name, True, f"{len(records)} column role(s) need review: {shown}", records, notify=True)


class AnomalyAlertRecipe(Recipe):
    """Alert when the share of anomalous rows passes a severity threshold."""

    name = "anomaly_alert"

    def __init__(self, min_rate: float = 0.05):
        self.min_rate = min_rate

    def execute(self, context: ActionContext) -> ActionOutcome:
        if context.task != "anomaly" or "anomaly_score" not in context.predictions:
            return ActionOutcome(self.name, False, "no anomaly analysis in this run")
        flagged = context.predictions[context.predictions["prediction"] == 1]
        rate = len(flagged) / max(len(context.predictions), 1)
        if rate < self.min_rate:
            return ActionOutcome(self.name, False, f"anomaly rate {rate:.1%} is below the alert threshold {self.min_rate:.0%}")
        worst = flagged.sort_values("anomaly_score", ascending=False).head(10)
        records = [{"row": int(i), "anomaly_score": float(s)} for i, s in worst["anomaly_score"].items()]
        severity = "high" if rate >= 2 * self.min_rate else "medium"
        return ActionOutcome(self.name, True, f"{len(flagged)} anomalous rows ({rate:.1%}, severity {severity}) in {context.file_name}", records, notify=True)


class ReorderRecipe(Recipe):
    """Turn demand or stock predictions below a reorder threshold into purchase-order records."""

    name = "reorder"

    def __init__(self, threshold: float | None = None, target_words: tuple[str, ...] = ("stock", "inventory", "on_hand", "quantity", "demand")):
        self.threshold = threshold
        self.target_words = target_words

    def execute(self, context: ActionContext) -> ActionOutcome:
        target = (context.target or "").lower()
        if context.task != "regression" or self.threshold is None or not any(w in target for w in self.target_words):
            return ActionOutcome(self.name, False, "no inventory prediction with a reorder threshold in this run")
        low = context.predictions[context.predictions["prediction"] < self.threshold]
        records = [{"row": int(i), "predicted": float(v), "order_quantity": float(self.threshold - v)} for i, v in low["prediction"].items()]
        if not records:
            return ActionOutcome(self.name, False, f"no prediction below the reorder threshold {self.threshold}")
        return ActionOutcome(self.name, True, f"{len(records)} purchase order(s) proposed below threshold {self.threshold}", records, notify=True)
