"""The Dagster type of a run's table: a pandas DataFrame, or for a table above AUTOMODEL_LARGE_ROWS a TableRef to its
Parquet parts (automodel.large), so raw_dataset, cleaned_frame, enriched_frame and predictions can hand either on."""

import dagster as dg
import pandas as pd

from automodel.large.table import TableRef


class Table:
    """A run's table: a pandas DataFrame, or above AUTOMODEL_LARGE_ROWS a TableRef to its Parquet parts (automodel.large)."""


dg.make_python_type_usable_as_dagster_type(Table, dg.DagsterType(
    type_check_fn=lambda _, value: isinstance(value, (pd.DataFrame, TableRef)), name="Table", typing_type=Table,
    description="A pandas DataFrame, or for a table above AUTOMODEL_LARGE_ROWS a reference to its Parquet parts."))
