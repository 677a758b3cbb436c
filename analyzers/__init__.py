"""Analyzers: the contract, the registry and the selection logic.

A third-party analyzer is a class implementing ``analyzers.base.Analyzer`` exposed in the
``automodel.analyzers`` entry point group; it joins ``REGISTRY`` without any edit here.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points

# LightGBM and XGBoost use OpenMP; its default spin-waiting made a 2-thread fit 10-50x slower on 2 shared
# cores. Passive waiting must be chosen before the OpenMP runtime loads, so before those imports.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from analyzers.anomaly import AnomalyAnalyzer
from analyzers.base import AnalysisContext, AnalysisResult, Analyzer, FittedModel
from analyzers.classification import ClassificationAnalyzer
from analyzers.cluster import ClusterAnalyzer
from analyzers.descriptive import DescriptiveAnalyzer
from analyzers.regression import RegressionAnalyzer

ENTRY_POINT_GROUP = "automodel.analyzers"

REGISTRY: dict[str, type[Analyzer]] = {
    cls.name: cls for cls in (RegressionAnalyzer, ClassificationAnalyzer, ClusterAnalyzer, AnomalyAnalyzer, DescriptiveAnalyzer)
}


def load_plugins() -> dict[str, type[Analyzer]]:
    """Add analyzers published by installed packages through the entry point group."""
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        cls = entry.load()
        if isinstance(cls, type) and issubclass(cls, Analyzer):
            REGISTRY.setdefault(cls.name, cls)
    return REGISTRY


__all__ = [
    "REGISTRY", "Analyzer", "AnalysisContext", "AnalysisResult", "FittedModel", "load_plugins",
    "RegressionAnalyzer", "ClassificationAnalyzer", "ClusterAnalyzer", "AnomalyAnalyzer", "DescriptiveAnalyzer",
]
