"""Dagster resources: settings, storage backends, and the stores the assets share."""

from resources.settings import AutomodelSettings
from resources.storage import StorageResource

__all__ = ["AutomodelSettings", "StorageResource"]
