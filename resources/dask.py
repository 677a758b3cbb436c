"""DaskResource: the Dask cluster a large table's final model is refit on (automodel.large.cluster).

Empty ``scheduler``: each refit starts a LocalCluster of ``workers`` processes and stops it afterwards. A scheduler
address (``AUTOMODEL_DASK_SCHEDULER``) sends the refit to an existing cluster instead (docs/LARGE_TABLES.md).
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from automodel.large.cluster import DaskConfig


class DaskResource(dg.ConfigurableResource):
    scheduler: str = ""
    workers: int = 2
    worker_memory: str = "4GB"
    local_directory: str = ""

    @classmethod
    def from_settings(cls, settings) -> "DaskResource":
        return cls(scheduler=settings.dask_scheduler, workers=settings.dask_workers, worker_memory=settings.dask_worker_memory,
                   local_directory=str(Path(settings.home) / "large" / "dask"))

    def config(self) -> DaskConfig:
        return DaskConfig(scheduler=self.scheduler, workers=self.workers, worker_memory=self.worker_memory,
                          local_directory=self.local_directory)
