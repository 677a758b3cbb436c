"""Options for a file dropped into a drop folder, from a sidecar file beside it.

An upload cannot pass ``--target``; a sidecar can. ``sales.csv`` (or ``sales.csv.gz``) takes its
options from ``sales.automodel.json`` in the same folder::

    {"target": "revenue", "labels": {"store_id": "identifier"}, "budget_s": 30, "category": "retail", "drop": ["refund_date"],
     "validate": "time:order_date"}

``{"model": "RUN_ID"}`` makes the drop a scoring run: the file is scored with that run's model (no
training), read exactly as the model's training file was. Every key is optional. Write the sidecar before the data file (or in the same moment): the data
file's run reads it when the file is picked up. A sidecar that cannot be used refuses the upload
with one sentence naming the sidecar and the key (the sensor's skip reason); fix it and upload the
data file again. More keys are added by adding a validator to ``OPTION_VALIDATORS``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from automodel.errors import InputFileError
from automodel.run_keys import without_format_suffix

SIDECAR_SUFFIX = ".automodel.json"
MAX_BUDGET_S = 3600.0


def is_sidecar(name: str) -> bool:
    return name.lower().endswith(SIDECAR_SUFFIX)


def sidecar_name(data_file_name: str) -> str:
    """``sales.csv`` -> ``sales.automodel.json``; ``sales.csv.gz`` -> ``sales.automodel.json``; folders are kept."""
    folder, _, name = data_file_name.rpartition("/")
    name = without_format_suffix(name)
    return f"{folder}/{name}{SIDECAR_SUFFIX}" if folder else f"{name}{SIDECAR_SUFFIX}"


@dataclass
class DropOptions:
    target: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    category: str | None = None
    # Everything else a run takes from the sidecar (budget_s, and any key added to OPTION_VALIDATORS).
    options: dict[str, Any] = field(default_factory=dict)


def _text(sidecar: str, key: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputFileError(f"{sidecar}: {key!r} must be a non-empty text (a column name as the file writes it); fix the sidecar and upload the file again.")
    return value


def _labels(sidecar: str, key: str, value) -> dict[str, str]:
    from automodel.ingest.role_words import ROLES

    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InputFileError(f"{sidecar}: 'labels' must map column names to roles, e.g. {{\"store_id\": \"identifier\"}}; fix the sidecar and upload the file again.")
    for column, role in value.items():
        if role not in ROLES:
            raise InputFileError(f"{sidecar}: label {column!r} has role {role!r}, which is not one of {', '.join(ROLES)}; fix the sidecar and upload the file again.")
    return dict(value)


def _budget(sidecar: str, key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_BUDGET_S:
        raise InputFileError(f"{sidecar}: 'budget_s' must be a number of seconds above 0 and at most {MAX_BUDGET_S:g}; fix the sidecar and upload the file again.")
    return float(value)


def _model(sidecar: str, key: str, value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputFileError(f"{sidecar}: 'model' must be the run id of a run that trained a model (see `automodel sessions`); "
                             "fix the sidecar and upload the file again.")
    return value.strip()


def _columns(sidecar: str, key: str, value) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(c, str) and c.strip() for c in value):
        raise InputFileError(f"{sidecar}: {key!r} must be a list of column names, e.g. [\"primary_breed\"]; fix the sidecar and upload the file again.")
    return list(dict.fromkeys(value))


def _validate(sidecar: str, key: str, value) -> str:
    from analyzers.validation import parse_validate

    try:
        parse_validate(value)
    except ValueError:
        raise InputFileError(f"{sidecar}: 'validate' must be \"random\", \"time:COL\" or \"group:COL\" (e.g. \"time:date\"); "
                             "fix the sidecar and upload the file again.") from None
    return value.strip()


def _flag(sidecar: str, key: str, value) -> bool:
    if not isinstance(value, bool):
        raise InputFileError(f"{sidecar}: {key!r} must be true or false; fix the sidecar and upload the file again.")
    return value


def column_choices(source: str, keep: list[str] | None, drop: list[str] | None) -> dict[str, list[str]]:
    """The user's calls on single columns for the leakage guard (``--keep``/``--drop``, or the sidecar's keys)."""
    keep, drop = list(dict.fromkeys(keep or [])), list(dict.fromkeys(drop or []))
    both = [c for c in keep if c in drop]
    if both:
        raise InputFileError(f"{source}: column {both[0]!r} is both kept and dropped; choose one.")
    return {k: v for k, v in (("keep", keep), ("drop", drop)) if v}


OPTION_VALIDATORS: dict[str, Callable[[str, str, Any], Any]] = {
    "target": _text, "labels": _labels, "category": _text, "budget_s": _budget,
    "model": _model,  # score the file with that run's model (like `automodel score`) instead of training
    # Columns the leakage guard must keep, and columns to leave out of the model (analyzers.leakage).
    "keep": _columns, "drop": _columns,
    "validate": _validate,  # the validation scheme, like `automodel run --validate` (analyzers.validation)
    "lags": _flag,  # the target's past is known when scoring: lag features (analyzers.lags), like `automodel run --lags`
}


def parse_sidecar(sidecar: str, data: bytes) -> DropOptions:
    """Validate a sidecar's bytes; ``sidecar`` is its name as the user sees it (for the message)."""
    try:
        parsed = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" ({exc.msg} at line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise InputFileError(f"{sidecar} is not valid JSON{where}; fix the sidecar and upload the file again.") from exc
    if not isinstance(parsed, dict):
        raise InputFileError(f"{sidecar} must hold a JSON object such as {{\"target\": \"revenue\"}}; fix the sidecar and upload the file again.")
    unknown = sorted(set(parsed) - set(OPTION_VALIDATORS))
    if unknown:
        raise InputFileError(f"{sidecar}: unknown option {unknown[0]!r}; use {', '.join(sorted(OPTION_VALIDATORS))}.")
    values = {key: OPTION_VALIDATORS[key](sidecar, key, value) for key, value in parsed.items() if value is not None}
    column_choices(sidecar, values.get("keep"), values.get("drop"))
    return DropOptions(target=values.pop("target", None), labels=values.pop("labels", {}), category=values.pop("category", None),
                       options=values)
