"""automodel core: plain-Python logic (loading, cleaning, roles, enrichment, outputs).

Nothing in this package imports Dagster; the Dagster wiring lives in ``automodel_assets``.
"""

__version__ = "0.1.0"
