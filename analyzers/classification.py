"""ClassificationAnalyzer: binary and multiclass; logistic regression, random forest, extra trees, XGBoost,
LightGBM; class-weighted and SMOTE variants compete when classes are imbalanced; probabilities for every class."""

from __future__ import annotations

import pandas as pd

from analyzers.base import AnalysisContext
from analyzers.supervised import SupervisedAnalyzer

MIN_F1_LIFT = 0.05  # over always predicting the majority class


def majority_macro_f1(y: pd.Series) -> float:
    """Macro F1 of always predicting the most frequent class: the bar a classifier must clear."""
    shares = y.astype(str).value_counts(normalize=True)
    top = float(shares.iloc[0])
    return (2 * top / (1 + top)) / len(shares)


class ClassificationAnalyzer(SupervisedAnalyzer):
    name = "ClassificationAnalyzer"
    task = "classification"

    def prepare_target(self, y: pd.Series) -> pd.Series:
        return y.astype(object).map(lambda v: v.item() if hasattr(v, "item") else v)

    def trust(self, metrics: dict, y: pd.Series, context: AnalysisContext) -> tuple[bool, list[str]]:
        bar = majority_macro_f1(y)
        notes = []
        if metrics["f1"] < bar + MIN_F1_LIFT:
            notes.append(f"macro F1 {metrics['f1']:.3f} barely beats always predicting the majority class ({bar:.3f})")
        if metrics.get("roc_auc", 1.0) < 0.6:
            notes.append(f"ROC-AUC {metrics['roc_auc']:.3f} is close to chance")
        return not notes, notes
