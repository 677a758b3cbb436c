import dagster as dg

# One dynamic partition per run; its key is the run id recorded in the session store (automodel.run_keys).
runs_partitions = dg.DynamicPartitionsDefinition(name="run_id")


def is_run_partitioned(asset) -> bool:
    """Whether an asset definition is partitioned by run: such assets make up the automodel_run job."""
    partitions = getattr(asset, "partitions_def", None)
    return isinstance(partitions, dg.DynamicPartitionsDefinition) and partitions.name == runs_partitions.name
