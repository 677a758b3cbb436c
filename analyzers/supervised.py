"""What regression and classification share: choosing the rows, guarding against leakage, searching."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

from analyzers.base import AnalysisContext, AnalysisResult, Analyzer, FittedModel, library_versions
from analyzers.decision import choose_threshold, label_metrics
from analyzers.leakage import leakage_report
from analyzers.preprocess import feature_plan, plan_features
from analyzers.search import SearchResult, search
from analyzers.time_baselines import time_order_baselines
from analyzers.uncertainty import calibrate, conformal_interval
from analyzers.validation import (
    ValidationPlan,
    as_stamps,
    consecutive_blocks,
    entity_codes,
    metric_interval,
    scores_by_part,
)

SEARCH_BACKENDS = ("automodel", "pycaret")


def _is_numeric_target(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def target_kind(series: pd.Series, role: str | None = None) -> str:
    """'regression' for many distinct numbers, 'classification' for labels and few distinct values."""
    present = series.dropna()
    if role in ("categorical", "boolean") or not _is_numeric_target(series):
        return "classification"
    unique = present.nunique()
    if unique <= 2 or (unique <= 15 and (present % 1 == 0).all() and unique < len(present) * 0.05):
        return "classification"
    return "regression"


def training_rows(df: pd.DataFrame, context: AnalysisContext, task: str = "regression", notes: list | None = None) -> pd.DataFrame:
    """Labelled rows, without the duplicates and outliers of the training mask. Up to MAX_ROWS_FULL rows every one is
    used; above it a sample of MAX_ROWS_FULL rows, stratified by class for classifiers (each class keeps its share),
    and ``notes`` says so."""
    rows = df[df[context.target].notna()]
    if context.training_mask is not None:
        mask = context.training_mask.reindex(rows.index).fillna(True).astype(bool)
        if mask.sum() >= max(20, len(rows) // 2):
            rows = rows[mask]
    if len(rows) > context.max_rows_full:
        labels = rows[context.target].astype(str)
        counts = labels.value_counts()
        if task == "classification" and counts.min() >= 2 and len(counts) < context.max_rows_full // 2:
            from sklearn.model_selection import train_test_split

            keep, _ = train_test_split(rows.index.to_numpy(), train_size=context.max_rows_full, random_state=context.random_state,
                                       stratify=labels.to_numpy())
            rows, how = rows.loc[np.sort(keep)], "a sample stratified by class"
        else:
            rows, how = rows.sample(context.max_rows_full, random_state=context.random_state).sort_index(), "a random sample"
        if notes is not None:
            notes.append(f"trained on {len(rows)} of {int(df[context.target].notna().sum())} labelled rows ({how}; "
                         f"MAX_ROWS_FULL is {context.max_rows_full})")
    return rows


def run_search(X: pd.DataFrame, y: pd.Series, task: str, plan: dict, context: AnalysisContext, groups=None) -> SearchResult:
    """The configured backend: our own search or PyCaret's compare_models. ``groups``: entity codes for grouped folds."""
    backend = (context.search_backend or "automodel").lower()
    if backend == "pycaret":
        from analyzers.pycaret_backend import pycaret_search

        return pycaret_search(X, y, task, plan, context.time_budget_s, context.random_state, context.n_jobs, context.time_column, context.metric)
    if backend != "automodel":
        raise ValueError(f"unknown search backend {backend!r}; choose one of {', '.join(SEARCH_BACKENDS)}")
    return search(X, y, task, plan, None, context.time_budget_s, context.random_state, context.time_column, n_jobs=context.n_jobs,
                  metric=context.metric, max_rows_first_pass=context.max_rows_first_pass, max_rows_full=context.max_rows_full,
                  groups=groups, families=context.model_families)


def frame_positions(df: pd.DataFrame, rows: pd.DataFrame, holdout: pd.DataFrame | None) -> pd.DataFrame | None:
    """The search's held-out predictions with ``row`` turned from a position among the training rows into a
    position in the whole frame (so it lines up with the predictions file), sorted by it."""
    if holdout is None or holdout.empty:
        return None
    out = holdout.copy()
    if df.index.is_unique:
        out["row"] = df.index.get_indexer(rows.index[out["row"].to_numpy()])
    elif len(rows) != len(df):
        return None  # a repeated index cannot place a subset of rows; every row trained means positions already agree
    return out.sort_values("row", kind="stable").reset_index(drop=True)


class SupervisedAnalyzer(Analyzer):
    """Base of RegressionAnalyzer and ClassificationAnalyzer."""

    task = "regression"

    def _role(self, context: AnalysisContext) -> str | None:
        return next((m.role for m in context.metas if m.name == context.target), None)

    def suitability_score(self, df: pd.DataFrame, context: AnalysisContext) -> float:
        if not context.target or context.target not in df:
            return 0.0
        return 0.9 if target_kind(df[context.target], self._role(context)) == self.task else 0.05

    def prepare_target(self, y: pd.Series) -> pd.Series:
        return y

    def run(self, df: pd.DataFrame, context: AnalysisContext) -> AnalysisResult:
        started = time.perf_counter()
        dropped = {col: "left out by the user (--drop)" for col in context.drop if col != context.target}
        plan, excluded = feature_plan(context.metas, context.target, {**context.exclude, **dropped})
        notes: list[str] = [f"left out {col!r}: {why}" for col, why in dropped.items()]
        leakage = {"leaks": {}, "suspected": {}, "dropped_by_user": dropped, "kept_by_user": list(context.keep)}
        if context.leakage_guard:
            report = leakage_report(df, context.target, self.task, plan_features(plan), context.random_state, context.keep)
            leakage.update(report)
            if report["leaks"]:
                excluded.update(report["leaks"])
                plan, _ = feature_plan(context.metas, context.target, excluded)
                notes += [f"left out {col!r}: {why}" for col, why in report["leaks"].items()]
            notes += [f"suspected but kept {col!r}: {why}" for col, why in report["suspected"].items()]
        features = plan_features(plan)
        if not features:
            raise ValueError("no usable feature columns")
        rows = training_rows(df, context, self.task, notes)
        y = self.prepare_target(rows[context.target])
        # The date column that orders the rows travels with the features so validation can respect time.
        columns = features + ([context.time_column] if context.time_column in rows.columns and context.time_column not in features else [])
        # The leakage checks came out of the same budget.
        budget = max(context.time_budget_s - (time.perf_counter() - started), 0.2 * context.time_budget_s)
        validation = context.validation or ValidationPlan()
        groups = entity_codes(rows, validation.columns) if validation.scheme == "group" else None
        found = run_search(rows[columns], y, self.task, plan, dataclasses.replace(context, time_budget_s=budget), groups)
        fitted = FittedModel(
            pipeline=found.pipeline, task=self.task, target=context.target, feature_columns=features,
            classes=found.classes, analyzer=self.name, model_name=found.best_name, versions=library_versions(),
        )
        details = {"search": found.details, "leakage": leakage,
                   "validation": {**validation.to_dict(), "folds": found.details.get("validation")}}
        self.judge_against_scheme(rows, y, found, validation, context, details)
        holdout = frame_positions(df, rows, found.holdout)
        if holdout is not None:
            details["holdout_basis"] = found.details.get("holdout_basis", "held-out rows")
        own = found.own_holdout if found.own_holdout is not None else found.holdout
        self.attach_uncertainty(fitted, own, context, details)
        metrics = dict(found.metrics)
        holdout = self.attach_threshold(fitted, holdout, context, details, metrics, notes, frame_positions(df, rows, own))
        trusted, trust_notes = self.trust(metrics, y, context)
        if details.get("time_baselines"):
            best = max(details["time_baselines"], key=lambda b: b["score"])
            metric = best["metric"]
            if metrics.get(metric, -np.inf) <= best["score"]:
                trusted = False
                trust_notes.append(f"{metric} {metrics.get(metric, float('nan')):.3f} on the latest period does not beat the "
                                   f"{best['model']} baseline ({best['score']:.3f} on the same rows)")
        return AnalysisResult(
            analyzer=self.name, task=self.task, target=context.target, metrics=metrics,
            model_info={"model": found.best_name, "features": len(features), "training_rows": len(rows),
                        "candidates": len(found.leaderboard), "backend": context.search_backend,
                        "validation": found.details.get("validation"), "final_fit_rows": found.details.get("final_fit_rows")},
            fitted=fitted, leaderboard=found.leaderboard, trusted=trusted, notes=notes + trust_notes, excluded_columns=excluded,
            details=details, holdout=holdout,
        )

    def trust(self, metrics: dict, y: pd.Series, context: AnalysisContext) -> tuple[bool, list[str]]:
        return True, []

    def judge_against_scheme(self, rows: pd.DataFrame, y: pd.Series, found: SearchResult, validation: ValidationPlan,
                             context: AnalysisContext, details: dict) -> None:
        """The headline metric's interval (a bootstrap over the held-out rows, entities or periods the scheme held out,
        widened to the scores of its folds or blocks where rows are not exchangeable), the same interval for the
        constant baseline should the run fall back to it, and, for time order, the time-order baselines scored on the
        same latest period."""
        if found.final_split is None or found.holdout is None or found.holdout.empty:
            return
        train, valid = (np.asarray(part, dtype=int) for part in found.final_split)
        in_valid = found.holdout["row"].isin(valid).to_numpy()
        held = found.holdout[in_valid]
        metric = "r2" if self.task == "regression" else "f1"
        folds = found.holdout["fold"].to_numpy() if "fold" in found.holdout.columns else np.zeros(len(found.holdout), dtype=int)
        several_folds = len(np.unique(folds)) > 1
        scored_for_parts, parts, part_name = held, None, ""
        if validation.scheme == "time" and validation.columns[0] in rows.columns:
            stamps = as_stamps(rows[validation.columns[0]].reset_index(drop=True))
            days = stamps.dt.normalize() if (stamps.dt.normalize() != stamps).any() else stamps
            units, unit_name = days.iloc[held["row"].to_numpy()].to_numpy(), "periods (whole days or time stamps)"
            entities = entity_codes(rows, validation.entity) if validation.entity else None
            details["time_baselines"] = time_order_baselines(rows[validation.columns[0]], y, train, valid, self.task, entities)
            if several_folds:
                scored_for_parts, parts, part_name = found.holdout, folds, "forward folds, each a later period"
            else:
                parts, part_name = consecutive_blocks(units), "consecutive thirds of the latest period"
        elif validation.scheme == "group":
            units, unit_name = entity_codes(rows, validation.columns)[held["row"].to_numpy()], "entities"
            # Each grouped fold is a batch of unseen entities of about the size a new batch has; a single grouped holdout
            # is one such batch already, and the bootstrap over its entities is its spread.
            if several_folds:
                parts, part_name = folds[in_valid], "grouped folds, each a set of unseen entities"
        else:
            units, unit_name = None, "rows"

        def predictions_of(frame):
            return (frame["prediction"].to_numpy() if self.task == "regression"
                    else frame[[f"proba_{c}" for c in found.classes]].to_numpy())

        def interval_of(predicted, predicted_for_parts):
            by_part = ([] if parts is None else
                       scores_by_part(metric, scored_for_parts["actual"].to_numpy(), predicted_for_parts, found.classes, parts))
            return metric_interval(metric, held["actual"].to_numpy(), predicted, units, unit_name, found.classes,
                                   seed=context.random_state, part_scores=by_part, part_name=part_name)

        interval = interval_of(predictions_of(held), predictions_of(scored_for_parts))
        if interval:
            details["metric_interval"] = interval
        constant = self._constant_prediction(y.iloc[train], found.classes)
        if constant is not None:
            # For every row, what the fallback predicts: the training mean, or the training class shares.
            baseline = interval_of(np.tile(constant, (len(held), 1)).squeeze(), np.tile(constant, (len(scored_for_parts), 1)).squeeze())
            if baseline and self.task == "regression" and baseline["high"] != 0.0:
                # A constant scores R² 0 exactly on a period whose mean is the constant, and never more: the next period
                # can come that close whatever this one's distance from the training mean, and no spread of parts can
                # carry it past.
                baseline["high"] = 0.0
                baseline["method"] += "; up to 0, what a constant scores on a period whose mean it predicts, and never more"
            if baseline:
                details["baseline_interval"] = {**baseline, "model": "baseline (mean)" if self.task == "regression" else "baseline (class prior)"}

    def _constant_prediction(self, y_train: pd.Series, classes: list | None) -> np.ndarray | None:
        """What the fallback baseline predicts for every row, from the training rows: their mean, or their class shares."""
        if len(y_train) == 0:
            return None
        if self.task == "regression":
            return np.array([float(pd.to_numeric(y_train, errors="coerce").mean())])
        shares = y_train.astype(str).value_counts(normalize=True)
        return np.array([float(shares.get(str(c), 0.0)) for c in classes])

    def attach_threshold(self, fitted: FittedModel, holdout: pd.DataFrame | None, context: AnalysisContext, details: dict,
                         metrics: dict, notes: list, own: pd.DataFrame | None = None) -> pd.DataFrame | None:
        """A binary model's decision threshold, from the served model's own held-out (calibrated) probabilities ``own``
        (analyzers.decision): when it beats 0.5 on rows that did not choose it, the model keeps it, and the reported label
        metrics and held-out labels are ``holdout``'s (the predictions of winners chosen without each row) at that
        threshold. Returns the held-out predictions, relabelled when the threshold is kept."""
        if self.task != "classification" or holdout is None or not fitted.classes or len(fitted.classes) != 2:
            return holdout
        columns = [f"proba_{c}" for c in fitted.classes]

        def calibrated(frame: pd.DataFrame) -> pd.DataFrame:
            if fitted.calibrator is None:
                return frame
            out = frame.copy()
            out[columns] = fitted.calibrator.transform(frame[columns].to_numpy(dtype=float))
            return out

        decision = choose_threshold(calibrated(own if own is not None else holdout), fitted.classes, context.random_state)
        if decision is None:
            return holdout
        decision.pop("labels"), decision.pop("rows_scored")
        details["decision_threshold"] = decision
        if not decision["kept"]:
            return holdout
        fitted.threshold = decision["threshold"]
        view = calibrated(holdout)
        labels = np.where(view[columns[1]].to_numpy(dtype=float) >= fitted.threshold, fitted.classes[1], fitted.classes[0])
        metrics.update(label_metrics(view["actual"], labels, fitted.classes))
        notes.append(f"predicts {fitted.classes[1]!r} from a probability of {decision['threshold']:.3f} up, the threshold with the best "
                     f"macro F1 on held-out rows (cross-fitted macro F1 {decision['f1_at_threshold']:.3f}, against "
                     f"{decision['f1_at_0.5']:.3f} at 0.5)")
        out = holdout.copy()
        out["prediction"] = labels
        return out

    def attach_uncertainty(self, fitted: FittedModel, holdout: pd.DataFrame | None, context: AnalysisContext, details: dict) -> None:
        """Prediction intervals (regression) or a probability calibrator (classification) from the held-out predictions."""
        if self.task == "regression":
            fitted.interval = conformal_interval(holdout, context.interval_coverage)
            if fitted.interval:
                details["interval"] = fitted.interval
        elif fitted.classes:
            fitted.calibrator, report = calibrate(holdout, fitted.classes, context.random_state)
            if report:
                details["calibration"] = report


__all__ = ["SupervisedAnalyzer", "run_search", "target_kind", "training_rows"]
