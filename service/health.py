"""``GET /health``: can the service take runs, and will they run?

- instance: the Dagster instance opens, its storage kind, and whether it has a run queue (the service submits to it);
- daemon: the newest heartbeat of the Dagster daemon (the queue's runs are launched by it); stale past DAEMON_STALE_S;
- storage: AUTOMODEL_HOME is writable and its free space;
- lake_index: the age of the catalog and whether it matches the lake as it is now.

``status`` is ``ok`` when every part is, else ``degraded`` (HTTP 503), each part saying why.
"""

from __future__ import annotations

import shutil
import tempfile
import time

from resources.settings import AutomodelSettings

DAEMON_STALE_S = 120.0


def _instance_part(instance_getter) -> tuple[dict, object | None]:
    try:
        instance = instance_getter()
    except Exception as exc:
        return {"ok": False, "reason": f"The Dagster instance did not open ({type(exc).__name__})."}, None
    from service.launch import has_run_queue

    storage = type(instance.run_storage).__name__.replace("RunStorage", "").lower() or "unknown"
    queue = has_run_queue(instance)
    part = {"ok": queue, "storage": storage, "run_queue": queue}
    if not queue:
        part["reason"] = "The instance has no run queue (QueuedRunCoordinator); the service cannot submit runs."
    return part, instance


def _daemon_part(instance) -> dict:
    if instance is None:
        return {"ok": False, "reason": "No instance to read the daemon's heartbeat from."}
    try:
        beats = instance.get_daemon_heartbeats()
    except Exception as exc:
        return {"ok": False, "reason": f"The daemon's heartbeats could not be read ({type(exc).__name__})."}
    stamps = [beat.timestamp for beat in beats.values() if beat is not None]
    if not stamps:
        return {"ok": False, "heartbeat_age_s": None,
                "reason": "No Dagster daemon has run on this instance; start one (`make dev`, or `automodel serve` starts it)."}
    age = max(0.0, time.time() - max(stamps))
    part = {"ok": age <= DAEMON_STALE_S, "heartbeat_age_s": round(age, 1), "daemons": sorted(beats)}
    if not part["ok"]:
        part["reason"] = f"The daemon's last heartbeat is {age:.0f} s old; queued runs wait until it runs again."
    return part


def _storage_part(settings: AutomodelSettings) -> dict:
    home = settings.layout.home
    try:
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=home, prefix=".health-", delete=True):
            pass
        free = shutil.disk_usage(home).free
    except OSError as exc:
        return {"ok": False, "reason": f"AUTOMODEL_HOME is not writable ({type(exc).__name__})."}
    part = {"ok": free > 256 * 1024**2, "free_bytes": free, "asset_store": "s3" if str(settings.asset_store).startswith("s3://") else "local"}
    if not part["ok"]:
        part["reason"] = "Less than 256 MB free under AUTOMODEL_HOME; uploads and runs will fail."
    return part


def _lake_part(settings: AutomodelSettings) -> dict:
    catalog = settings.layout.catalog_db
    if not settings.enable_semantic_merge:
        return {"ok": True, "enabled": False}
    if not catalog.exists():
        return {"ok": True, "age_s": None, "current": False, "note": "Not built yet; the first run builds it."}
    age = max(0.0, time.time() - catalog.stat().st_mtime)
    try:
        from automodel.lake.catalog import index_is_current

        current = bool(index_is_current(settings.lake_path, catalog))
    except Exception as exc:
        return {"ok": False, "age_s": round(age, 1), "reason": f"The lake could not be read ({type(exc).__name__})."}
    part = {"ok": True, "age_s": round(age, 1), "current": current}
    if not current:
        part["note"] = "The lake changed since the index was built; the next run (or the lake sensor) rebuilds it."
    return part


def health_report(settings: AutomodelSettings, instance_getter) -> dict:
    instance_part, instance = _instance_part(instance_getter)
    parts = {"instance": instance_part, "daemon": _daemon_part(instance), "storage": _storage_part(settings), "lake_index": _lake_part(settings)}
    return {"status": "ok" if all(p["ok"] for p in parts.values()) else "degraded", **parts}
