"""Drop-folder throughput and sensor tick cost, against a real S3-compatible server (moto, 127.0.0.1).

1. ``--files`` (100) files dropped at once under s3://drops/users/<user>/: one s3_drop_sensor tick
   records the manifests and requests the runs; the requested partitions are added as the daemon
   would, then the runs execute with the default executor (in-process, one run per process) and
   the default run concurrency of dagster.yaml (``--concurrency``, 4 run workers). Reports the time
   from the drop until every run succeeded.
2. ``--objects`` (10,000) objects under the prefix: the time of a tick that finds nothing new, of
   one that finds 50 new uploads among them, and the cursor's size.

Run: ``.venv/bin/python bench/drop.py`` (``--files 20 --objects 2000`` for a quick look).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")

BUCKET = "drops"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _client():
    import boto3

    return boto3.client("s3", region_name="us-east-1")


def _penguin_files(count: int) -> list[bytes]:
    """Different real files: 120-row slices of the Palmer penguins, each with one column left out."""
    import palmerpenguins

    penguins = palmerpenguins.load_penguins()
    files = []
    for i in range(count):
        start = (i * 37) % (len(penguins) - 120)
        part = penguins.iloc[start:start + 120].drop(columns=[["year", "sex", "island", "bill_depth_mm"][i % 4]])
        files.append(part.to_csv(index=False).encode())
    return files


def _run_worker(run_ids, results) -> None:
    """One run worker: materializes the partitions it is handed, one after another, with the in-process executor."""
    import warnings

    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("dagster").setLevel(logging.ERROR)
    from automodel_assets.runs import get_instance, materialize_run
    from resources.settings import AutomodelSettings

    settings = AutomodelSettings.from_env()
    instance = get_instance(settings.layout)
    while True:
        try:
            run_id = run_ids.get_nowait()
        except Exception:  # queue.Empty
            return
        start = time.perf_counter()
        outcome = materialize_run(settings, instance, run_id)
        results.put((run_id, outcome.success, time.perf_counter() - start, outcome.error))


def bench_drop(files: int, concurrency: int) -> dict:
    import dagster as dg

    from automodel.lake.catalog import build_index
    from automodel_assets.runs import get_instance
    from resources.settings import AutomodelSettings
    from sensors.s3_drop import evaluate_s3_drop

    settings = AutomodelSettings.from_env(s3_bucket=BUCKET, s3_prefix="users/", max_requests_free=10_000)
    build_index(settings.lake_path, settings.layout.catalog_db)  # the lake is indexed before uploads arrive, as in service
    instance = get_instance(settings.layout)
    client = _client()
    data = _penguin_files(files)
    dropped = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: client.put_object(Bucket=BUCKET, Key=f"users/user{i % 10}/drop_{i:03d}.csv", Body=data[i]), range(files)))
    upload_s = time.perf_counter() - dropped

    tick_start = time.perf_counter()
    result = evaluate_s3_drop(settings, instance, None)
    tick_s = time.perf_counter() - tick_start
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    run_ids = [r.partition_key for r in result.run_requests]
    assert len(run_ids) == files, f"the tick requested {len(run_ids)} runs for {files} files"

    context = multiprocessing.get_context("spawn")
    queue, results = context.Queue(), context.Queue()
    for run_id in run_ids:
        queue.put(run_id)
    workers = [context.Process(target=_run_worker, args=(queue, results)) for _ in range(concurrency)]
    runs_start = time.perf_counter()
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=3600) for _ in run_ids]
    for worker in workers:
        worker.join()
    done = time.perf_counter()
    failed = [(r, e) for r, ok, _, e in outcomes if not ok]
    per_run = sorted(s for _, ok, s, _ in outcomes if ok)
    statuses = {r.status for r in instance.get_runs(filters=dg.RunsFilter(tags={"automodel/run_id": run_ids[0]}))}
    return {
        "files": files, "concurrency": concurrency, "upload_s": round(upload_s, 2), "tick_s": round(tick_s, 2),
        "runs_s": round(done - runs_start, 1), "drop_to_all_succeeded_s": round(done - dropped, 1),
        "succeeded": len(per_run), "failed": len(failed), "first_failures": failed[:3],
        "run_s_median": round(statistics.median(per_run), 2) if per_run else None,
        "run_s_p95": round(per_run[int(len(per_run) * 0.95) - 1], 2) if per_run else None,
        "runs_per_minute": round(len(per_run) / (done - runs_start) * 60, 1), "dagster_status_of_first": sorted(s.value for s in statuses),
    }


def bench_tick(objects: int, new: int) -> dict:
    import dagster as dg

    from resources.settings import AutomodelSettings
    from sensors.s3_drop import evaluate_s3_drop, list_prefix, plan_listing, uploads_under

    settings = AutomodelSettings.from_env(s3_bucket=BUCKET, s3_prefix="big/", max_requests_free=10**6)
    client = _client()
    body = _penguin_files(1)[0]
    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: client.put_object(Bucket=BUCKET, Key=f"big/user{i % 50}/f{i:05d}.csv", Body=body), range(objects)))
    upload_s = time.perf_counter() - start
    listed = list_prefix(client, BUCKET, "big/")
    # The cursor a sensor holds once every object so far was handled.
    handled = plan_listing(uploads_under(listed, "big/"), {}, settings.s3_listing_overlap_s, max_new=10**9).cursor
    cursor = json.dumps(handled, separators=(",", ":"))
    instance = dg.DagsterInstance.ephemeral()
    idle = []
    for _ in range(3):
        tick_start = time.perf_counter()
        result = evaluate_s3_drop(settings, instance, cursor, client=client)
        idle.append(time.perf_counter() - tick_start)
        assert not result.run_requests
    for i in range(new):
        client.put_object(Bucket=BUCKET, Key=f"big/late/n{i:03d}.csv", Body=body)
    tick_start = time.perf_counter()
    result = evaluate_s3_drop(settings, instance, cursor, client=client)
    busy = time.perf_counter() - tick_start
    assert len(result.run_requests) == new
    list_start = time.perf_counter()
    list_prefix(client, BUCKET, "big/")
    list_s = time.perf_counter() - list_start
    return {"objects": objects, "upload_s": round(upload_s, 1), "list_s": round(list_s, 2),
            "idle_tick_s_median": round(statistics.median(idle), 2), f"tick_with_{new}_new_s": round(busy, 2),
            "cursor_bytes_after_idle": len(cursor), "cursor_bytes_after_new": len(result.cursor),
            "overlap_s": settings.s3_listing_overlap_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=4, help="run workers at once (dagster.yaml max_concurrent_runs)")
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--search-budget", type=float, default=5.0, help="AUTOMODEL_SEARCH_BUDGET_S for each run")
    parser.add_argument("--skip-runs", action="store_true")
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    port = _free_port()
    home = tempfile.mkdtemp(prefix="automodel-bench-drop-")
    os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1", "AUTOMODEL_HOME": home, "AUTOMODEL_LAKE": str(REPO / "datasets"),
                       "AUTOMODEL_SEARCH_BUDGET_S": str(args.search_budget), "AUTOMODEL_EXECUTOR": "in_process"})
    os.environ.pop("DAGSTER_HOME", None)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        _client().create_bucket(Bucket=BUCKET)
        report = {"machine_cpus": os.cpu_count(), "search_budget_s": args.search_budget}
        if not args.skip_runs:
            report["drop"] = bench_drop(args.files, args.concurrency)
            print(json.dumps({"drop": report["drop"]}), flush=True)
        report["tick"] = bench_tick(args.objects, 50)
        print(json.dumps({"tick": report["tick"]}), flush=True)
    finally:
        server.stop()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
