"""local_drop_sensor: each new file in the local drop folder becomes a run (partition + manifest + run request).

Layout: ``<drop>/<user_id>/<file>`` gives the user; files directly in ``<drop>`` belong to ``default``.
A file's run id is derived from its path, size and mtime, so a tick that fails half way and is
retried requests the same runs (run keys deduplicate), and a re-upload runs again.
"""


import hashlib
import json
from pathlib import Path

import dagster as dg

from automodel.errors import AutomodelError
from automodel.ingest import is_supported
from automodel.sessions import SessionStore
from resources.settings import AutomodelSettings

PARTIAL_SUFFIXES = (".part", ".tmp", ".crdownload", ".partial", ".download")


def drop_folder(settings: AutomodelSettings) -> Path:
    return Path(settings.drop_dir).expanduser() if settings.drop_dir else settings.layout.drop_dir


def scan_drop_folder(folder: Path) -> list[tuple[str, str, Path, int, int]]:
    """(user, relative path, path, size, mtime_ns) of complete, supported files, oldest first."""
    found = []
    if not folder.exists():
        return found
    for path in folder.rglob("*"):
        if not path.is_file() or path.name.startswith((".", "~")) or path.name.endswith(PARTIAL_SUFFIXES) or not is_supported(path.name):
            continue
        rel = path.relative_to(folder)
        user = rel.parts[0] if len(rel.parts) > 1 else "default"
        stat = path.stat()
        found.append((user, rel.as_posix(), path, stat.st_size, stat.st_mtime_ns))
    return sorted(found, key=lambda f: (f[4], f[1]))


def drop_run_id(rel: str, size: int, mtime_ns: int) -> str:
    return "drop-" + hashlib.sha1(f"{rel}|{size}|{mtime_ns}".encode()).hexdigest()[:16]


@dg.sensor(job_name="automodel_run", minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Starts a run for each new file in the local drop folder (AUTOMODEL_DROP_DIR).")
def local_drop_sensor(context: dg.SensorEvaluationContext, settings: AutomodelSettings) -> dg.SensorResult:
    from automodel_assets.runs import create_run

    cursor = json.loads(context.cursor) if context.cursor else {}
    seen: dict = cursor.get("seen", {})
    requests, new_keys, skipped = [], [], []
    store = SessionStore(settings.layout.sessions_db)
    for user, rel, path, size, mtime_ns in scan_drop_folder(drop_folder(settings)):
        version = f"{size}:{mtime_ns}"
        if seen.get(rel) == version:
            continue
        run_id = drop_run_id(rel, size, mtime_ns)
        if store.get(run_id) is None:
            try:
                create_run(settings, context.instance, str(path), user_id=user, run_id=run_id, add_partition=False)
            except AutomodelError as exc:
                skipped.append(f"{rel}: {exc}")
                seen[rel] = version
                continue
        new_keys.append(run_id)
        requests.append(dg.RunRequest(partition_key=run_id, run_key=f"{rel}@{version}"))
        seen[rel] = version
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[dg.DynamicPartitionsDefinition(name="run_id").build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps({"seen": seen}),
        skip_reason="; ".join(skipped) if skipped and not requests else None,
    )
