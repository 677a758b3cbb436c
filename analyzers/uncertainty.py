"""How sure each prediction is: conformal prediction intervals for regression, probability calibration for classifiers.

Both are learnt from the search's held-out predictions (``AnalysisResult.holdout``: rows no fit of that model
configuration trained on), travel inside the saved model and so apply to ``score`` and ``rerun`` alike.

Intervals: split-conformal. The absolute errors on the held-out rows give the half-width: the
ceil((n + 1) * coverage)-th smallest of n errors, which covers a new row from the same population with probability
at least ``coverage`` (default 90 %). The final model is refitted on more rows than the held-out fits saw, so the
interval is, if anything, a little wide.

Calibration: the expected calibration error (ECE: the gap between confidence and accuracy, over 10 equal-width bins
of the predicted class's probability) is measured on the held-out rows. When it is off (ECE above
``CALIBRATION_TRIGGER``) a calibrator is fitted: Platt scaling (a logistic curve on each class's log-odds, strictly
monotone, so ROC-AUC is unchanged), or isotonic regression where the held-out rows are many and it is clearly better.
"Before" and "after" are both measured on held-out rows the calibrator did not see (two-fold cross-fitting over the
held-out rows); the calibrator is kept only when "after" is lower, then refitted on all of them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

DEFAULT_COVERAGE = 0.9
CALIBRATION_TRIGGER = 0.02
CALIBRATION_BINS = 10
ISOTONIC_MIN_ROWS = 1_000
ISOTONIC_MARGIN = 0.005
MIN_HOLDOUT_ROWS = 40
ACCURACY_TOLERANCE = 0.002


# ---- intervals ---------------------------------------------------------------------------------------

def conformal_interval(holdout: pd.DataFrame | None, coverage: float = DEFAULT_COVERAGE) -> dict | None:
    """{"coverage", "half_width", "rows"} from the held-out absolute errors; None when too few rows are held out."""
    if holdout is None or len(holdout) < MIN_HOLDOUT_ROWS or not 0 < coverage < 1:
        return None
    actual = pd.to_numeric(holdout["actual"], errors="coerce").to_numpy(dtype=float)
    predicted = pd.to_numeric(holdout["prediction"], errors="coerce").to_numpy(dtype=float)
    errors = np.sort(np.abs(actual - predicted)[np.isfinite(actual) & np.isfinite(predicted)])
    n = len(errors)
    if n < MIN_HOLDOUT_ROWS:
        return None
    rank = min(math.ceil((n + 1) * coverage), n)
    return {"coverage": float(coverage), "half_width": float(errors[rank - 1]), "rows": int(n), "method": "split-conformal (absolute error)"}


def interval_coverage(actual, predicted, half_width: float) -> float:
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    return float(np.mean(np.abs(actual - predicted) <= half_width))


# ---- calibration ---------------------------------------------------------------------------------------

def expected_calibration_error(codes: np.ndarray, proba: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Weighted mean |accuracy - confidence| of the predicted class over equal-width confidence bins."""
    proba = np.asarray(proba, dtype=float)
    confidence = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == np.asarray(codes)).astype(float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class ProbabilityCalibrator:
    """One-vs-rest calibration of class probabilities (Platt or isotonic), rows renormalised to sum to one.
    For two classes only the positive class's curve is learnt, so the result stays strictly monotone (Platt)."""

    def __init__(self, method: str = "platt"):
        self.method = method

    def fit(self, proba: np.ndarray, codes: np.ndarray) -> ProbabilityCalibrator:
        proba = np.asarray(proba, dtype=float)
        self.n_classes_ = proba.shape[1]
        columns = [1] if self.n_classes_ == 2 else range(self.n_classes_)
        self.curves_ = {}
        for k in columns:
            target = (np.asarray(codes) == k).astype(int)
            if target.min() == target.max():
                continue  # a class absent from (or alone in) these rows: leave its probabilities as they are
            if self.method == "isotonic":
                from sklearn.isotonic import IsotonicRegression

                curve = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(proba[:, k], target)
            else:
                from sklearn.linear_model import LogisticRegression

                curve = LogisticRegression(C=1e4, max_iter=1000).fit(_logit(proba[:, k])[:, None], target)
            self.curves_[k] = curve
        return self

    def transform(self, proba: np.ndarray) -> np.ndarray:
        proba = np.asarray(proba, dtype=float).copy()
        out = proba.copy()
        for k, curve in self.curves_.items():
            if self.method == "isotonic":
                out[:, k] = curve.predict(proba[:, k])
            else:
                out[:, k] = curve.predict_proba(_logit(proba[:, k])[:, None])[:, 1]
        if self.n_classes_ == 2:
            out[:, 0] = 1 - out[:, 1]
            return out
        out = np.clip(out, 1e-9, None)
        return out / out.sum(axis=1, keepdims=True)


def _cross_fitted(method: str, proba: np.ndarray, codes: np.ndarray, seed: int) -> np.ndarray:
    """Calibrated probabilities for every held-out row from a calibrator fitted on the other half."""
    order = np.random.default_rng(seed).permutation(len(codes))
    halves = (order[: len(order) // 2], order[len(order) // 2:])
    out = np.empty_like(proba, dtype=float)
    for fit_on, apply_to in (halves, halves[::-1]):
        out[apply_to] = ProbabilityCalibrator(method).fit(proba[fit_on], codes[fit_on]).transform(proba[apply_to])
    return out


def calibrate(holdout: pd.DataFrame | None, classes: list, seed: int = 0) -> tuple[ProbabilityCalibrator | None, dict | None]:
    """(calibrator or None, report) from the held-out probabilities. The report has the ECE before and after (both on
    rows the calibrator did not see), the method and whether it was applied."""
    columns = [f"proba_{c}" for c in classes]
    if holdout is None or len(holdout) < MIN_HOLDOUT_ROWS or any(c not in holdout.columns for c in columns):
        return None, None
    lookup = {str(c): i for i, c in enumerate(classes)}
    codes = np.asarray([lookup.get(str(v), -1) for v in holdout["actual"]])
    keep = codes >= 0
    proba, codes = holdout.loc[keep, columns].to_numpy(dtype=float), codes[keep]
    before = expected_calibration_error(codes, proba)
    report = {"ece_before": round(before, 4), "ece_after": round(before, 4), "method": None, "applied": False, "rows": len(codes),
              "measured_on": "held-out rows (after: two-fold cross-fitting, so the calibrator never scores rows it was fitted on)"}
    if before <= CALIBRATION_TRIGGER or len(codes) < MIN_HOLDOUT_ROWS:
        report["reason"] = f"held-out calibration error {before:.3f} is within {CALIBRATION_TRIGGER}"
        return None, report
    fitted = {"platt": _cross_fitted("platt", proba, codes, seed)}
    if len(codes) >= ISOTONIC_MIN_ROWS:
        fitted["isotonic"] = _cross_fitted("isotonic", proba, codes, seed)
    options = {name: expected_calibration_error(codes, calibrated) for name, calibrated in fitted.items()}
    method = "isotonic" if options.get("isotonic", np.inf) < options["platt"] - ISOTONIC_MARGIN else "platt"
    after = options[method]
    if after >= before:
        report["reason"] = f"calibration did not lower the held-out error ({method}: {after:.3f} vs {before:.3f})"
        return None, report
    # The predicted class is the most probable one: calibration must not make those picks worse.
    accuracy_before = float(np.mean(proba.argmax(axis=1) == codes))
    accuracy_after = float(np.mean(fitted[method].argmax(axis=1) == codes))
    if accuracy_after < accuracy_before - ACCURACY_TOLERANCE:
        report["reason"] = (f"calibration would lower held-out accuracy ({accuracy_after:.3f} vs {accuracy_before:.3f}), "
                            f"so the probabilities are left as they are")
        return None, report
    report.update({"ece_after": round(after, 4), "method": method, "applied": True})
    return ProbabilityCalibrator(method).fit(proba, codes), report
