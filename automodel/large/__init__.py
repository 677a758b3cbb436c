"""Tables larger than memory: DuckDB reads, cleans, profiles and joins them on disk; the model search runs on a
stratified sample and the chosen model is refit on every row on a Dask cluster; scoring streams in chunks.

The path is chosen by size (``AUTOMODEL_LARGE_ROWS``) when the run's file is first looked at; below the threshold
nothing changes. ``automodel.large.run`` holds the stages the assets call; docs/LARGE_TABLES.md says what runs where.
"""

from automodel.large.table import TableRef

__all__ = ["TableRef"]
