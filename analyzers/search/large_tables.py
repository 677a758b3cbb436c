"""Large tables: an all-rows default LightGBM planned from the budget and the measured boosting throughput, and
all-rows fits of the best subsampled configurations."""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.model_selection import train_test_split

from analyzers.preprocess import build_preprocessor
from analyzers.search.budget import BUDGET_SAFETY
from analyzers.search.folds import MIN_RUNG_ROWS, can_stratify, holdout_positions, strata
from analyzers.search.portfolio import EXTRA_TRIALS_PATIENCE, Candidate, make_estimator, perturb
from analyzers.search.refit import refit_cost
from analyzers.search.scoring import score_predictions
from analyzers.search.trials import Trial, fit_estimator, predict

# From this many labelled rows the first candidate is a default LightGBM fitted on every training row (early stopping on
# a holdout) before any subsampled search: on flights (75k training rows) the subsampled search alone lost to it.
STRONG_DEFAULT_ROWS = 40_000
STRONG_DEFAULT_SHARE = 0.6  # at most this share of the budget goes to the all-rows default
LARGE_HOLDOUT_ROWS = 25_000  # holdout of a large table: 20% up to this many rows, at least 5%
# LightGBM's defaults on the tree preprocessing (ordinal codes, target-encoded high-cardinality categoricals). Native
# categorical splits on every categorical overfit high-cardinality columns: flights_late (60k rows, tail numbers)
# stopped after 37 rounds at test AUC 0.698, against 0.759 for these settings.
STRONG_DEFAULT = {"learning_rate": 0.1, "num_leaves": 31, "min_child_samples": 20}
STRONG_DEFAULT_ROUNDS = 300  # rounds the plan wants to afford at the default learning rate
# LightGBM histogram boosting throughput per thread, measured on this 2-core machine under load (300k x 15 and
# 100k x 40 float32 matrices: 27-32 million row-column cells per round per second); the plan's unit of cost.
CELL_ROUNDS_PER_SECOND = 30e6


class LargeTables:
    """Tables of ``STRONG_DEFAULT_ROWS`` rows or more, for a ``ModelSearch`` (mixed into it; uses its budget, plan
    and trials): one holdout over every row, a default LightGBM fitted on every training row, then the best subsampled
    configurations and their neighbours fitted on every row while the budget lasts."""

    def _large_table_split(self, X, y):
        """One holdout over every row, shared by the all-rows default and the subsampled search; the search's
        first pass is a sample of the training part plus that whole holdout."""
        n = len(X)
        share = min(0.2, max(0.05, LARGE_HOLDOUT_ROWS / n))
        train_all, holdout = holdout_positions(X, y, self.task, self.time_column, self.seed, valid_share=share, groups=self.groups)
        self.train_all, self.holdout_all = np.sort(train_all), np.sort(holdout)
        sample_rows = max(self.max_rows_first_pass - len(holdout), MIN_RUNG_ROWS)
        if len(self.train_all) > sample_rows:
            y_train = y.iloc[self.train_all]
            if self.time_column:
                train_sample = self.train_all[-sample_rows:]  # the most recent rows before the holdout
            elif self.task == "classification" and can_stratify(y_train, 2):
                train_sample, _ = train_test_split(self.train_all, train_size=sample_rows, random_state=self.seed, stratify=strata(y_train))
            else:
                train_sample = np.random.default_rng(self.seed).choice(self.train_all, sample_rows, replace=False)
            train_sample = np.sort(train_sample)
            self.notes.append(f"search on {len(train_sample)} of {len(self.train_all)} training rows; "
                              f"a default LightGBM saw all of them")
        else:
            train_sample = self.train_all
        first_pass = np.union1d(train_sample, self.holdout_all)
        folds = [(np.searchsorted(first_pass, train_sample), np.searchsorted(first_pass, self.holdout_all))]
        kind = "time-ordered holdout" if self.time_column else "grouped holdout" if self.groups is not None else "holdout"
        return first_pass, folds, f"{kind} ({len(self.holdout_all)} rows, {share:.0%})"

    def _strong_default(self, X, y_codes) -> Trial:
        """LightGBM's defaults on every training row with early stopping on the holdout.
        The plan: rows x matrix columns x the rounds the budget affords at the measured throughput; when few rounds
        are affordable the learning rate rises so the model still converges, and only then do rows go."""
        started = time.perf_counter()
        prep = build_preprocessor(self.plan, "tree", self.task)
        train, holdout = self.train_all, self.holdout_all
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Xt = np.asarray(prep.fit_transform(X.iloc[train], y_codes[train]), dtype=np.float32)
            Xv = np.asarray(prep.transform(X.iloc[holdout]), dtype=np.float32)
        threads = self.threads(len(train))
        seconds = max(self.budget * STRONG_DEFAULT_SHARE - (time.perf_counter() - started), 1.0)
        rounds = seconds * CELL_ROUNDS_PER_SECOND * threads / max(Xt.shape[0] * Xt.shape[1], 1)
        params = dict(STRONG_DEFAULT)
        rows = Xt.shape[0]
        if rounds < STRONG_DEFAULT_ROUNDS:
            params["learning_rate"] = min(0.3, params["learning_rate"] * STRONG_DEFAULT_ROUNDS / max(rounds, 1.0))
            affordable = rounds * params["learning_rate"] / STRONG_DEFAULT["learning_rate"]
            if affordable < STRONG_DEFAULT_ROUNDS / 2:
                rows = max(int(rows * affordable / (STRONG_DEFAULT_ROUNDS / 2)), MIN_RUNG_ROWS)
                keep = np.sort(np.random.default_rng(self.seed).choice(Xt.shape[0], rows, replace=False))
                Xt, train = Xt[keep], train[keep]
                self.notes.append(f"the all-rows default fitted {rows} of {len(self.train_all)} training rows: the budget affords no more")
        self.large_plan = {"rows": int(self.n_all), "training_rows": int(rows), "holdout_rows": len(holdout), "matrix_columns": int(Xt.shape[1]),
                           "budget_s": round(self.budget, 1), "affordable_rounds": int(rounds), "learning_rate": round(params["learning_rate"], 4),
                           "threads": threads}
        self._large_matrices = (prep, Xt, Xv, train)
        candidate = Candidate("lightgbm_default_all_rows", "lightgbm", params)
        try:
            estimator = make_estimator(candidate, self.task, threads, self.seed, early_stopping=True, categorical_indices=self.categorical_indices)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                used = fit_estimator(estimator, candidate, Xt, y_codes[train], Xv, y_codes[holdout], self.start + self.budget * STRONG_DEFAULT_SHARE)
                predictions = predict(estimator, Xv, self.task, self.n_classes)
        except (ValueError, MemoryError) as exc:
            trial = Trial(candidate, int(rows), float("-inf"), time.perf_counter() - started, error=str(exc).splitlines()[0][:200])
            self.trials.append(trial)
            return trial
        score = score_predictions(self.metric, y_codes[holdout], predictions, self.n_classes)
        trial = Trial(candidate, int(rows), score, time.perf_counter() - started, used, predictions, [(prep, estimator)], all_rows=True)
        self.large_plan["rounds"] = int(used or 0)
        self.large_plan["seconds"] = round(trial.seconds, 2)
        self.trials.append(trial)
        return trial

    def _all_rows_search(self, y_codes, ranked: list[Trial], default: Trial) -> list[Trial]:
        """Boosted configurations fitted on every training row, early stopping on the holdout: first the best of the
        subsampled portfolio, then neighbours of the best all-rows fit, until the budget or the patience runs out."""
        prep, Xt, Xv, train = self._large_matrices
        y_train, y_valid = y_codes[train], y_codes[self.holdout_all]
        seconds_on_sample = {t.candidate.name: t.seconds for t in sorted(ranked, key=lambda t: t.rows)}
        base = seconds_on_sample.get("lightgbm")
        queue, seen = [], set()
        for t in sorted(ranked, key=lambda t: t.score, reverse=True):
            c = t.candidate
            if (c.boosted and c.resample is None and c.preprocessing == "tree" and c.name not in seen and c.params != default.candidate.params
                    and len(queue) < 3):
                queue.append(c)
                seen.add(c.name)
        rng = np.random.default_rng(self.seed + 2)
        best, extra, misses, tuned = default, [], 0, 0
        while misses < EXTRA_TRIALS_PATIENCE + 1:
            if queue:
                candidate = queue.pop(0)
            else:
                tuned += 1
                candidate = perturb(best.candidate, rng, f"{best.candidate.family}_tuned{tuned}")
            relative = seconds_on_sample.get(candidate.name, 2.0 * base if base else None)
            estimate = default.seconds * (relative / base if base and relative else 2.0)
            if not self._affordable(estimate * 0.7, refit_cost([best], self.n_all) - (self.budget * (1 - BUDGET_SAFETY))):
                if queue:
                    continue
                break
            started = time.perf_counter()
            name = candidate.name if candidate.name.endswith("_all_rows") else f"{candidate.name}_all_rows"
            candidate = Candidate(name, candidate.family, candidate.params, candidate.preprocessing, target_transform=candidate.target_transform)
            try:
                estimator = make_estimator(candidate, self.task, self.threads(len(train)), self.seed, early_stopping=True,
                                           categorical_indices=self.categorical_indices)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    used = fit_estimator(estimator, candidate, Xt, y_train, Xv, y_valid, self.deadline)
                    predictions = predict(estimator, Xv, self.task, self.n_classes)
            except (ValueError, MemoryError) as exc:
                self.trials.append(Trial(candidate, len(train), float("-inf"), time.perf_counter() - started, error=str(exc).splitlines()[0][:200]))
                misses += 1
                continue
            score = score_predictions(self.metric, y_valid, predictions, self.n_classes)
            trial = Trial(candidate, len(train), score, time.perf_counter() - started, used, predictions, [(prep, estimator)], all_rows=True)
            self.trials.append(trial)
            extra.append(trial)
            if score > best.score:
                best, misses = trial, 0
            elif not queue:
                misses += 1
        return extra
