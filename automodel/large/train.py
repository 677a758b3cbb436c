"""Training on a table larger than memory: the model search on a stratified sample, then the chosen model refit on
every row with LightGBM's (or XGBoost's) Dask interface, judged against the sampled model on held-out rows.

Rows are split once, by a hash of their position (``automodel.large.table.held_out_mask``): a held-out share (about
200,000 rows, 1-10 % of the table) that neither model ever trains on, and the rest. The search (``stages.train_model``,
unchanged) runs on a sample of the rest, stratified by the target's classes, of ``AUTOMODEL_LARGE_SEARCH_ROWS`` rows.
Its model's preprocessing, fitted on the sample, is applied to every other row on the Dask workers, and the booster is
refit there with the same hyperparameters and more rounds for the extra rows. The all-rows model replaces the
sampled one only if it scores at least as well on the held-out rows; the run records both scores and the rows each saw.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from automodel.atomic import write_with_atomic
from automodel.large.table import ROW, TableRef, connect, held_out_mask, held_out_share, held_out_sql, quote, restore_dtypes

MAX_ROUND_GROWTH = 2.0  # rounds of the all-rows refit: the sampled model's times (rows ratio)^0.25, at most this
STRATIFY_MAX_CLASSES = 50
MIN_ROWS_PER_CLASS = 50


def headline_metric(task: str) -> str:
    """What the sampled and the all-rows model are compared by on the held-out rows (higher is better for both)."""
    return "r2" if task == "regression" else "roc_auc"


def search_sample(ref: TableRef, target: str | None, rows: int, share: float, settings=None) -> pd.DataFrame:
    """About ``rows`` rows outside the held-out share with a target value, in file order. With a target of few values,
    stratified: each class keeps its share of the table (and at least MIN_ROWS_PER_CLASS rows where it has them)."""
    source = f"read_parquet('{ref.glob}')"
    kept = f"NOT ({held_out_sql(share)})" + (f" AND {quote(target)} IS NOT NULL" if target else "")
    names = ", ".join(quote(c) for c in [ROW, *ref.columns])
    distinct = ((ref.profile or {}).get("columns", {}).get(target) or {}).get("distinct") if target else None
    with connect(settings) as con:
        available = con.execute(f"SELECT count(*) FROM {source} WHERE {kept}").fetchone()[0]
        fraction = min(1.0, rows / max(available, 1))
        if fraction >= 1.0:
            query = f"SELECT {names} FROM {source} WHERE {kept} ORDER BY {ROW}"
        elif target and distinct is not None and distinct <= STRATIFY_MAX_CLASSES:
            column = quote(target)
            query = (f"WITH pool AS (SELECT {names}, row_number() OVER (PARTITION BY {column} ORDER BY hash({ROW})) AS pick, "
                     f"count(*) OVER (PARTITION BY {column}) AS class_rows FROM {source} WHERE {kept}) "
                     f"SELECT {names} FROM pool WHERE pick <= greatest(ceil(class_rows * {fraction}), least(class_rows, {MIN_ROWS_PER_CLASS})) "
                     f"ORDER BY {ROW}")
        else:
            query = f"SELECT {names} FROM {source} WHERE {kept} AND hash({ROW}) % 1000000 < {int(fraction * 1_000_000)} ORDER BY {ROW}"
        frame = con.execute(query).df()
    return ref._as_user_sees(restore_dtypes(frame, ref.columns))


def held_out_rows(ref: TableRef, share: float, settings=None) -> pd.DataFrame:
    """Every held-out row, in file order (the dashboard's evaluation rows too)."""
    return ref.read(where=held_out_sql(share), settings=settings)


# ---- the all-rows refit ------------------------------------------------------------------------------------------

@dataclass
class Refit:
    fitted: object | None  # a FittedModel, or None when the chosen model cannot be refit this way
    rows: int = 0
    seconds: float = 0.0
    rounds: int | None = None
    library: str | None = None
    reason: str = ""
    worker_peaks: dict = field(default_factory=dict)


def _boosted_core(pipeline):
    """(prep, estimator, weight note) of the model to refit: the pipeline itself, or an ensemble's heaviest boosted member."""
    from sklearn.pipeline import Pipeline

    from analyzers.models import ClassLabelPipeline, WeightedEnsemble

    core = pipeline.pipeline if isinstance(pipeline, ClassLabelPipeline) else pipeline
    note = ""
    if isinstance(core, WeightedEnsemble):
        boosted = [(w, m) for w, m in zip(core.weights, core.members) if isinstance(m, Pipeline) and _library(m.named_steps.get("model"))]
        if not boosted:
            return None, None, ""
        weight, core = max(boosted, key=lambda pair: pair[0])
        note = f" (the ensemble's LightGBM/XGBoost member of weight {weight:.2f})"
    if not isinstance(core, Pipeline) or "prep" not in core.named_steps or "model" not in core.named_steps:
        return None, None, ""
    estimator = core.named_steps["model"]
    return (core.named_steps["prep"], estimator, note) if _library(estimator) else (None, None, "")


def _library(estimator) -> str | None:
    if estimator is None:
        return None
    module = type(estimator).__module__
    for base in type(estimator).__mro__:
        if base.__module__.startswith("lightgbm"):
            return "lightgbm"
        if base.__module__.startswith("xgboost"):
            return "xgboost"
    return "lightgbm" if module.startswith("lightgbm") else None


def _rounds(estimator, library: str) -> int:
    if library == "lightgbm":
        best = getattr(estimator, "best_iteration_", None)
        return int(best) if best else int(estimator.n_estimators)
    best = getattr(estimator, "best_iteration", None)
    return int(best) + 1 if best is not None else int(estimator.n_estimators)


def _partition_matrix(part: pd.DataFrame, prep, features: list, target: str, share: float, lookup: dict | None, dtypes: dict,
                      labels: dict | None, width: int) -> pd.DataFrame:
    """One Parquet part as the refit's matrix: held-out rows and rows without a target left out, the sample's fitted
    preprocessing applied, the target as class codes (runs on a Dask worker)."""
    import warnings

    from automodel.labels import restore_labels

    part = restore_labels(restore_dtypes(part, dtypes), target, labels)
    keep = ~held_out_mask(part[ROW].to_numpy(), share) & part[target].notna().to_numpy()
    part = part.loc[keep]
    columns = [f"f{i}" for i in range(width)]
    if part.empty:
        return pd.DataFrame({**{c: pd.Series(dtype=np.float32) for c in columns},
                             "__y": pd.Series(dtype=np.int64 if lookup is not None else np.float64)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X = np.asarray(prep.transform(part[features]), dtype=np.float32)
    out = pd.DataFrame(X, columns=columns)
    y = part[target]
    out["__y"] = (y.map(lambda v: lookup.get(str(v), -1)).to_numpy(dtype=np.int64) if lookup is not None
                  else pd.to_numeric(y, errors="coerce").to_numpy(dtype=np.float64))
    return out[out["__y"] >= 0] if lookup is not None else out


def refit_all_rows(ref: TableRef, fitted, share: float, sampled_rows: int, client, threads_per_worker: int = 1) -> Refit:
    """The chosen model's booster refit on every non-held-out row on the Dask cluster of ``client``."""
    import dask.dataframe as dd
    from sklearn.pipeline import Pipeline

    from analyzers.models import ClassLabelPipeline

    prep, estimator, note = _boosted_core(fitted.pipeline)
    if prep is None:
        return Refit(None, reason=f"the chosen model ({fitted.model_name}) is not LightGBM or XGBoost, which have Dask interfaces; "
                                  "the sampled model is the final one")
    if type(estimator).__name__ == "ResampledClassifier":
        return Refit(None, reason="the chosen model oversamples its training rows (SMOTE), which the Dask refit does not do")
    library = _library(estimator)
    started = time.perf_counter()
    target, features = fitted.target, list(fitted.feature_columns)
    lookup = {str(c): i for i, c in enumerate(fitted.classes)} if fitted.task == "classification" else None
    probe = ref.read(features, where=f"{ROW} < 50")
    width = np.asarray(prep.transform(probe[features])).shape[1]
    meta = pd.DataFrame({**{f"f{i}": pd.Series(dtype=np.float32) for i in range(width)},
                         "__y": pd.Series(dtype=np.int64 if lookup is not None else np.float64)})
    parts = dd.read_parquet([str(p) for p in ref.parts], columns=[ROW, *features, target])
    matrix = parts.map_partitions(_partition_matrix, prep, features, target, share, lookup, dict(ref.columns), ref.target_labels, width,
                                  meta=meta).persist()
    X = matrix[[f"f{i}" for i in range(width)]].to_dask_array(lengths=True)
    y = matrix["__y"].to_dask_array(lengths=True)
    rows = int(X.shape[0])
    base_rounds = _rounds(estimator, library)
    rounds = max(10, int(math.ceil(base_rounds * min(MAX_ROUND_GROWTH, max(1.0, (rows / max(sampled_rows, 1)) ** 0.25)))))
    params = {k: v for k, v in estimator.get_params().items() if k not in ("categorical_indices",)}
    params.update(n_estimators=rounds, n_jobs=threads_per_worker)
    categorical = list(getattr(estimator, "categorical_indices", ()) or ())
    if library == "lightgbm":
        import logging

        import lightgbm

        lightgbm.register_logger(logging.getLogger("lightgbm"))  # its Python messages to logging, not standard output
        cls = lightgbm.DaskLGBMRegressor if fitted.task == "regression" else lightgbm.DaskLGBMClassifier
        params.pop("early_stopping_round", None)
        model = cls(client=client, **params)
        model.fit(X, y, **({"categorical_feature": categorical} if categorical else {}))
        local = model.to_local()
    else:
        import tempfile

        import xgboost

        params.pop("early_stopping_rounds", None)
        cls = xgboost.dask.DaskXGBRegressor if fitted.task == "regression" else xgboost.dask.DaskXGBClassifier
        model = cls(**params)
        model.client = client
        model.fit(X, y)
        local = (xgboost.XGBRegressor if fitted.task == "regression" else xgboost.XGBClassifier)()
        with tempfile.TemporaryDirectory() as folder:
            model.save_model(str(Path(folder) / "model.json"))
            local.load_model(str(Path(folder) / "model.json"))
    del matrix
    pipeline = Pipeline([("prep", prep), ("model", local)])
    if isinstance(fitted.pipeline, ClassLabelPipeline):
        pipeline = ClassLabelPipeline(pipeline, fitted.pipeline.classes_)
    # The sampled model's calibrator and interval came from its own errors; the refit gets its own from the held-out rows.
    refit = replace(fitted, pipeline=pipeline, calibrator=None, interval=None,
                    model_name=f"{fitted.model_name} refit on all rows{note}")
    return Refit(refit, rows=rows, seconds=round(time.perf_counter() - started, 3), rounds=rounds, library=library)


# ---- judging both on the held-out rows ---------------------------------------------------------------------------

def held_out_scores(fitted, frame: pd.DataFrame, chunk_rows: int = 100_000) -> tuple[dict, pd.DataFrame]:
    """The model's metrics on held-out rows (with a target) and its predictions there."""
    from analyzers.search import classification_metrics, regression_metrics
    from automodel.stages import predict_rows

    known = frame[frame[fitted.target].notna()]
    parts = [predict_rows(fitted, known.iloc[i: i + chunk_rows]) for i in range(0, len(known), chunk_rows)]
    predictions = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if fitted.task == "regression":
        metrics = regression_metrics(known[fitted.target].astype(float), predictions["prediction"])
    else:
        proba = predictions[[f"proba_{c}" for c in fitted.classes]].to_numpy()
        metrics = classification_metrics(known[fitted.target].astype(object), proba, fitted.classes)
    return metrics, predictions


def holdout_frame(frame: pd.DataFrame, fitted, predictions: pd.DataFrame) -> pd.DataFrame:
    """``AnalysisResult.holdout`` for the held-out rows: ``row`` is the position in ``frame`` (the report's rows)."""
    known = np.flatnonzero(frame[fitted.target].notna().to_numpy())
    out = pd.DataFrame({"row": known, "actual": frame[fitted.target].iloc[known].to_numpy()})
    for column in predictions.columns:
        out[column] = predictions[column].to_numpy()
    return out


def calibrated_refit(refit, frame: pd.DataFrame, coverage: float):
    """The refit's interval (regression) from its held-out errors; classifiers keep their raw probabilities."""
    from analyzers.uncertainty import conformal_interval

    if refit.task != "regression":
        return refit
    metrics, predictions = held_out_scores(refit, frame)
    holdout = holdout_frame(frame, refit, predictions)
    refit.interval = conformal_interval(holdout, coverage)
    return refit


def train_large(ref: TableRef, profile, model_path: Path, *, settings, dask_config, train_kwargs: dict, log=print):
    """``stages.train_model`` on a stratified sample, then the all-rows refit on Dask; returns the ModelOutcome with
    ``details["training"]`` saying which rows trained what, and the rows the report shows (the held-out rows)."""
    from automodel import stages
    from automodel.large.cluster import dask_client

    share = held_out_share(ref.rows)
    sample = search_sample(ref, profile.target, int(settings.large_search_rows), share, settings)
    sample_positions = sample.pop(ROW).to_numpy()
    log(f"out of core: searching on a sample of {len(sample)} of {ref.rows} rows")
    kwargs = dict(train_kwargs)
    kwargs["max_rows_full"] = max(int(kwargs.get("max_rows_full") or 0), len(sample))
    outcome = stages.train_model(sample, profile, model_path, **kwargs)
    held = held_out_rows(ref, share, settings)
    held_positions = held.pop(ROW).to_numpy()
    search_details = outcome.details.get("search") or {}
    training = {"path": "out-of-core", "rows": ref.rows, "search_rows": len(sample),
                "final_rows": int(search_details.get("final_fit_rows") or len(sample)), "held_out_rows": len(held),
                "final_model": "sampled", "cluster": None}
    if not outcome.model_path or outcome.task not in ("classification", "regression"):
        training["reason"] = "no supervised model was trained; nothing to refit"
        outcome.details["training"] = training
        return outcome, held, held_positions
    bundle = stages.load_model_bundle(Path(outcome.model_path))
    sampled = bundle["fitted"]
    metric = headline_metric(sampled.task)
    sampled_metrics, sampled_predictions = held_out_scores(sampled, held)
    training.update(metric=metric, sampled_score=sampled_metrics.get(metric), cluster=dask_config.describe())
    if _boosted_core(sampled.pipeline)[0] is None:
        refit = Refit(None, reason=f"the chosen model ({sampled.model_name}) is not LightGBM or XGBoost, which have Dask interfaces; "
                                   "the sampled model is the final one")
    else:
        log(f"refitting {sampled.model_name} on all rows on {dask_config.describe()}")
        with dask_client(dask_config) as client:
            refit = refit_all_rows(ref, sampled, share, training["final_rows"], client, dask_config.threads_per_worker)
    chosen, chosen_metrics, chosen_predictions = sampled, sampled_metrics, sampled_predictions
    if refit.fitted is None:
        training["reason"] = refit.reason
    else:
        refit_model = calibrated_refit(refit.fitted, held, settings.interval_coverage)
        refit_metrics, refit_predictions = held_out_scores(refit_model, held)
        refit_score, sampled_score = refit_metrics.get(metric), sampled_metrics.get(metric)
        gain = None if refit_score is None or sampled_score is None else refit_score - sampled_score
        training.update(refit_rows=refit.rows, refit_seconds=refit.seconds, refit_rounds=refit.rounds, refit_library=refit.library,
                        refit_score=refit_score, gain=gain)
        if gain is None or gain >= 0:
            chosen, chosen_metrics, chosen_predictions = refit_model, refit_metrics, refit_predictions
            training.update(final_model="all-rows refit", final_rows=refit.rows)
        else:
            training["reason"] = (f"the all-rows refit scored {refit_score:.4f} {metric} on the held-out rows, below the sampled "
                                  f"model's {sampled_score:.4f}; the sampled model is kept")
    basis = (f"{len(held)} held-out rows of the whole table ({share:.0%}, chosen by row position), which neither the sampled "
             "nor the all-rows model trained on")
    holdout = holdout_frame(held, chosen, chosen_predictions)
    bundle.update(fitted=chosen, holdout=holdout, holdout_basis=basis, large_training=training)
    write_with_atomic(Path(outcome.model_path), lambda tmp: joblib.dump(bundle, tmp))
    outcome.metrics = chosen_metrics
    outcome.holdout = holdout
    outcome.details["holdout_basis"] = basis
    outcome.details["training"] = training
    outcome.model_info = {**outcome.model_info, "model": chosen.model_name, "final_fit_rows": training["final_rows"]}
    if training.get("gain") is not None:
        outcome.notes.append(f"refit on all {training.get('refit_rows')} training rows on {training['cluster']}: {metric} on the "
                             f"held-out rows {training['sampled_score']:.4f} (sampled model, {training['search_rows']} rows) -> "
                             f"{training['refit_score']:.4f} ({training['gain']:+.4f})")
    elif training.get("reason"):
        outcome.notes.append(training["reason"])
    return outcome, held, held_positions
