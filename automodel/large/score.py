"""Scoring a table of any size in chunks: predictions as Parquet parts (with ``__row``) and the CSV users expect,
streamed, in the input's row order. Memory holds one chunk at a time.

A row's prediction does not depend on the rows scored with it (``automodel.stages.predict_rows``), so the chunked
predictions equal those of the whole table scored at once.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from automodel.atomic import atomic_path
from automodel.large.table import ROW, PartWriter, TableRef


def score_table(ref: TableRef, fitted, parts_dir: Path, csv_path: Path, chunk_rows: int = 250_000) -> TableRef:
    """Every row of ``ref`` scored by ``fitted``; returns the predictions as a TableRef (their CSV at ``csv_path``)."""
    from automodel.export import protect_formulas
    from automodel.stages import predict_rows

    writer = PartWriter(parts_dir)
    first = True
    try:
        with atomic_path(csv_path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            for part in ref.batches(columns=list(fitted.feature_columns)):
                for start in range(0, len(part), chunk_rows):
                    chunk = part.iloc[start: start + chunk_rows]
                    predictions = predict_rows(fitted, chunk.drop(columns=[ROW]).reset_index(drop=True))
                    protect_formulas(predictions).to_csv(handle, header=first, index=False)
                    predictions.insert(0, ROW, chunk[ROW].to_numpy())
                    writer.write(predictions)
                    first = False
        writer.commit()
    except Exception:
        writer.abort()
        raise
    return TableRef(path=str(parts_dir), columns=dict(writer.dtypes), rows=writer.rows, kind="predictions",
                    source={"csv": str(csv_path)})


def rows_of(predictions: TableRef, positions) -> pd.DataFrame:
    """The predictions of the rows at these positions, in file order."""
    from automodel.large.profile import _rows_at

    return _rows_at(predictions, positions).drop(columns=[ROW]).reset_index(drop=True)
