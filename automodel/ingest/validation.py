"""Validation of a cleaned frame with a Great Expectations 1.x suite built from its column metadata.

Each column's role says what its values must look like: latitudes lie in [-90, 90], zip codes
have five digits, states are US state names, abbreviations or FIPS codes, identifiers do not
repeat, numeric roles hold numbers and date roles hold datetimes. A role the user gave is checked
the same way, so a wrong label shows up here instead of as a poor model. Every failed expectation
is explained in one plain sentence with a few (PII-redacted) example values.

GX is imported only when a suite is run (its import takes seconds); the suite itself is plain data
(``ExpectationSpec``) so it can be listed, tested and shown without GX.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache

import pandas as pd

from automodel.ingest.roles import ColumnMeta
from automodel.safety import redact_pii

NUMERIC_ROLES = ("numeric", "currency", "percent", "latitude", "longitude")
DATE_ROLES = ("date", "datetime")
_ZIP_REGEX = r"^\d{5}(-\d{4})?$"
_FIPS_REGEX = r"^\d{5}$"
_EMAIL_REGEX = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
_URL_REGEX = r"^(https?://|www\.)\S+$"
_PHONE_REGEX = r"^\+?[\d\s().-]{7,20}$"
_NUMERIC_TYPES = ["int8", "int16", "int32", "int64", "Int8", "Int16", "Int32", "Int64", "uint8", "uint16", "uint32", "uint64",
                  "float16", "float32", "float64", "Float32", "Float64"]
_BOOL_TYPES = ["bool", "boolean"]
_DATE_TYPES = ["datetime64[ns]", "datetime64[us]", "datetime64[ms]", "datetime64[s]"]
# Pattern and set expectations allow a sliver of odd values: cleaning already turned junk into missing values.
MOSTLY = 0.99


@dataclass
class ExpectationSpec:
    """One expectation as plain data: the GX class name, its arguments and why it applies."""

    expectation: str
    column: str
    kwargs: dict = field(default_factory=dict)
    why: str = ""
    what: str = ""  # how a valid value is described in explanations ("five-digit zip codes")

    def to_dict(self) -> dict:
        out = asdict(self)
        if "value_set" in out["kwargs"]:
            out["kwargs"] = {**out["kwargs"], "value_set": f"{len(out['kwargs']['value_set'])} allowed values"}
        return out


@dataclass
class ValidationReport:
    success: bool
    evaluated: int
    failed: list[dict]
    rows_validated: int
    rows_total: int
    seconds: float
    suite: list[dict]

    def explanations(self) -> list[str]:
        return [f["explanation"] for f in self.failed]

    def to_markdown(self) -> str:
        head = f"{self.evaluated - len(self.failed)} of {self.evaluated} expectations met"
        if self.rows_validated < self.rows_total:
            head += f" (on a sample of {self.rows_validated:,} of {self.rows_total:,} rows)"
        if not self.failed:
            return head + "."
        lines = [head + ":", "", "| column | expectation | unexpected | explanation |", "|---|---|---|---|"]
        for item in self.failed:
            explanation = item["explanation"].replace("|", "\\|")
            lines.append(f"| {item['column']} | {item['expectation']} | {item.get('unexpected_percent', 0):.1f}% | {explanation} |")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=1)
def _state_values() -> tuple[str, ...]:
    import us

    values = set()
    for state in us.states.STATES_AND_TERRITORIES + [us.states.DC]:
        for value in (state.name, state.abbr, state.fips, getattr(state, "ap_abbr", None)):
            if value:
                values |= {str(value), str(value).upper(), str(value).lower()}
        if state.fips:
            values.add(str(int(state.fips)))
    return tuple(sorted(values))


def build_suite(frame: pd.DataFrame, metas: list[ColumnMeta], target: str | None = None) -> list[ExpectationSpec]:
    """The expectations the metadata implies for ``frame`` (columns the frame lacks are expected to exist)."""
    specs: list[ExpectationSpec] = []
    for meta in metas:
        col, role = meta.name, meta.role
        source = "labelled by the user" if meta.user_labelled else f"inferred with confidence {meta.confidence:.2f}"
        why = f"the column's role is {role} ({source})"
        specs.append(ExpectationSpec("ExpectColumnToExist", col, {}, "every profiled column is in the cleaned frame"))
        if col not in frame.columns:
            continue
        series = frame[col]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        text = series.dtype == object or pd.api.types.is_string_dtype(series.dtype)
        if role in NUMERIC_ROLES:
            specs.append(ExpectationSpec("ExpectColumnValuesToBeInTypeList", col, {"type_list": _NUMERIC_TYPES},
                                         why, "numbers"))
        elif role in DATE_ROLES:
            specs.append(ExpectationSpec("ExpectColumnValuesToBeInTypeList", col, {"type_list": _DATE_TYPES},
                                         why, "dates"))
        elif role == "boolean" and not numeric:
            specs.append(ExpectationSpec("ExpectColumnValuesToBeInTypeList", col, {"type_list": _BOOL_TYPES},
                                         why, "true/false values"))
        if role == "latitude":
            specs.append(ExpectationSpec("ExpectColumnValuesToBeBetween", col, {"min_value": -90, "max_value": 90},
                                         why, "latitudes in [-90, 90]"))
        elif role == "longitude":
            specs.append(ExpectationSpec("ExpectColumnValuesToBeBetween", col, {"min_value": -180, "max_value": 180},
                                         why, "longitudes in [-180, 180]"))
        elif role == "zip_code":
            if text:
                specs.append(ExpectationSpec("ExpectColumnValuesToMatchRegex", col, {"regex": _ZIP_REGEX, "mostly": MOSTLY},
                                             why, "five-digit zip codes"))
            elif numeric:
                specs.append(ExpectationSpec("ExpectColumnValuesToBeBetween", col, {"min_value": 0, "max_value": 99999, "mostly": MOSTLY},
                                             why, "zip codes between 00000 and 99999"))
        elif role == "fips_code":
            if text:
                specs.append(ExpectationSpec("ExpectColumnValuesToMatchRegex", col, {"regex": _FIPS_REGEX, "mostly": MOSTLY},
                                             why, "five-digit county FIPS codes"))
            elif numeric:
                specs.append(ExpectationSpec("ExpectColumnValuesToBeBetween", col, {"min_value": 1000, "max_value": 78999, "mostly": MOSTLY},
                                             why, "county FIPS codes"))
        elif role == "state" and (text or numeric):
            values = list(_state_values()) if text else list(range(1, 79))
            specs.append(ExpectationSpec("ExpectColumnValuesToBeInSet", col, {"value_set": values, "mostly": 0.95},
                                         why, "US state names, abbreviations or FIPS codes"))
        elif role == "email" and text:
            specs.append(ExpectationSpec("ExpectColumnValuesToMatchRegex", col, {"regex": _EMAIL_REGEX, "mostly": MOSTLY},
                                         why, "e-mail addresses"))
        elif role == "url" and text:
            specs.append(ExpectationSpec("ExpectColumnValuesToMatchRegex", col, {"regex": _URL_REGEX, "mostly": MOSTLY},
                                         why, "URLs"))
        elif role == "phone" and text:
            specs.append(ExpectationSpec("ExpectColumnValuesToMatchRegex", col, {"regex": _PHONE_REGEX, "mostly": MOSTLY},
                                         why, "phone numbers"))
        elif role == "identifier" and (meta.user_labelled or meta.unique_count == len(frame) - meta.missing_count):
            specs.append(ExpectationSpec("ExpectColumnValuesToBeUnique", col, {},
                                         why, "unique values"))
        if col == target:
            specs.append(ExpectationSpec("ExpectColumnValuesToNotBeNull", col, {"mostly": 0.5},
                                         "the target has a value in at least half of the rows", "target values"))
    return specs


def _quiet_gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _gx_suite(specs: list[ExpectationSpec]):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    suite = gx.ExpectationSuite(name="automodel_cleaned_frame")
    for spec in specs:
        expectation = getattr(gxe, spec.expectation)(column=spec.column, **spec.kwargs)
        expectation.meta = {"why": spec.why}
        suite.add_expectation(expectation)
    return suite


def run_suite(frame: pd.DataFrame, specs: list[ExpectationSpec], max_rows: int = 200_000) -> ValidationReport:
    """Validate ``frame`` (a fixed random sample of at most ``max_rows`` rows) with GX; explain each failure."""
    started = time.perf_counter()
    _quiet_gx()
    import warnings

    import great_expectations as gx

    sample = frame.sample(max_rows, random_state=0) if len(frame) > max_rows else frame
    # GX's pandas engine wants plain dtypes: Arrow-backed text becomes Python strings.
    sample = sample.apply(lambda s: s.astype(object).where(s.notna(), None) if isinstance(s.dtype, pd.StringDtype) else s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        context = gx.get_context(mode="ephemeral")
        try:
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context.variables.progress_bars = ProgressBarsConfig(globally=False)
        except (ImportError, AttributeError, TypeError, ValueError):  # other layouts of GX's config types: bars are cosmetic
            logging.getLogger(__name__).debug("could not turn GX progress bars off")
        batch_definition = (context.data_sources.add_pandas("automodel").add_dataframe_asset("cleaned_frame")
                            .add_batch_definition_whole_dataframe("whole"))
        suite = context.suites.add(_gx_suite(specs))
        batch = batch_definition.get_batch(batch_parameters={"dataframe": sample})
        result = batch.validate(suite, result_format="SUMMARY")
    by_key = {(s.expectation, s.column): s for s in specs}
    failed = []
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        column = config.kwargs.get("column")
        spec = by_key.get((_class_name(config.type), column)) or ExpectationSpec(_class_name(config.type), column)
        failed.append(_explain(spec, item.result or {}, sample, item.exception_info))
    return ValidationReport(success=bool(result.success), evaluated=len(result.results), failed=failed,
                            rows_validated=len(sample), rows_total=len(frame), seconds=round(time.perf_counter() - started, 3),
                            suite=[s.to_dict() for s in specs])


def validate_frame(frame: pd.DataFrame, metas: list[ColumnMeta], target: str | None = None, max_rows: int = 200_000) -> ValidationReport:
    return run_suite(frame, build_suite(frame, metas, target), max_rows=max_rows)


def _class_name(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def _examples(values) -> str:
    shown = [redact_pii(str(v)) for v in dict.fromkeys(str(v) for v in values or [])][:3]
    return ", ".join(repr(v) for v in shown)


def _explain(spec: ExpectationSpec, result: dict, frame: pd.DataFrame, exception_info) -> dict:
    col = spec.column
    unexpected = int(result.get("unexpected_count") or 0)
    percent = float(result.get("unexpected_percent") or 0.0)
    present = int((result.get("element_count") or len(frame)) - (result.get("missing_count") or 0))
    examples = _examples(result.get("partial_unexpected_list"))
    kind = spec.expectation
    if kind == "ExpectColumnToExist":
        text = f"Column {col!r} was profiled but is not in the cleaned frame; rerun the run from raw_dataset."
    elif kind == "ExpectColumnValuesToBeInTypeList":
        dtype = str(frame[col].dtype) if col in frame.columns else "missing"
        text = (f"Column {col!r} holds {dtype} values, not {spec.what}, although {spec.why}; "
                "correct the role with --label or fix the values.")
    elif kind == "ExpectColumnValuesToBeUnique":
        text = f"{unexpected} values in identifier column {col!r} repeat (e.g. {examples}); check for duplicated records or label it as categorical."
    elif kind == "ExpectColumnValuesToNotBeNull":
        text = f"Target column {col!r} is missing in {percent:.1f}% of rows; choose another target or fill it in."
    else:
        text = (f"{unexpected} of {present} values in {col!r} ({percent:.1f}%) are not {spec.what}"
                + (f" (e.g. {examples})" if examples else "") + f"; {spec.why}.")
    if isinstance(exception_info, dict) and exception_info.get("raised_exception"):
        text = f"The check of {col!r} ({kind}) could not run: {redact_pii(str(exception_info.get('exception_message', ''))[:200])}."
    return {"column": col, "expectation": kind, "unexpected_count": unexpected, "unexpected_percent": round(percent, 2),
            "examples": examples, "explanation": text}
