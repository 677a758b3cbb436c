import dagster as dg

# One dynamic partition per run; its key is the run id recorded in the session store.
runs_partitions = dg.DynamicPartitionsDefinition(name="run_id")
