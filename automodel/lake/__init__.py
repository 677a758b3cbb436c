"""The data lake: catalog (semantic index), join keys, enrichment, scheduled syncs."""
