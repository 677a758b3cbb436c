"""local_drop_sensor: each new file in the local drop folder becomes a run (partition + manifest + run request).

Layout: ``<drop>/<user_id>/<file>`` gives the user; files directly in ``<drop>`` belong to ``default``.

The cursor maps each file still in the folder to the version (size, mtime) already handled. A
watermark on mtime would not do here: ``mv`` and ``cp -p`` keep a file's old mtime, so a new
upload can look older than the last one. Files removed from the folder leave the cursor, so it
stays as large as the folder. A file is taken only once it has not changed for ``settle_s``
seconds, so a copy in progress is picked up by a later tick instead of half-written. A file's run
id is derived from its path, size and mtime: a tick that fails half way and is retried reuses the
manifests it already recorded (run keys deduplicate the requests), and a re-upload runs again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from automodel.errors import AutomodelError, UnsafePathError
from automodel.safety import open_inside, private_copy_inside, regular_files_inside
from automodel.sessions import SessionStore
from automodel_assets.intake import create_run, stored_run_tags
from resources.settings import AutomodelSettings
from sensors.drop_common import PARTIAL_SUFFIXES, TickPlan, drop_run_id, is_upload, sidecar_options, user_of

__all__ = ["PARTIAL_SUFFIXES", "drop_folder", "local_drop_sensor", "plan_local_tick", "scan_drop_folder"]

SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class LocalUpload:
    relative: str
    path: Path
    size: int
    mtime_ns: int

    @property
    def version(self) -> str:
        return f"{self.size}:{self.mtime_ns}"


def drop_folder(settings: AutomodelSettings) -> Path:
    return Path(settings.drop_dir).expanduser() if settings.drop_dir else settings.layout.drop_dir


def scan_drop_folder(folder: Path) -> list[LocalUpload]:
    """Finished uploads of supported formats, oldest first; symbolic links (to files or folders) are never followed."""
    if not folder.exists():
        return []
    found = [LocalUpload(relative, folder / relative, info.st_size, info.st_mtime_ns)
             for relative, info in regular_files_inside(folder) if is_upload(relative)]
    return sorted(found, key=lambda f: (f.mtime_ns, f.relative))


def plan_local_tick(uploads: list[LocalUpload], cursor: dict, now_ns: int, settle_s: float, max_new: int) -> tuple[list[LocalUpload], int, dict]:
    """(uploads to handle now, how many wait for a later tick, the cursor once they are handled)."""
    seen: dict = cursor.get("seen", {})
    settled_before = now_ns - int(settle_s * 1e9)
    new = [u for u in uploads if seen.get(u.relative) != u.version]
    ready = [u for u in new if u.mtime_ns <= settled_before]
    taken = ready[:max_new]
    present = {u.relative for u in uploads}
    next_seen = {rel: version for rel, version in seen.items() if rel in present}
    next_seen.update({u.relative: u.version for u in taken})
    return taken, len(new) - len(taken), {"seen": next_seen}


def _read_if_file(folder: Path, relative: str) -> bytes | None:
    """A sidecar's bytes, or None when there is none; a sidecar that is a link is ignored like a missing one."""
    try:
        with open_inside(folder, relative) as handle:
            return handle.read()
    except UnsafePathError:
        return None


def evaluate_local_drop(settings: AutomodelSettings, instance: dg.DagsterInstance, cursor_text: str | None,
                        context: dg.SensorEvaluationContext | None = None, settle_s: float = SETTLE_SECONDS) -> dg.SensorResult:
    folder = drop_folder(settings)
    cursor = json.loads(cursor_text) if cursor_text else {}
    taken, waiting, next_cursor = plan_local_tick(scan_drop_folder(folder), cursor, time.time_ns(), settle_s, settings.max_runs_per_tick)
    tick = TickPlan(deferred=waiting)
    store = SessionStore(settings.layout.sessions_db)
    for upload in taken:
        run_id = drop_run_id("drop", f"{upload.relative}|{upload.size}|{upload.mtime_ns}", upload.path.name, upload.mtime_ns / 1e9)
        user = user_of(upload.relative)
        if store.get(run_id) is None:
            try:
                options = sidecar_options(lambda rel: _read_if_file(folder, rel), upload.relative)
                # Read through a no-follow open of each path step: a link swapped in after the scan is refused, not followed.
                with private_copy_inside(folder, upload.relative, settings.layout.home / "tmp") as copy:
                    create_run(settings, instance, str(copy), user_id=user, run_id=run_id, add_partition=False, target=options.target,
                               labels=options.labels, category=options.category, options=options.options, from_drop=True)
            except AutomodelError as exc:
                if upload.path.exists():
                    tick.skipped.append(f"{upload.relative}: {exc}")
                continue
        tick.add(run_id, f"{upload.relative}@{upload.version}", user, stored_run_tags(store, run_id, "local_drop_sensor"))
    return tick.result(json.dumps(next_cursor, separators=(",", ":")), context, idle_reason=f"No new files in {folder}.")


@dg.sensor(job_name="automodel_run", minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Starts a run for each new file in the local drop folder (AUTOMODEL_DROP_DIR, <drop>/<user>/<file>). "
                       "Files still being written, partial and temporary names are left for a later tick.")
def local_drop_sensor(context: dg.SensorEvaluationContext, settings: AutomodelSettings) -> dg.SensorResult:
    return evaluate_local_drop(settings, context.instance, context.cursor, context=context)
