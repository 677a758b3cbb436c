"""local_drop_sensor on a real drop folder, called tick by tick; and its cursor as plain logic."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from automodel.sessions import SessionStore
from resources.settings import AutomodelSettings
from sensors.local_drop import LocalUpload, evaluate_local_drop, local_drop_sensor, plan_local_tick


def _age(path: Path, seconds: float = 10) -> None:
    """Make a file look written ``seconds`` ago, as a finished copy would."""
    past = time.time() - seconds
    os.utime(path, (past, past))


def _tick(instance, settings, cursor):
    result = local_drop_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"settings": settings}))
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def test_local_drops_run_once_and_partial_files_wait(home, tmp_path, penguins):
    drop = tmp_path / "drop"
    settings = AutomodelSettings.from_env(drop_dir=str(drop))
    instance = dg.DagsterInstance.ephemeral()
    for i in range(6):
        path = drop / ["gina", "hank"][i % 2] / f"p{i}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        penguins.iloc[i * 40:(i + 1) * 40].to_csv(path, index=False)
        _age(path)
    (drop / "top.csv").write_text(penguins.head(30).to_csv(index=False))
    _age(drop / "top.csv")
    for name in ("gina/copying.csv.part", "gina/.~lock.p0.csv#", "hank/readme.pdf"):
        (drop / name).write_text("a,b\n1,2\n")
    fresh = drop / "gina" / "still_copying.csv"
    fresh.write_text(penguins.head(50).to_csv(index=False))  # modified just now: may still be growing

    first = _tick(instance, settings, None)
    assert len(first.run_requests) == 7
    assert {r.tags["automodel/user"] for r in first.run_requests} == {"gina", "hank", "default"}
    assert len(instance.get_dynamic_partitions("run_id")) == 7
    store = SessionStore(settings.layout.sessions_db)
    assert all(store.manifest(r.partition_key).source_uri.startswith(str(home)) for r in first.run_requests), "uploads are staged under AUTOMODEL_HOME"

    assert _tick(instance, settings, first.cursor).run_requests == []
    _age(fresh)
    second = _tick(instance, settings, first.cursor)
    assert [r.tags["automodel/run_id"] for r in second.run_requests] == [r.partition_key for r in second.run_requests]
    assert len(second.run_requests) == 1 and "still_copying.csv" in second.run_requests[0].run_key
    third = _tick(instance, settings, second.cursor)
    assert third.run_requests == [] and "No new files" in third.skip_reason.skip_message
    assert len(instance.get_dynamic_partitions("run_id")) == 8


def test_replaced_file_runs_again_and_removed_files_leave_the_cursor(home, tmp_path, penguins):
    drop = tmp_path / "drop"
    (drop / "ivy").mkdir(parents=True)
    settings = AutomodelSettings.from_env(drop_dir=str(drop))
    instance = dg.DagsterInstance.ephemeral()
    path = drop / "ivy" / "data.csv"
    penguins.head(100).to_csv(path, index=False)
    _age(path, 20)
    first = _tick(instance, settings, None)
    assert len(first.run_requests) == 1
    penguins.head(150).to_csv(path, index=False)
    _age(path, 5)
    second = _tick(instance, settings, first.cursor)
    assert len(second.run_requests) == 1 and second.run_requests[0].partition_key != first.run_requests[0].partition_key
    path.unlink()
    assert '"seen":{}' in _tick(instance, settings, second.cursor).cursor


def test_a_tick_retried_after_a_failure_reuses_its_manifests(home, tmp_path, penguins):
    drop = tmp_path / "drop"
    (drop / "jo").mkdir(parents=True)
    settings = AutomodelSettings.from_env(drop_dir=str(drop))
    for i in range(3):
        penguins.iloc[i * 50:(i + 1) * 50].to_csv(drop / "jo" / f"f{i}.csv", index=False)
        _age(drop / "jo" / f"f{i}.csv")
    instance = dg.DagsterInstance.ephemeral()
    lost = evaluate_local_drop(settings, instance, None)  # its result never reached the daemon
    retried = evaluate_local_drop(settings, instance, None)
    assert [r.partition_key for r in retried.run_requests] == [r.partition_key for r in lost.run_requests]
    assert [r.run_key for r in retried.run_requests] == [r.run_key for r in lost.run_requests]
    assert len(SessionStore(settings.layout.sessions_db).list(100)) == 3


def test_quota_rejection_is_the_skip_reason(home, tmp_path, penguins):
    drop = tmp_path / "drop"
    (drop / "kim").mkdir(parents=True)
    settings = AutomodelSettings.from_env(drop_dir=str(drop), max_requests_free=1)
    for i in range(2):
        penguins.iloc[i * 50:(i + 1) * 50].to_csv(drop / "kim" / f"f{i}.csv", index=False)
        _age(drop / "kim" / f"f{i}.csv", 30 - i)
    instance = dg.DagsterInstance.ephemeral()
    first = _tick(instance, settings, None)
    assert len(first.run_requests) == 1
    (drop / "kim" / "f9.csv").write_text(penguins.tail(40).to_csv(index=False))
    _age(drop / "kim" / "f9.csv")
    second = _tick(instance, settings, first.cursor)
    assert second.run_requests == [] and "tier allows 1 runs" in second.skip_reason.skip_message and "f9.csv" in second.skip_reason.skip_message


def test_plan_defers_beyond_the_limit_and_never_skips():
    now = time.time_ns()
    uploads = [LocalUpload(f"u/f{i}.csv", Path(f"/x/u/f{i}.csv"), 10, now - 10**10 + i) for i in range(12)]
    cursor, taken = {}, []
    for _ in range(3):
        batch, waiting, cursor = plan_local_tick(uploads, cursor, now, settle_s=2, max_new=5)
        taken += [u.relative for u in batch]
    assert taken == [u.relative for u in uploads] and waiting == 0
    assert plan_local_tick(uploads, cursor, now, 2, 5)[0] == []


def test_a_failed_drop_run_is_recorded_as_failed_with_one_sentence(home, tmp_path):
    from automodel_assets.assets import ALL_ASSETS, RUN_ASSETS
    from automodel_assets.definitions import build_resources
    from sensors.run_status import run_failure_recorder

    drop = tmp_path / "drop"
    (drop / "lee").mkdir(parents=True)
    (drop / "lee" / "header_only.csv").write_text("state,population,area\n")  # a header and no rows
    _age(drop / "lee" / "header_only.csv")
    settings = AutomodelSettings.from_env(drop_dir=str(drop), enable_semantic_merge=False)
    instance = dg.DagsterInstance.ephemeral()
    request = _tick(instance, settings, None).run_requests[0]
    # What the daemon does with the request: the run job for that partition, with the request's tags.
    result = dg.materialize(ALL_ASSETS, instance=instance, partition_key=request.partition_key, resources=build_resources(settings),
                            selection=dg.AssetSelection.assets(*RUN_ASSETS), tags=request.tags, raise_on_error=False)
    assert not result.success
    store = SessionStore(settings.layout.sessions_db)
    assert store.get(request.partition_key)["status"] != "failed", "nothing has recorded the failure yet"
    context = dg.build_run_status_sensor_context(sensor_name="run_failure_recorder", dagster_event=result.get_run_failure_event(),
                                                 dagster_instance=instance, dagster_run=result.dagster_run,
                                                 resources={"settings": settings}).for_run_failure()
    run_failure_recorder(context)
    row = store.get(request.partition_key)
    assert row["status"] == "failed"
    assert row["error"] == "header_only.csv has a header but no data rows; add data and try again."
    assert not list((settings.layout.asset_dir).rglob(f"{request.partition_key}.*")), "partial outputs are removed"
