"""A fitted model made quick for a few rows at a time, giving the very same numbers.

A served model is often a bag: one pipeline per cross-validation fold, sometimes of two model families. Scoring one
row through ten scikit-learn pipelines costs about 10 ms each, nearly all of it pandas indexing and input validation
around arithmetic that takes microseconds. ``for_serving`` rebuilds the prediction path so that:

- the column typing (``FrameCoercer``), identical in every member, runs once per request instead of once per member;
- a ``ColumnTransformer`` whose parts are imputers, scalers and category encoders is replaced by the same
  arithmetic on numpy arrays: missing values filled with the imputer's statistics, then the scaler's
  ``(x - mean) / scale`` (the operations scikit-learn itself does, in the same order), and each category column
  looked up in a table of the encoder's own output for every category it knows plus one unseen value (the encoders
  treat all unseen values alike);
- a LightGBM model asks its booster directly, with the prediction settings its scikit-learn wrapper would pass (the
  wrapper recomputes them on every call); a logistic or ridge regression does its own arithmetic, without scikit-learn's
  input validation around it;
- any other part keeps scikit-learn's own ``transform``.

Nothing is approximated, and nothing is trusted on faith: the rebuilt model and the original score a block of probe
rows (every known category, an unseen one, missing and extreme numbers) and the rebuilt one is used only if every
output is bit-for-bit equal. Otherwise the original is served unchanged.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from analyzers.models import ClassLabelPipeline, WeightedEnsemble
from analyzers.preprocess import MISSING, FrameCoercer

log = logging.getLogger(__name__)
UNSEEN = "\x00unseen category\x00"


class _SharedCoercion:
    """One ``FrameCoercer`` for every member with the same column lists: the last input and its result are kept, so
    the members of one ensemble call share the work. The pair is replaced in one assignment, so threads never see a
    result next to another request's input."""

    def __init__(self, coercer: FrameCoercer):
        self.coercer = coercer
        self._last: tuple | None = None

    def transform(self, X):
        last = self._last
        if last is not None and last[0] is X:
            return last[1]
        result = self.coercer.transform(X)
        self._last = (X, result, {})
        return result

    def column(self, frame: pd.DataFrame, name: str, dtype) -> np.ndarray:
        """A column of this coercion's latest result as an array, converted once for all the members."""
        last = self._last
        if last is None or last[1] is not frame:
            return frame[name].to_numpy(dtype=dtype)
        arrays = last[2]
        key = (name, np.dtype(dtype).str)
        if key not in arrays:
            arrays[key] = frame[name].to_numpy(dtype=dtype)
        return arrays[key]


def _column(frame: pd.DataFrame, name: str, dtype, coercion: "_SharedCoercion | None") -> np.ndarray:
    return coercion.column(frame, name, dtype) if coercion is not None else frame[name].to_numpy(dtype=dtype)


def _numeric_steps(transformer) -> list | None:
    """The transformer as a list of imputers and scalers, or None when it holds anything else."""
    steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    for step in steps:
        if isinstance(step, SimpleImputer):
            if step.add_indicator or not (isinstance(step.missing_values, float) and np.isnan(step.missing_values)):
                return None
            if np.isnan(np.asarray(step.statistics_, dtype=float)).any():
                return None
        elif not isinstance(step, StandardScaler) and step != "passthrough":
            return None
    return steps


def _numeric_block(steps: list):
    def transform(frame: pd.DataFrame, columns: list, coercion=None) -> np.ndarray:
        X = np.empty((len(frame), len(columns)), dtype=np.float64)
        for j, column in enumerate(columns):
            X[:, j] = _column(frame, column, np.float64, coercion)
        for step in steps:
            if isinstance(step, SimpleImputer):
                rows, cols = np.nonzero(np.isnan(X))
                X[rows, cols] = np.asarray(step.statistics_, dtype=np.float64)[cols]
            elif isinstance(step, StandardScaler):
                if step.with_mean:
                    X -= step.mean_
                if step.with_std:
                    X /= step.scale_
        return X

    return transform


def _category_block(encoder, columns: list, frame: pd.DataFrame):
    """Each column's output for every category the encoder knows and for an unseen one, read from the encoder."""
    if isinstance(encoder, OneHotEncoder):
        if encoder.handle_unknown not in ("ignore", "infrequent_if_exist") or getattr(encoder, "drop_idx_", None) is not None:
            return None
        widths = list(encoder._n_features_outs)
    elif isinstance(encoder, OrdinalEncoder):
        if encoder.handle_unknown != "use_encoded_value":
            return None
        widths = [1] * len(columns)
    else:
        return None

    def dense(out) -> np.ndarray:
        return out.toarray() if hasattr(out, "toarray") else np.asarray(out)

    dtype = dense(encoder.transform(frame[columns])).dtype
    offsets = np.concatenate([[0], np.cumsum(widths)]).astype(int)
    tables = []
    for i, column in enumerate(columns):
        values = [str(c) for c in encoder.categories_[i]] + [UNSEEN]
        probe = pd.DataFrame({c: [str(encoder.categories_[j][0])] * len(values) for j, c in enumerate(columns)})
        probe[column] = values
        part = dense(encoder.transform(probe))[:, offsets[i]:offsets[i + 1]]
        tables.append(({value: part[k] for k, value in enumerate(values)}, part[-1]))

    def transform(rows: pd.DataFrame, cols: list, coercion=None) -> np.ndarray:
        blocks = []
        for column, (table, unseen) in zip(cols, tables):
            values = _column(rows, column, object, coercion)
            blocks.append(np.vstack([table.get(v, unseen) for v in values]) if len(values) else np.empty((0, len(unseen))))
        return np.hstack(blocks).astype(dtype, copy=False)

    return transform


class _FastColumns:
    """A fitted ``ColumnTransformer``'s ``transform`` as array arithmetic where its parts allow."""

    def __init__(self, columns: ColumnTransformer, probe_frame: pd.DataFrame, coercion: _SharedCoercion | None):
        self.original = columns
        self.coercion = coercion
        self.parts = []
        for name, transformer, cols in columns.transformers_:
            if transformer == "drop" or (hasattr(cols, "__len__") and len(cols) == 0):
                continue
            cols = list(cols)
            steps = _numeric_steps(transformer) if transformer != "passthrough" else None
            fast = _numeric_block(steps) if steps is not None else _category_block(transformer, cols, probe_frame)
            if fast is None:
                fast = (lambda t: lambda frame, c, _: np.asarray(frame[c]) if t == "passthrough" else t.transform(frame[c]))(transformer)
            self.parts.append((fast, cols))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        blocks = [fast(frame, cols, self.coercion) for fast, cols in self.parts]
        return np.hstack(blocks) if blocks else np.empty((len(frame), 0))


class _QuickLightGBM:
    """A fitted ``LGBMClassifier``/``LGBMRegressor`` predicting through its booster with the settings worked out once."""

    def __init__(self, model):
        from lightgbm.basic import _ConfigAliases
        from lightgbm.sklearn import _choose_param_value

        self.model = model
        self.classes_ = getattr(model, "classes_", None)
        params = model._process_params(stage="predict")
        for alias in _ConfigAliases.get_by_alias("data", "X", "raw_score", "start_iteration", "num_iteration", "pred_leaf", "pred_contrib"):
            params.pop(alias, None)
        params = _choose_param_value("num_threads", params, model.n_jobs)
        params["num_threads"] = model._process_n_jobs(params["num_threads"])
        self.params = params
        self.booster = model.booster_

    def _raw(self, X) -> np.ndarray:
        return self.booster.predict(X, raw_score=False, start_iteration=0, num_iteration=None, pred_leaf=False,
                                    pred_contrib=False, validate_features=False, **self.params)

    def predict_proba(self, X):
        result = self._raw(X)
        return result if result.ndim == 2 else np.vstack((1.0 - result, result)).transpose()

    def predict(self, X):
        if self.classes_ is not None:
            return self.model.predict(X)
        return self._raw(X)


class _QuickLinear:
    """A fitted ``LogisticRegression`` or ``Ridge``/``RidgeCV``: scikit-learn's own arithmetic (``X @ coef_.T +
    intercept_``, then the logistic function or softmax) without its input validation on every call."""

    def __init__(self, model):
        self.model = model
        self.classes_ = getattr(model, "classes_", None)
        self.coef_T = model.coef_.T if model.coef_.ndim == 2 else model.coef_
        self.intercept_ = model.intercept_

    def _scores(self, X) -> np.ndarray:
        scores = np.asarray(X, dtype=np.float64) @ self.coef_T + self.intercept_
        return scores.reshape(-1) if scores.ndim > 1 and scores.shape[1] == 1 else scores

    def predict_proba(self, X):
        from scipy.special import expit
        from sklearn.utils.extmath import softmax

        scores = self._scores(X)
        if len(self.classes_) <= 2:
            prob = expit(scores, out=scores)
            return np.stack([1 - prob, prob], axis=1) if prob.ndim == 1 else self.model.predict_proba(X)
        return softmax(scores, copy=False)

    def predict(self, X):
        if self.classes_ is not None:
            return self.model.predict(X)
        return self._scores(X)


def _quick_model(model):
    from sklearn.linear_model import LogisticRegression, Ridge, RidgeCV

    if type(model) in (LogisticRegression, Ridge, RidgeCV) and getattr(model, "coef_", None) is not None:
        return _QuickLinear(model)
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
    except ImportError:  # pragma: no cover - lightgbm is in the lock
        return model
    if isinstance(model, (LGBMClassifier, LGBMRegressor)) and not callable(getattr(model, "_objective", None)):
        return _QuickLightGBM(model)
    return model


class _FastPipeline:
    """``prep`` then ``model``, with the prep steps replaced by their quick forms."""

    def __init__(self, pipeline: Pipeline, steps: list, model):
        self.original = pipeline
        self.steps = steps
        self.model = model
        self.named_steps = pipeline.named_steps
        if hasattr(pipeline, "classes_"):
            self.classes_ = pipeline.classes_

    def _prepared(self, X):
        for step in self.steps:
            X = step.transform(X)
        return X

    def predict_proba(self, X):
        return self.model.predict_proba(self._prepared(X))

    def predict(self, X):
        return self.model.predict(self._prepared(X))


def _flat_prep_steps(pipeline: Pipeline) -> list | None:
    if len(pipeline.steps) != 2 or pipeline.steps[0][0] != "prep" or not isinstance(pipeline.steps[0][1], Pipeline):
        return None
    return [step for _, step in pipeline.steps[0][1].steps]


class _Rebuilder:
    def __init__(self, probe_frame: pd.DataFrame):
        self.probe_frame = probe_frame
        self.coercions: dict[tuple, _SharedCoercion] = {}

    def coercion(self, coercer: FrameCoercer) -> _SharedCoercion:
        key = (tuple(coercer.numeric), tuple(coercer.categorical), tuple(coercer.date), tuple(getattr(coercer, "text", [])))
        return self.coercions.setdefault(key, _SharedCoercion(coercer))

    def rebuild(self, model):
        if isinstance(model, ClassLabelPipeline):
            return ClassLabelPipeline(self.rebuild(model.pipeline), model.classes_)
        if isinstance(model, WeightedEnsemble):
            quick = copy.copy(model)  # keeps the stored weights exactly as they are
            quick.members = [self.rebuild(m) for m in model.members]
            return quick
        if isinstance(model, Pipeline):
            prep = _flat_prep_steps(model)
            if prep is None:
                return model
            steps, frame = [], self.probe_frame  # each step is rebuilt from the rows it would receive
            for step in prep:
                if isinstance(step, FrameCoercer):
                    quick = self.coercion(step)
                elif isinstance(step, ColumnTransformer) and getattr(step, "sparse_output_", False) is False:
                    quick = _FastColumns(step, frame, steps[-1] if steps and isinstance(steps[-1], _SharedCoercion) else None)
                else:
                    quick = step
                steps.append(quick)
                frame = step.transform(frame)
            return _FastPipeline(model, steps, _quick_model(model.steps[-1][1]))
        return model


def probe_rows(fitted) -> pd.DataFrame:
    """Rows that visit every category the model's encoders know, an unseen one, missing values and extreme numbers."""
    coercers = []

    def walk(model):
        if isinstance(model, ClassLabelPipeline):
            walk(model.pipeline)
        elif isinstance(model, WeightedEnsemble):
            for m in model.members:
                walk(m)
        elif isinstance(model, Pipeline):
            prep = _flat_prep_steps(model) or []
            coercers.extend(s for s in prep if isinstance(s, FrameCoercer))
            for step in prep:
                if isinstance(step, ColumnTransformer):
                    for _, transformer, cols in step.transformers_:
                        if isinstance(transformer, (OneHotEncoder, OrdinalEncoder)):
                            for column, categories in zip(cols, transformer.categories_):
                                known.setdefault(column, set()).update(str(c) for c in categories)

    known: dict[str, set] = {}
    walk(fitted.pipeline)
    numbers = [np.nan, 0.0, -1.5, 1.0, 3.25, 1e6, -1e6, 42.0]
    categories = {c: sorted(v - {MISSING}) + [None, UNSEEN.strip("\x00")] for c, v in known.items()}
    n = max([len(numbers), 16] + [len(v) for v in categories.values()])
    data = {}
    for column in fitted.feature_columns:
        if column in categories:
            pool = categories[column]
        elif any(column in c.numeric for c in coercers):
            pool = numbers
        elif any(column in c.date for c in coercers):
            pool = ["2021-03-04", None, "1999-12-31 23:00", "2030-07-01"]
        else:
            pool = ["some words here", None, "", "other text"]
        data[column] = [pool[i % len(pool)] for i in range(n)]
    return pd.DataFrame(data, dtype=object)


def _outputs(fitted, frame: pd.DataFrame) -> list[np.ndarray]:
    X = frame[fitted.feature_columns]
    if fitted.task == "classification":
        return [np.asarray(fitted.pipeline.predict_proba(X), dtype=float)]
    return [np.asarray(fitted.pipeline.predict(X), dtype=float)]


def for_serving(fitted):
    """A copy of ``fitted`` (analyzers.base.FittedModel) that predicts few rows quickly, bit-for-bit as ``fitted`` does;
    ``fitted`` itself when the quick form would differ or cannot be built."""
    if fitted is None or getattr(fitted, "pipeline", None) is None:
        return fitted
    try:
        probe = probe_rows(fitted)
        rebuilder = _Rebuilder(probe[fitted.feature_columns])
        quick = copy.copy(fitted)
        quick.pipeline = rebuilder.rebuild(fitted.pipeline)
        if quick.pipeline is fitted.pipeline:
            return fitted
        for start in range(0, len(probe), 16):  # the block size scoring uses (stages.ROW_BLOCK), and a single row
            block = probe.iloc[start:start + 16]
            for rows in (block, block.iloc[:1]):
                if not all(np.array_equal(a, b, equal_nan=True) for a, b in zip(_outputs(fitted, rows), _outputs(quick, rows))):
                    log.info("the quick form of the model differs from it on probe rows; serving the model as it is")
                    return fitted
        return quick
    except Exception as exc:  # any surprise in a model's structure: the original model is always right
        log.info("the model is served as it is (%s)", exc)
        return fitted
