"""The final model: the cross-validation fold models averaged on small tables, else the winner refitted on every row
(or on more rows than the first pass when the learning curve says they pay), else the search's own fit."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
from sklearn.pipeline import Pipeline

from analyzers.models import WeightedEnsemble
from analyzers.preprocess import build_preprocessor
from analyzers.search.portfolio import Candidate, make_estimator
from analyzers.search.trials import Trial, fit_estimator

# Small tables keep the cross-validation fold models as the final model (each saw 4/5 of the rows), averaged, instead of
# one refit on every row: the out-of-fold predictions the search ranked and blended on are then exactly what the final
# model's parts predict on rows they did not see, and the average is steadier than a single fit.
BAG_SMALL_TABLES = True
# ... unless the fold models together would be this large: a saved model, its scoring and its SHAP explanation all grow
# with the trees it holds (digits, 10 classes: five fold models of 127-leaf boosting were 94 MB and took minutes to explain).
BAG_MAX_BYTES = 20_000_000
LEARNING_CURVE_GAIN = 0.001


def more_rows_pay(curve: dict[int, float]) -> bool:
    """The last doubling of rows on the learning curve (rows -> best score) gained more than LEARNING_CURVE_GAIN."""
    if len(curve) < 2:
        return True
    sizes = sorted(curve)
    return curve[sizes[-1]] - curve[sizes[-2]] > LEARNING_CURVE_GAIN


def refit_cost(members: list[Trial], n: int) -> float:
    """Seconds to refit ``members`` on ``n`` rows, from their own time per row, with a fifth to spare."""
    return sum(m.seconds * n / max(m.rows, 1) for m in members) * 1.2


def fitted_bytes(members: list[Trial]) -> int:
    """Pickled size of the members' fold estimators (forests excluded: a bag refits them once)."""
    import pickle

    return sum(len(pickle.dumps(estimator, protocol=pickle.HIGHEST_PROTOCOL)) for m in members
               if m.candidate.family not in ("random_forest", "extra_trees") for _, estimator in m.fitted)


class FinalModel:
    """The final model of a ``ModelSearch`` (mixed into it; uses its budget, plan and notes): the fold models averaged,
    a refit on more rows, or the search's own fit when the budget covers nothing more."""

    def _final_model(self, X, y_codes, first_pass, prepared, best: Trial, ensemble: dict | None, pays: bool):
        members = ensemble["members"] if ensemble else [best]
        weights = ensemble["weights_by_model"] if ensemble else {best.candidate.name: 1.0}
        baggable = (BAG_SMALL_TABLES and len(prepared.folds) > 1 and not self.time_ordered
                    and all(len(m.fitted) == len(prepared.folds) for m in members))
        if baggable and (size := fitted_bytes(members)) > BAG_MAX_BYTES:
            baggable = False
            self.notes.append(f"refitted on every row rather than averaging the fold models: together they would make a "
                              f"{size / 1e6:.0f} MB model")
        if baggable:
            self.notes.append(f"the final model averages the {len(prepared.folds)} cross-validation fold models of "
                              f"{'each ensemble member' if len(members) > 1 else 'the best candidate'} (each trained on "
                              f"{len(prepared.folds) - 1}/{len(prepared.folds)} of the rows)")
            return self._bag_folds(members, weights, X.iloc[first_pass], y_codes[first_pass]), len(first_pass), False
        if all(m.all_rows for m in members):
            if len(members) > 1 and refit_cost(members, len(X)) > self.start + self.budget - time.perf_counter():
                members, weights = [best], {best.candidate.name: 1.0}  # every row for the best beats a blend on fewer
                self.ensemble_dropped = True
                self.notes.append("kept the best single model over the ensemble: only its refit on every row fitted the budget")
            return self._refit_on_every_row(X, y_codes, members, weights)
        large = self.holdout_all is not None
        if large:
            positions = self.train_all  # the holdout stays out of every fit: the final model is judged on it
        elif pays and len(X) > len(first_pass):
            positions = np.arange(len(X)) if len(X) <= self.max_rows_full else np.sort(
                np.random.default_rng(self.seed).choice(len(X), self.max_rows_full, replace=False))
        else:
            positions = first_pass
        n_fit = len(positions)
        cost = sum(m.seconds / max(len(m.fitted), 1) * n_fit / max(m.rows, 1) for m in members if not m.all_rows)
        if cost > self.remaining() and len(positions) > len(first_pass) and not large:
            positions, n_fit = first_pass, len(first_pass)
            cost = sum(m.seconds / max(len(m.fitted), 1) * n_fit / max(m.rows, 1) for m in members)
        if cost > self.remaining() and len(prepared.folds) > 1 and all(len(m.fitted) == len(prepared.folds) for m in members):
            # No time for a refit: average the cross-validation fold models (each saw most of the rows).
            too_large = fitted_bytes(members) > BAG_MAX_BYTES
            if too_large:
                self.notes.append("kept one cross-validation fold model per member: the budget would not cover a refit, and "
                                  "averaging every fold model would make too large a model")
            else:
                self.notes.append("averaged the cross-validation fold models: the budget would not cover a refit")
            return self._bag_folds(members, weights, first_fold_only=too_large), len(prepared.folds[0][0]), False
        if cost > self.remaining() and len(prepared.folds) == 1:
            # No time for a refit: keep the search's own fits (trained on the first pass's training part).
            self.notes.append("kept the search's fit: the budget would not cover a refit on all rows")
            pipelines = [Pipeline([("prep", m.fitted[0][0]), ("model", m.fitted[0][1])]) for m in members]
            return self._combine(pipelines, [weights[m.candidate.name] for m in members]), len(prepared.folds[0][0]), False
        pipelines = []
        X_fit, y_fit = X.iloc[positions], y_codes[positions]
        holdout = prepared.folds[0][1] if len(prepared.folds) == 1 else None
        for member in members:
            if member.all_rows:
                pipelines.append(Pipeline([("prep", member.fitted[0][0]), ("model", member.fitted[0][1])]))
                continue
            if member.candidate.boosted and holdout is not None and n_fit > 1.2 * len(first_pass):
                # Many more rows than the search saw: the right number of rounds is unknown, so stop early
                # again on the search's validation rows, which stay out of this fit.
                pipelines.append(self._fit_with_early_stopping(member.candidate, X, y_codes, positions, first_pass[holdout]))
                continue
            rounds = None
            if member.candidate.boosted and member.rounds:
                # More rows than each fold's training part: a few more rounds than early stopping chose.
                growth = (n_fit / max(member.rows, 1)) ** 0.25
                rounds = max(10, int(math.ceil(member.rounds * 1.1 * growth)))
            pipeline = Pipeline([("prep", build_preprocessor(self.plan, member.candidate.preprocessing, self.task)),
                                 ("model", make_estimator(member.candidate, self.task, self.threads(n_fit), self.seed, n_estimators=rounds,
                                                          categorical_indices=self.categorical_indices))])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipeline.fit(X_fit, y_fit)
            pipelines.append(pipeline)
        return self._combine(pipelines, [weights[m.candidate.name] for m in members]), n_fit, True

    def _bag_folds(self, members: list[Trial], weights: dict, X=None, y_codes=None, first_fold_only: bool = False):
        """Each member's fold models, averaged. A forest is already an average of trees, and five of them would make the
        saved model five times its size for nothing: given the rows, forests are refitted once on all of them instead;
        without them (no time left), one fold's forest is kept. ``first_fold_only`` keeps one fold model of every member."""
        pipelines, member_weights, bags = [], [], []
        for number, m in enumerate(members):
            if first_fold_only or (X is None and m.candidate.family in ("random_forest", "extra_trees")):
                prep, estimator = m.fitted[0]
                pipelines.append(Pipeline([("prep", prep), ("model", estimator)]))
                member_weights.append(weights[m.candidate.name])
                bags.append(number)
                continue
            if X is not None and m.candidate.family in ("random_forest", "extra_trees"):
                pipeline = Pipeline([("prep", build_preprocessor(self.plan, m.candidate.preprocessing, self.task)),
                                     ("model", make_estimator(m.candidate, self.task, self.threads(len(X)), self.seed,
                                                              categorical_indices=self.categorical_indices))])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pipeline.fit(X, y_codes)
                pipelines.append(pipeline)
                member_weights.append(weights[m.candidate.name])
                bags.append(number)
                continue
            for prep, estimator in m.fitted:
                pipelines.append(Pipeline([("prep", prep), ("model", estimator)]))
                member_weights.append(weights[m.candidate.name] / len(m.fitted))
                bags.append(number)
        return self._combine(pipelines, member_weights, bags)

    def _refit_on_every_row(self, X, y_codes, members: list[Trial], weights: dict):
        """The all-rows fits left the holdout out to stop early on it; with the rounds they chose (a tenth more, for the
        extra rows) they are refitted on every row, holdout included, when the rest of the budget covers it."""
        kept = [Pipeline([("prep", m.fitted[0][0]), ("model", m.fitted[0][1])]) for m in members]
        n = len(X)
        cost = refit_cost(members, n)
        left = self.start + self.budget - time.perf_counter()
        if cost > left or not all(m.rounds for m in members):
            self.notes.append(f"the final model left out the {len(self.holdout_all)} holdout rows: a refit on every row "
                              f"(about {cost:.0f} s) did not fit the {max(left, 0):.0f} s left")
            return self._combine(kept, [weights[m.candidate.name] for m in members]), members[0].rows, False
        pipelines = []
        for m in members:
            rounds = max(10, math.ceil(m.rounds * 1.1))
            pipeline = Pipeline([("prep", build_preprocessor(self.plan, m.candidate.preprocessing, self.task)),
                                 ("model", make_estimator(m.candidate, self.task, self.threads(n), self.seed, n_estimators=rounds,
                                                          categorical_indices=self.categorical_indices))])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipeline.fit(X, y_codes)
            pipelines.append(pipeline)
        return self._combine(pipelines, [weights[m.candidate.name] for m in members]), n, True

    def _fit_with_early_stopping(self, candidate: Candidate, X, y_codes, positions, valid_positions) -> Pipeline:
        train_positions = np.setdiff1d(positions, valid_positions)
        prep = build_preprocessor(self.plan, candidate.preprocessing, self.task)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Xt = np.asarray(prep.fit_transform(X.iloc[train_positions], y_codes[train_positions]), dtype=np.float32)
            Xv = np.asarray(prep.transform(X.iloc[valid_positions]), dtype=np.float32)
            estimator = make_estimator(candidate, self.task, self.threads(len(train_positions)), self.seed, early_stopping=True,
                                       categorical_indices=self.categorical_indices)
            fit_estimator(estimator, candidate, Xt, y_codes[train_positions], Xv, y_codes[valid_positions], self.deadline)
        return Pipeline([("prep", prep), ("model", estimator)])

    def _combine(self, pipelines: list, weights: list[float], bags: list[int] | None = None):
        if len(pipelines) == 1:
            return pipelines[0]
        return WeightedEnsemble(pipelines, weights, self.task, self.n_classes, bags)
