"""The search itself: successive halving over the portfolio, local search, the ensemble and the final model, within
the time budget (see the package docstring)."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from analyzers.models import ClassLabelPipeline
from analyzers.preprocess import DATE_PARTS
from analyzers.search.budget import BUDGET_SAFETY, SMALL_FIT_ROWS, estimate_seconds, final_reserve, machine_busy
from analyzers.search.ensemble import greedy_ensemble, selection_held_out
from analyzers.search.folds import (
    MIN_RUNG_ROWS,
    SMALL_TABLE_ROWS,
    PreparedFolds,
    can_stratify,
    encode_target,
    fold_of_rows,
    holdout_basis,
    holdout_predictions,
    strata,
    time_order,
    validation_folds,
)
from analyzers.search.large_tables import STRONG_DEFAULT_ROWS, LargeTables
from analyzers.validation import as_stamps, period_codes
from analyzers.search.portfolio import (
    EXTRA_TRIALS_PATIENCE,
    MAX_EXTRA_TRIALS,
    Candidate,
    classification_candidates,
    expected_cost,
    log_target_candidates,
    make_estimator,
    perturb,
    regression_candidates,
    with_sentence_features,
)
from analyzers.search.refit import BAG_SMALL_TABLES, FinalModel, more_rows_pay
from analyzers.search.scoring import (
    LOWER_IS_BETTER,
    classification_metrics,
    is_imbalanced,
    regression_metrics,
    score_predictions,
    selection_metric,
)
from analyzers.search.trials import SearchResult, Trial, cross_fold_rounds, fit_estimator, predict, stopped_rounds, use_rounds

LARGE_TABLE_ROWS = 15_000  # a larger table pays when the last doubling of rows gained more than this


class ModelSearch(LargeTables, FinalModel):
    """One search run. Use ``search()``; this class only keeps the bookkeeping readable. Large tables (``LargeTables``)
    and the final model (``FinalModel``) are mixed in from their own modules."""

    def __init__(self, task: str, plan: dict, candidates: list[Candidate], time_budget_s: float, seed: int, n_jobs: int,
                 metric: str, time_column: str | None, max_rows_first_pass: int, max_rows_full: int, groups: np.ndarray | None = None):
        self.task, self.plan, self.candidates = task, plan, candidates
        self.budget, self.seed, self.n_jobs, self.metric = float(time_budget_s), seed, n_jobs, metric
        self.time_column, self.max_rows_first_pass, self.max_rows_full = time_column, max_rows_first_pass, max_rows_full
        self.groups = groups  # entity codes row-aligned with X: grouped folds
        self.start = time.perf_counter()
        # Aim a little short of the budget: estimates of fit times are rough on a busy machine.
        self.deadline = self.start + self.budget * BUDGET_SAFETY
        self.trials: list[Trial] = []
        self.notes: list[str] = []
        # In the tree preprocessor's output the ordinal codes follow the numbers and the date parts.
        numbers = len(plan["numeric"]) + len(plan["date"]) * len(DATE_PARTS)
        self.categorical_indices = tuple(range(numbers, numbers + len(plan["categorical"])))

    def threads(self, rows: int) -> int:
        """One thread for small fits and on a busy machine: there, OpenMP threads waiting on each other
        cost more than they save (LightGBM took 14-50 s instead of 1 s with 2 threads on 2 loaded cores)."""
        return 1 if rows < SMALL_FIT_ROWS or machine_busy() else self.n_jobs

    def remaining(self) -> float:
        return self.deadline - time.perf_counter()

    def _affordable(self, estimate: float, reserve: float) -> bool:
        return self.remaining() - reserve > estimate

    def _any_success(self) -> bool:
        return any(t.error is None for t in self.trials)

    def run_trial(self, prepared: PreparedFolds, candidate: Candidate, rows: int | None, reserve: float) -> Trial:
        started = time.perf_counter()
        n_classes = self.n_classes
        predictions = np.zeros((len(prepared.y), n_classes)) if n_classes else np.zeros(len(prepared.y))
        scored = np.zeros(len(prepared.y), dtype=bool)
        fitted, rounds, stops = [], [], []
        stop_at = self.deadline - reserve
        if time.perf_counter() >= stop_at and self._any_success():
            trial = Trial(candidate, rows or 0, float("-inf"), 0.0, error="skipped: time budget")
            self.trials.append(trial)
            return trial
        try:
            for fold, (train, valid) in enumerate(prepared.folds):
                prep, Xt, Xv = prepared.get(fold, candidate.preprocessing)
                y_train = prepared.y[train]
                if rows is not None and rows < len(train):
                    # The most recent rows when time orders them, else the first rows of a fixed shuffle.
                    keep = self._rung_positions(len(train), rows)
                    Xt, y_train = Xt[keep], y_train[keep]
                if fold > 0 and time.perf_counter() > stop_at and self._any_success():
                    raise TimeoutError(f"time budget spent after {fold} of {len(prepared.folds)} folds")
                estimator = make_estimator(candidate, self.task, self.threads(len(y_train)), self.seed, early_stopping=True,
                                           categorical_indices=self.categorical_indices)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    used = fit_estimator(estimator, candidate, Xt, y_train, Xv, prepared.y[valid], stop_at)
                    predictions[valid] = predict(estimator, Xv, self.task, n_classes)
                scored[valid] = True
                fitted.append((prep, estimator))
                stops.append((estimator, stopped_rounds(estimator, candidate.family), Xt, y_train, Xv, valid))
                if used:
                    rounds.append(used)
            if len(stops) >= 3 and all(stop[1] is not None for stop in stops):
                rounds = self._rounds_from_other_folds(candidate, stops, predictions)
        except (ValueError, np.linalg.LinAlgError, MemoryError, TimeoutError) as exc:
            trial = Trial(candidate, rows or 0, float("-inf"), time.perf_counter() - started, error=str(exc).splitlines()[0][:200])
            self.trials.append(trial)
            return trial
        score = score_predictions(self.metric, prepared.y[scored], predictions[scored], n_classes)
        trial = Trial(candidate, rows or len(prepared.folds[0][0]), score, time.perf_counter() - started,
                      int(np.mean(rounds)) if rounds else None, predictions[scored], fitted)
        self.trials.append(trial)
        return trial

    def _rounds_from_other_folds(self, candidate: Candidate, stops: list, predictions: np.ndarray) -> list[int]:
        """Each fold's model predicts with the rounds early stopping chose on the other folds (trials.cross_fold_rounds),
        so its out-of-fold predictions, and the bag of fold models that may serve, never used its own validation rows
        to choose a setting. The fold's predictions are redone in ``predictions``; returns the rounds used."""
        chosen = [best for _, (best, _), *_ in stops]
        used = []
        for (estimator, (_, trained), Xt, y_train, Xv, valid), rounds in zip(stops, cross_fold_rounds(chosen)):
            rounds = max(1, min(rounds, trained))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                use_rounds(estimator, candidate.family, rounds, Xt, y_train)
                predictions[valid] = predict(estimator, Xv, self.task, self.n_classes)
            used.append(rounds)
        return used

    def _rung_positions(self, n_train: int, rows: int) -> np.ndarray:
        if self.time_column:
            return np.arange(n_train - rows, n_train)
        return np.sort(np.random.default_rng(self.seed).permutation(n_train)[:rows])

    def run(self, X: pd.DataFrame, y: pd.Series) -> SearchResult:
        self.classes = sorted(pd.unique(y).tolist(), key=str) if self.task == "classification" else None
        self.n_classes = len(self.classes) if self.classes else None
        y_codes = encode_target(y, self.classes)
        self.n_all = len(X)
        self.holdout_all: np.ndarray | None = None
        strong_default = None
        if self.n_all >= STRONG_DEFAULT_ROWS:
            first_pass, folds, scheme = self._large_table_split(X, y)
            strong_default = self._strong_default(X, y_codes)
        else:
            first_pass = self._first_pass_positions(X, y)
            folds, scheme = validation_folds(X.iloc[first_pass], y.iloc[first_pass], self.task, self.time_column, self.seed,
                                             groups=self.groups[first_pass] if self.groups is not None else None)
        X_first, y_first = X.iloc[first_pass], y.iloc[first_pass]
        self.scheme = scheme
        self.time_ordered = time_order(X_first, self.time_column) is not None
        prepared = PreparedFolds(X_first, y_codes[first_pass], folds, self.plan, self.task)
        # A small table keeps its cross-validation fold models as the final model: no refit to keep time for (forests aside).
        self.bagging = BAG_SMALL_TABLES and len(folds) > 1 and not self.time_ordered
        n_train = len(folds[0][0])
        rungs = self._rungs(n_train) if len(folds) == 1 else [None]
        survivors = list(self.candidates)
        top_trials: list[Trial] = []
        curve: dict[int, float] = {}
        for level, rows in enumerate(rungs):
            last = level == len(rungs) - 1
            results = []
            for candidate in survivors:
                reserve = self._final_reserve(len(X))
                estimate = estimate_seconds(self.trials, candidate, rows or n_train)
                if self._any_success() and not self._affordable(estimate, reserve):
                    self.notes.append(f"skipped {candidate.name} at {rows or n_train} rows: time budget")
                    continue
                results.append(self.run_trial(prepared, candidate, rows, reserve))
            results = [t for t in results if t.error is None]
            if not results:
                break
            results.sort(key=lambda t: t.score, reverse=True)
            curve[rows or n_train] = results[0].score
            if last:
                top_trials = results
            else:
                survivors = [t.candidate for t in results[: max(2, math.ceil(len(results) / 2))]]
                if len(rungs) - level - 1 == 1:
                    survivors = survivors[:2] if len(survivors) > 2 else survivors
        if not top_trials:
            # The budget ran out before the full rung: the best trial seen so far wins.
            done = [t for t in self.trials if t.error is None]
            if not done:
                raise ValueError("every candidate model failed: " + "; ".join(t.error or "" for t in self.trials))
            top_trials = sorted(done, key=lambda t: (t.rows, t.score), reverse=True)[:1]
        if strong_default is not None and strong_default.error is None:
            # The subsampled portfolio only ranked configurations; the best of them, and neighbours of the best so far,
            # are now fitted on every training row while the budget lasts. The final model is one of these fits.
            top_trials = [strong_default] + self._all_rows_search(y_codes, top_trials, strong_default)
        else:
            top_trials += self._local_search(prepared, top_trials, n_train)
        top_trials.sort(key=lambda t: t.score, reverse=True)
        best = top_trials[0]
        ensemble = greedy_ensemble(prepared, top_trials, self.metric, self.n_classes)
        if ensemble:
            self.trials.append(Trial(Candidate(ensemble["name"], "ensemble"), ensemble["members"][0].rows, ensemble["score"], 0.0))
        pays = more_rows_pay(curve)
        self.ensemble_dropped = False
        pipeline, final_rows, refit = self._final_model(X, y_codes, first_pass, prepared, best, ensemble, pays)
        if self.ensemble_dropped:
            ensemble = None
        chosen = ensemble["name"] if ensemble else best.candidate.name
        valid_predictions = ensemble["predictions"] if ensemble else best.predictions
        members = ensemble["members"] if ensemble else [best]
        if strong_default is not None and strong_default.error is None and not all(m.all_rows for m in members):
            # The final model (refitted, or the search's own fit when no refit was affordable) must not score below the
            # all-rows default on the holdout they share; the holdout never entered either fit.
            final_predictions = predict(pipeline, X.iloc[self.holdout_all], self.task, self.n_classes)
            final_score = score_predictions(self.metric, y_codes[self.holdout_all], final_predictions, self.n_classes)
            if final_score < strong_default.score:
                self.notes.append(f"kept {strong_default.candidate.name}: the search's final model scored {final_score:.4f} on the holdout, "
                                  f"below its {strong_default.score:.4f}")
                prep, estimator = strong_default.fitted[0]
                pipeline, final_rows, refit = Pipeline([("prep", prep), ("model", estimator)]), strong_default.rows, False
                chosen, valid_predictions = strong_default.candidate.name, strong_default.predictions
            else:
                valid_predictions = final_predictions
        if self.task == "classification":
            pipeline = ClassLabelPipeline(pipeline, self.classes)
        held_out = np.unique(np.concatenate([v for _, v in folds]))
        y_valid = y_first.iloc[held_out]
        selection_score = score_predictions(self.metric, y_codes[first_pass][held_out], valid_predictions, self.n_classes)
        honest = selection_held_out(prepared, top_trials, ensemble, valid_predictions, held_out, self.metric, self.n_classes, self.seed)
        own_holdout = holdout_predictions(y, first_pass[held_out], valid_predictions, self.classes)
        if honest is not None:
            valid_predictions = honest
        final_train, final_valid = folds[-1]
        if self.time_ordered and len(folds) > 1:
            # The headline is the last forward fold: trained on every earlier period, judged on the latest one, as the
            # model will be on the periods after the file. The earlier folds ranked and blended the candidates.
            latest = np.searchsorted(held_out, final_valid)
            metrics = self._report_metrics(y_first.iloc[final_valid], np.asarray(valid_predictions)[latest])
        else:
            metrics = self._report_metrics(y_valid, valid_predictions)
            final_valid = held_out if len(folds) > 1 else final_valid
        holdout = holdout_predictions(y, first_pass[held_out], valid_predictions, self.classes, fold_of_rows(folds, held_out))
        details = {
            "validation": scheme, "metric": self.metric, "first_pass_rows": len(first_pass), "final_fit_rows": int(final_rows),
            "refit": refit, "rungs": [int(r or n_train) for r in rungs], "learning_curve": {str(k): round(v, 6) for k, v in curve.items()},
            "search_seconds": round(time.perf_counter() - self.start, 3), "trials": len(self.trials), "notes": self.notes,
            "selection_score": round(float(selection_score), 6), "scored_without_choosing": honest is not None,
            "holdout_basis": holdout_basis(folds, time_order(X_first, self.time_column) is not None, len(held_out),
                                           self.n_all if strong_default is not None else len(first_pass), grouped=self.groups is not None),
        }
        if strong_default is not None:
            details["large_table"] = self.large_plan
        if ensemble:
            details["ensemble"] = ensemble["weights"]
        return SearchResult(pipeline=pipeline, best_name=chosen, metrics=metrics, leaderboard=self._leaderboard(), classes=self.classes,
                            details=details, holdout=holdout, final_split=(first_pass[final_train], first_pass[final_valid]),
                            own_holdout=own_holdout)

    def _final_reserve(self, n_all: int) -> float:
        """Seconds to keep for the final refit of the best candidate so far, from its own time per row."""
        return final_reserve(self.trials, n_all, self.max_rows_full, self.budget, self.holdout_all is not None,
                             getattr(self, "bagging", False))

    def _first_pass_positions(self, X, y) -> np.ndarray:
        n = len(X)
        if n <= self.max_rows_first_pass:
            return np.arange(n)
        if self.task == "classification" and can_stratify(y, 2):
            keep, _ = train_test_split(np.arange(n), train_size=self.max_rows_first_pass, random_state=self.seed, stratify=strata(y))
        else:
            keep = np.random.default_rng(self.seed).choice(n, self.max_rows_first_pass, replace=False)
        self.notes.append(f"first pass on {self.max_rows_first_pass} of {n} rows")
        return np.sort(keep)

    @staticmethod
    def _rungs(n_train: int) -> list[int | None]:
        rungs: list[int | None] = [None]
        size = n_train
        while len(rungs) < 3 and size // 2 >= MIN_RUNG_ROWS:
            size //= 2
            rungs.insert(0, size)
        return rungs

    def _local_search(self, prepared: PreparedFolds, top: list[Trial], n_train: int) -> list[Trial]:
        """Perturb the best boosted configuration while it keeps paying; few trials, so small tables stay fast."""
        boosted = [t for t in top if t.candidate.boosted and t.candidate.resample is None]
        if not boosted:
            return []
        rng = np.random.default_rng(self.seed + 1)
        best = boosted[0]
        extra, misses = [], 0
        # Large tables are where tuning pays and where a 60 s budget is not spent by the portfolio alone.
        large = n_train >= LARGE_TABLE_ROWS
        trials, patience = (MAX_EXTRA_TRIALS * 4, EXTRA_TRIALS_PATIENCE * 3) if large else (MAX_EXTRA_TRIALS, EXTRA_TRIALS_PATIENCE)
        for i in range(trials):
            reserve = self._final_reserve(self.n_all) * 1.5
            if misses >= patience or not self._affordable(estimate_seconds(self.trials, best.candidate, n_train) * 1.5, reserve):
                break
            candidate = perturb(best.candidate, rng, f"{best.candidate.family}_tuned{i + 1}")
            trial = self.run_trial(prepared, candidate, None, reserve)
            if trial.error is not None:
                misses += 1
                continue
            extra.append(trial)
            if trial.score > best.score:
                best, misses = trial, 0
            else:
                misses += 1
        return extra

    def _report_metrics(self, y_valid: pd.Series, predictions: np.ndarray) -> dict[str, float]:
        if self.task == "regression":
            return regression_metrics(y_valid.astype(float), predictions)
        return classification_metrics(y_valid.astype(object), predictions, self.classes)

    def _leaderboard(self) -> list[dict]:
        rows = []
        for t in sorted(self.trials, key=lambda t: (-t.rows, -(t.score if t.error is None else -np.inf))):
            score = None if t.error else round(-t.score if self.metric in LOWER_IS_BETTER else t.score, 6)
            row = {"model": t.candidate.name, "rows": int(t.rows), self.metric: score,
                   "seconds": round(t.seconds, 3)}
            if t.rounds:
                row["rounds"] = t.rounds
            if t.error:
                row["error"] = t.error
            rows.append(row)
        return rows


MODEL_FAMILIES = ("linear", "lightgbm", "xgboost", "catboost", "random_forest", "extra_trees")


def only_families(candidates: list[Candidate], families) -> list[Candidate]:
    """The candidates of the given model families; a family name not known is refused in one sentence."""
    wanted = {str(f).strip().lower() for f in families if str(f).strip()}
    unknown = sorted(wanted - set(MODEL_FAMILIES))
    if unknown:
        raise ValueError(f"unknown model family {', '.join(map(repr, unknown))} in AUTOMODEL_MODEL_FAMILIES; choose from {', '.join(MODEL_FAMILIES)}")
    kept = [c for c in candidates if c.family in wanted]
    if not kept:
        raise ValueError(f"no candidate of the model families {', '.join(sorted(wanted))} fits this table; allow more families in "
                         "AUTOMODEL_MODEL_FAMILIES")
    return kept


def search(X: pd.DataFrame, y: pd.Series, task: str, plan: dict, candidates: list[Candidate] | None = None, time_budget_s: float = 60.0,
           seed: int = 0, time_column: str | None = None, *, n_jobs: int = 2, metric: str | None = None,
           max_rows_first_pass: int = 25_000, max_rows_full: int = 100_000, groups: np.ndarray | None = None,
           families: tuple = ()) -> SearchResult:
    """Find a good model for ``y`` from ``X`` within ``time_budget_s`` seconds (see the module docstring). ``time_column``
    validates forward in time; else ``groups`` (entity codes row-aligned with X) validates on unseen entities.
    ``families``: only candidates of these model families (``Candidate.family``); empty: every family."""
    if candidates is None:
        candidates = regression_candidates(n_jobs, seed) if task == "regression" else classification_candidates(n_jobs, seed, is_imbalanced(y))
        if task == "regression":
            candidates[1:1] = log_target_candidates(y)  # early: on a busy machine the budget may not reach the end of the list
        if len(X) <= SMALL_TABLE_ROWS:
            candidates = sorted(candidates, key=expected_cost)
        candidates = with_sentence_features(candidates, X, plan, time_budget_s)
    candidates = [c for c in candidates if c.max_rows is None or len(X) <= c.max_rows]
    if families:
        candidates = only_families(candidates, families)
    order = None
    if time_column and time_column in X.columns:
        # Rows in time order from here on (stable, so ties keep the file's order): "the most recent rows" of a rung or a
        # sample are then the last positions, whatever order the file was written in. Positions are mapped back below.
        order = np.argsort(period_codes(as_stamps(X[time_column]).to_numpy()), kind="stable")
        X, y = X.iloc[order], y.iloc[order]
        groups = None  # time order decides; an entity column only feeds the lag features
    elif groups is not None:
        groups = np.asarray(groups)
    runner = ModelSearch(task, plan, candidates, time_budget_s, seed, n_jobs, metric or selection_metric(task, y), time_column,
                         max_rows_first_pass, max_rows_full, groups=groups)
    result = runner.run(X.reset_index(drop=True), y.reset_index(drop=True))
    if order is not None:
        for name in ("holdout", "own_holdout"):
            frame = getattr(result, name)
            if frame is not None:
                frame["row"] = order[frame["row"].to_numpy()]
                setattr(result, name, frame.sort_values("row", kind="stable").reset_index(drop=True))
        if result.final_split is not None:
            result.final_split = tuple(order[np.asarray(part, dtype=int)] for part in result.final_split)
    return result
