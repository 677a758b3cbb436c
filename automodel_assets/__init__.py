"""Dagster wiring for automodel: partitions, assets, checks, jobs, sensors' registration, Definitions, CLI."""
