"""The Dask cluster the all-rows refit runs on: an existing scheduler (``AUTOMODEL_DASK_SCHEDULER``), or a
``LocalCluster`` of worker processes started for the refit and stopped after it.

A remote cluster's workers read the Parquet parts by path and unpickle the fitted preprocessing, so they need the
same automodel version installed and the AUTOMODEL_HOME folder mounted at the same path (docs/LARGE_TABLES.md).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from automodel.errors import AutomodelError


@dataclass(frozen=True)
class DaskConfig:
    scheduler: str = ""  # host:port or tcp://host:port of an existing scheduler; empty: a LocalCluster
    workers: int = 2  # LocalCluster worker processes
    threads_per_worker: int = 1
    worker_memory: str = "4GB"  # LocalCluster memory limit per worker process
    local_directory: str = ""  # LocalCluster spill folder (under AUTOMODEL_HOME)

    def describe(self) -> str:
        if self.scheduler:
            return f"the Dask cluster at {self.scheduler}"
        return f"a local Dask cluster of {self.workers} worker process{'es' if self.workers != 1 else ''}"


def config_from_settings(settings) -> DaskConfig:
    return DaskConfig(scheduler=settings.dask_scheduler, workers=int(settings.dask_workers), worker_memory=settings.dask_worker_memory,
                      local_directory=str(Path(settings.home) / "large" / "dask"))


@contextmanager
def dask_client(config: DaskConfig) -> Iterator:
    """A connected ``distributed.Client``; a LocalCluster it started is closed on exit."""
    from dask.distributed import Client, LocalCluster

    if config.scheduler:
        address = config.scheduler if "://" in config.scheduler else f"tcp://{config.scheduler}"
        try:
            client = Client(address, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise AutomodelError(f"Could not reach the Dask scheduler at {config.scheduler} ({type(exc).__name__}); start it, fix "
                                 "AUTOMODEL_DASK_SCHEDULER, or leave it empty for a local cluster.") from exc
        try:
            yield client
        finally:
            client.close()
        return
    if config.local_directory:
        Path(config.local_directory).mkdir(parents=True, exist_ok=True)
    # LightGBM's network set-up prints from C++ on the workers' standard output; the workers get standard error as theirs,
    # so a command's own output (`automodel run --json`) stays clean.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        cluster = LocalCluster(n_workers=max(1, config.workers), threads_per_worker=max(1, config.threads_per_worker), processes=True,
                               memory_limit=config.worker_memory or "auto", dashboard_address=None, silence_logs=logging.ERROR,
                               local_directory=config.local_directory or None)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def worker_count(client) -> int:
    return max(1, len(client.scheduler_info().get("workers", {})))
