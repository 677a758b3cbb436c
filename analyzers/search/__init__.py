"""Time-budgeted model search.

The search starts cheap and spends the budget where it pays:

1. A portfolio of candidate configurations (LightGBM at three sizes, XGBoost, CatBoost, extra trees,
   random forest, a linear model; class-weighted and SMOTE variants when classes are imbalanced) is
   scored on a validation scheme that respects time order when a date column orders the rows.
2. Small tables use 5-fold cross-validation (expanding-window folds for time-ordered rows). Larger
   tables use a holdout and successive halving over rows: every candidate sees a quarter of the
   training rows, the better half sees half, the best two see all of them.
3. Boosted models stop early on the validation rows, and every fit stops when the budget runs out. With
   cross-validation each fold model then predicts with the median rounds the other folds chose, so no fold's
   out-of-fold score (nor the fold model that serves) used its own rows to pick a setting.
4. While time remains (and at most ``MAX_EXTRA_TRIALS`` times, so small tables finish quickly) the
   best boosted configuration is perturbed locally.
5. A greedy weighted ensemble (Caruana) of the best candidates, chosen on their validation predictions
   (out-of-fold on small tables), is kept when it beats the best single one.
6. On a small table the fold models are the final model (bagged: each member's fold fits averaged;
   forests refitted once on every row). Otherwise the winner is refitted on all rows, or on more rows
   than the first pass when the learning curve of step 2 says more rows pay; when the budget would not
   cover that refit the search's own fit is kept instead.

Preprocessing is part of every candidate's pipeline (analyzers.preprocess), so the saved model scores
raw frames.

The package, by concern: ``portfolio`` (candidates, estimators, costs), ``folds`` (validation schemes, held-out
predictions), ``scoring`` (metrics), ``budget`` (time estimates, deadline callbacks), ``trials`` (one fit and its
records), ``ensemble``, ``refit`` (the final model), ``large_tables`` and ``model_search`` (the orchestration).
"""

from analyzers.search.budget import BUDGET_SAFETY, SMALL_FIT_ROWS, machine_busy
from analyzers.search.ensemble import ENSEMBLE_POOL, ENSEMBLE_ROUNDS, greedy_ensemble
from analyzers.search.folds import (
    MIN_RUNG_ROWS,
    SMALL_TABLE_FOLDS,
    SMALL_TABLE_ROWS,
    encode_target,
    holdout_basis,
    holdout_positions,
    holdout_predictions,
    validation_folds,
)
from analyzers.search.large_tables import LARGE_HOLDOUT_ROWS, STRONG_DEFAULT, STRONG_DEFAULT_ROWS
from analyzers.search.model_search import ModelSearch, search
from analyzers.search.portfolio import (
    CATBOOST,
    CATBOOST_COST_RATIO,
    EARLY_STOPPING_ROUNDS,
    LOG_TARGET_SKEW,
    MAX_BOOSTING_ROUNDS,
    NATIVE_CATEGORICAL,
    Candidate,
    classification_candidates,
    expected_cost,
    log_target_candidates,
    make_estimator,
    regression_candidates,
    with_sentence_features,
)
from analyzers.search.refit import BAG_MAX_BYTES, BAG_SMALL_TABLES
from analyzers.search.scoring import (
    LOWER_IS_BETTER,
    METRIC_FOR_TASK,
    classification_metrics,
    is_imbalanced,
    regression_metrics,
    scaled_log_loss,
    score_predictions,
    selection_metric,
)
from analyzers.search.trials import SearchResult, Trial

__all__ = [
    "BAG_MAX_BYTES", "BAG_SMALL_TABLES", "BUDGET_SAFETY", "CATBOOST", "CATBOOST_COST_RATIO", "EARLY_STOPPING_ROUNDS", "ENSEMBLE_POOL",
    "ENSEMBLE_ROUNDS", "LARGE_HOLDOUT_ROWS", "LOG_TARGET_SKEW", "LOWER_IS_BETTER", "MAX_BOOSTING_ROUNDS", "METRIC_FOR_TASK", "MIN_RUNG_ROWS",
    "NATIVE_CATEGORICAL", "SMALL_FIT_ROWS", "SMALL_TABLE_FOLDS", "SMALL_TABLE_ROWS", "STRONG_DEFAULT", "STRONG_DEFAULT_ROWS",
    "Candidate", "ModelSearch", "SearchResult", "Trial", "classification_candidates", "classification_metrics", "encode_target",
    "expected_cost", "greedy_ensemble", "log_target_candidates", "holdout_basis", "holdout_positions", "holdout_predictions", "is_imbalanced",
    "machine_busy", "make_estimator", "regression_candidates", "regression_metrics", "scaled_log_loss", "score_predictions", "search",
    "selection_metric", "validation_folds", "with_sentence_features",
]
