"""Safe exports: spreadsheet formula injection is neutralised in every CSV we write."""

from __future__ import annotations

import re

import pandas as pd

# A spreadsheet runs a cell as a formula when it starts with one of these; tab and line breaks hide one after them.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
# A plain signed number ("-3.5", "+1e3") is data a spreadsheet reads as a number, not a formula: left as written.
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _protect(value):
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def protect_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with a single quote (numbers are left alone).
    Header cells are cells too: a column named ``=cmd|' /C calc'!A0`` is written ``'=cmd|' /C calc'!A0``."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(_protect)
    out.columns = [_protect(str(c)) if isinstance(c, str) else c for c in out.columns]
    return out


def write_protected_csv(frame: pd.DataFrame, path) -> None:
    """``frame`` as CSV at ``path`` with formula cells protected (the caller makes the write atomic). Lines end in CRLF
    (RFC 4180), which also makes the writer quote a cell holding a lone carriage return instead of splitting the row."""
    protect_formulas(frame).to_csv(path, index=False, lineterminator="\r\n")
