"""Hostile-input figures for RELIABILITY.md (issue 16, findings 4, 5 and 8).

- bombs: a CSV of zeros compressed as gzip and zip that inflates to --gib GiB (generated here under a temporary
  folder, never committed), loaded in this process (time to refuse, Python peak memory) and through the real
  command line (`inspect` and `run`: exit code, wall time, peak RSS of the process; a tiny CSV gives the baseline
  a command costs anyway);
- damaged archives: truncated and garbled gzip, truncated zip: `inspect`, `run` and `score` exit codes and the sentence;
- wide table: --columns columns x 30 rows of real-looking values: time for the command line to refuse it (default
  column limit), and with the limit off, time to load it and to normalise its text (the stage the issue saw stuck),
  against the column-by-column path on a slice;
- encodings: real place names written in non-Latin code pages, the encoding found and its confidence.

    .venv/bin/python bench/hostile_inputs.py [--gib 2] [--columns 50000] [--skip-cli]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

_MB = 1024 * 1024
_LINE = b"0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0\n"
_HEADER = b",".join(f"c{i}".encode() for i in range(32)) + b"\n"


def write_bombs(folder: Path, gib: float) -> dict[str, Path]:
    """gzip and zip of a CSV of zeros inflating to ``gib`` GiB, streamed to disk (never held)."""
    block = _LINE * (_MB // len(_LINE))
    blocks = int(gib * 1024)
    paths = {"gzip": folder / "zeros.csv.gz", "zip": folder / "zeros.zip"}
    with gzip.open(paths["gzip"], "wb", compresslevel=9) as out:
        out.write(_HEADER)
        for _ in range(blocks):
            out.write(block)
    with zipfile.ZipFile(paths["zip"], "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive, \
            archive.open("zeros.csv", "w", force_zip64=True) as out:
        out.write(_HEADER)
        for _ in range(blocks):
            out.write(block)
    return paths


def in_process(name: str, data: bytes) -> dict:
    from automodel.errors import AutomodelError
    from automodel.ingest.loader import load_bytes

    tracemalloc.start()
    started = time.perf_counter()
    try:
        load_bytes(name, data)
        outcome = "loaded"
    except AutomodelError as exc:
        outcome = str(exc)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"seconds": round(seconds, 3), "python_peak_mb": round(peak / _MB, 1), "outcome": outcome}


def cli(args: list[str], home: Path, extra_env: dict | None = None) -> dict:
    """One command in a child process: exit code, wall seconds, the child's peak RSS, the last stderr line."""
    env = {**os.environ, "AUTOMODEL_HOME": str(home), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "ENABLE_SEMANTIC_MERGE": "0", **(extra_env or {})}
    script = ("import resource, subprocess, sys, json, time; t = time.perf_counter(); "
              "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
              "print(json.dumps({'code': p.returncode, 'seconds': time.perf_counter() - t, "
              "'rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 'err': p.stderr.strip().splitlines()[-1:] }))")
    done = subprocess.run([sys.executable, "-c", script, sys.executable, "-m", "automodel_assets.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=900, check=False)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return {"exit": out["code"], "seconds": round(out["seconds"], 2), "peak_rss_mb": round(out["rss_mb"], 1),
            "stderr": (out["err"] or [""])[0][:300]}


def bomb_figures(work: Path, gib: float, with_cli: bool) -> dict:
    started = time.perf_counter()
    paths = write_bombs(work, gib)
    figures = {"generated_in_s": round(time.perf_counter() - started, 1), "inflated_gib": gib}
    tiny = work / "tiny.csv"
    tiny.write_text("a,b\n1,2\n3,4\n")
    if with_cli:
        figures["cli_baseline_inspect_tiny_csv"] = cli(["inspect", str(tiny)], work / "home")
    for kind, path in paths.items():
        data = path.read_bytes()
        entry = {"compressed_mb": round(len(data) / _MB, 2), "in_process": in_process(path.name, data)}
        if with_cli:
            entry["cli_inspect"] = cli(["inspect", str(path)], work / "home")
            entry["cli_run"] = cli(["run", str(path)], work / "home")
        figures[kind] = entry
    return figures


def damaged_figures(work: Path) -> dict:
    import palmerpenguins

    text = palmerpenguins.load_penguins().to_csv(index=False).encode()
    packed = gzip.compress(text)
    garbled = bytearray(packed)
    garbled[40:60] = b"\xff" * 20
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("penguins.csv", text)
    files = {"truncated.csv.gz": packed[: len(packed) // 2], "garbled.csv.gz": bytes(garbled),
             "truncated.zip": zipped.getvalue()[: len(zipped.getvalue()) // 2]}
    out = {}
    for name, data in files.items():
        path = work / name
        path.write_bytes(data)
        out[name] = {cmd: cli(args, work / "home") for cmd, args in (
            ("inspect", ["inspect", str(path)]), ("run", ["run", str(path)]), ("score", ["score", str(path), "--model", "any-run"]))}
    return out


def wide_table(columns: int, rows: int = 30) -> bytes:
    rng = np.random.default_rng(0)
    data = {}
    for j in range(columns):
        kind = j % 3
        if kind == 0:
            data[f"c{j}"] = rng.normal(size=rows).round(3)
        elif kind == 1:
            data[f"c{j}"] = rng.integers(0, 100, rows)
        else:
            data[f"c{j}"] = rng.choice(["red", "green", "blue", "n/a", " Blue "], rows)
    return pd.DataFrame(data).to_csv(index=False).encode()


def wide_figures(work: Path, columns: int, with_cli: bool) -> dict:
    from automodel.errors import AutomodelError
    from automodel.ingest import cleaning
    from automodel.ingest.archive import InputLimits
    from automodel.ingest.loader import load_bytes

    data = wide_table(columns)
    path = work / "wide.csv"
    path.write_bytes(data)
    figures = {"columns": columns, "rows": 30, "file_mb": round(len(data) / _MB, 1)}
    started = time.perf_counter()
    try:
        load_bytes("wide.csv", data)
        figures["in_process_refusal"] = "loaded (limit not reached)"
    except AutomodelError as exc:  # the refusal is the figure
        figures["in_process_refusal"] = {"seconds": round(time.perf_counter() - started, 3), "message": str(exc)}
    if with_cli:
        figures["cli_inspect_default_limit"] = cli(["inspect", str(path)], work / "home")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    loaded, _ = load_bytes("wide.csv", data, limits=InputLimits(max_columns=0))
    figures["load_without_limit_s"] = round(time.perf_counter() - started, 2)
    figures["load_peak_rss_mb"] = round(max(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), 1)
    figures["loader_columns_found"] = int(loaded.shape[1])
    del loaded
    # Normalisation is timed on the table exactly as written (pyarrow's reader, every cell Arrow text), whatever the
    # loader's dialect sniffing makes of a header line longer than its sample.
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(
        column_types={f"c{j}": pa.string() for j in range(columns)}, strings_can_be_null=False))
    raw = pd.DataFrame({name: pd.arrays.ArrowStringArray(table.column(name)) for name in table.column_names}, copy=False)
    del table
    started = time.perf_counter()
    cleaning.normalize_text(raw, cleaning.CleaningReport())
    figures["normalize_text_wide_s"] = round(time.perf_counter() - started, 2)
    part = raw.iloc[:, :2000]
    started = time.perf_counter()
    cleaning.normalize_text(part, cleaning.CleaningReport(), _wide=False)
    per_column = time.perf_counter() - started
    figures["normalize_text_column_by_column_2000_columns_s"] = round(per_column, 2)
    figures["normalize_text_column_by_column_extrapolated_s"] = round(per_column * columns / 2000, 1)
    if with_cli:
        small = work / "wide_2000.csv"
        small.write_bytes(wide_table(2000))
        figures["cli_inspect_2000_columns"] = cli(["inspect", str(small)], work / "home")
    return figures


def encoding_figures() -> dict:
    from test_hostile_inputs import _places_csv

    from automodel.ingest.loader import load_bytes

    out = {}
    for encoding in ("shift_jis", "euc_jp", "gb18030", "gbk", "euc_kr", "big5", "cp1251", "koi8_r"):
        _, rows, data = _places_csv(encoding)
        frame, info = load_bytes("places.csv", data)
        out[encoding] = {"found": info.encoding, "confidence": info.encoding_confidence,
                         "text_intact": frame.iloc[:, 1].tolist() == [r[1] for r in rows]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--columns", type=int, default=50_000)
    parser.add_argument("--skip-cli", action="store_true", help="in-process figures only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hostile-") as folder:
        work = Path(folder)
        report = {"machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
                  "bombs": bomb_figures(work, args.gib, not args.skip_cli)}
        if not args.skip_cli:
            report["damaged"] = damaged_figures(work)
        report["wide"] = wide_figures(work, args.columns, not args.skip_cli)
        report["encodings"] = encoding_figures()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
