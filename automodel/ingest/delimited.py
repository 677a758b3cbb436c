"""Reading delimited text that a person can read, however it was written.

The steps, each named in what the loader reports:
1. dialect: delimiter, quote and escape scored on a sample (``dialect.detect``);
2. records: lines split into cells; a quoted value may span lines, a quote that never closes is a literal
   character of its cell (``parse_records``);
3. layout: lines before the table, header rows (merged when there are several), the first table's rows,
   further tables and notes after it (``regions.find_layout``);
4. repair: rows with a field too many or too few brought to the table's width (``repair.repair_row``).

Large clean files skip steps 2-4 for the bulk: after the layout is found on a sample, pyarrow's
multithreaded reader parses the rows; any row it finds ragged sends the file back through the steps above.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pandas as pd

from automodel.errors import plural
from automodel.ingest.dialect import DELIMITERS, Dialect, detect, split_lines, split_record
from automodel.ingest.regions import Layout, Record, column_kinds, find_layout, table_width
from automodel.ingest.repair import repair_row

TEXT_DTYPE = pd.StringDtype("pyarrow")
_SAMPLE_LINES = 200
_SAMPLE_BYTES = 64 * 1024
_FAST_BYTES = 4 * 1024 * 1024  # below this the tolerant reader is fast enough


@dataclass
class Decisions:
    """What the reader decided, for ``LoadInfo`` and the user."""

    dialect: Dialect
    has_header: bool = True
    header_rows: int = 1
    header_cells: list[str] = field(default_factory=list)  # as written (merged when several rows)
    lines_before_table: int = 0
    preamble_rows: int = 0
    other_tables: list[dict] = field(default_factory=list)
    notes_after: int = 0
    repaired_rows: list[dict] = field(default_factory=list)
    literal_quotes: list[int] = field(default_factory=list)
    dropped_trailing_column: bool = False
    reader: str = "tolerant"

    def problems(self) -> list[str]:
        out = []
        if self.lines_before_table:
            out.append(f"{plural(self.lines_before_table, 'line')} before the table (titles, notes) skipped")
        if self.header_rows > 1:
            out.append(f"{self.header_rows} header rows merged into one column name each")
        for table in self.other_tables:
            out.append(f"another table at lines {table['first_line']}-{table['last_line']} ({plural(table['columns'], 'column')}) "
                       "was not read; only the first table is loaded")
        if self.notes_after:
            out.append(f"{plural(self.notes_after, 'note line')} after the table skipped")
        if self.literal_quotes:
            n = len(self.literal_quotes)
            out.append(f"{plural(n, 'quote')} that never close{'s' if n == 1 else ''} kept as literal character{'' if n == 1 else 's'} "
                       f"(line{'s' if len(self.literal_quotes) > 1 else ''} {_lines(self.literal_quotes)})")
        if self.repaired_rows:
            actions: dict[str, int] = {}
            for row in self.repaired_rows:
                actions[row["action"]] = actions.get(row["action"], 0) + 1
            what = "; ".join(f"{action} ({n})" for action, n in actions.items())
            out.append(f"{plural(len(self.repaired_rows), 'row')} with a field too many or too few repaired: {what} "
                       f"(line{'s' if len(self.repaired_rows) > 1 else ''} {_lines([r['line'] for r in self.repaired_rows])})")
        if self.dropped_trailing_column:
            out.append("every row ends with a delimiter; the empty last field is not a column")
        if not self.has_header:
            out.append("no header row (the first row holds data); columns named column_1, column_2, ...")
        return out


def _lines(numbers: list[int], shown: int = 10) -> str:
    text = ", ".join(str(n) for n in numbers[:shown])
    return text + (f" and {len(numbers) - shown} more" if len(numbers) > shown else "")


def parse_records(lines: list[str], dialect: Dialect, width: int | None, first_line: int = 1,
                  literal_quotes: list[int] | None = None) -> list[Record]:
    """Lines split into records (``dialect.split_lines``), with their line numbers."""
    return [Record(first_line + i, cells, text) for i, cells, text in split_lines(lines, dialect, width, literal_quotes, first_line)]


def _resplitter(dialect: Dialect, width: int):
    others = [Dialect(d, dialect.quotechar or '"') for d in DELIMITERS if d != dialect.delimiter]

    def alternatives(record: Record) -> list[tuple[str, list[str]]]:
        """The record split with each other delimiter it holds."""
        return [(other.delimiter, split_record(record.text, other)) for other in others if other.delimiter in record.text]

    def resplit(record: Record) -> list[str] | None:
        if len(record.cells) == width or width < 2:
            return None
        return next((cells for _, cells in alternatives(record) if len(cells) == width), None)

    resplit.alternatives = alternatives
    return resplit


def read_text(text: str, name: str) -> tuple[pd.DataFrame, Decisions]:
    """The first table of the text (newlines already normalised to \\n), every cell kept as text."""
    head = text[: 2 * _SAMPLE_BYTES].split("\n")
    if len(head) > 1 and len(text) > 2 * _SAMPLE_BYTES:
        head.pop()  # a line cut by the slice
    sample, size = [], 0
    for line in head[:_SAMPLE_LINES]:
        sample.append(line)
        size += len(line)
        if size > _SAMPLE_BYTES:
            break
    if sample and sample[-1] == "" and len(text) <= 2 * _SAMPLE_BYTES:
        sample.pop()
    sample = [line.removesuffix("\r") for line in sample]
    dialect, _ = detect(sample, name)
    decisions = Decisions(dialect=dialect)
    width = table_width(parse_records(sample, dialect, None))
    if len(text) > _FAST_BYTES and len(dialect.delimiter) == 1 and dialect.quotechar in ('"', "") and not dialect.escapechar:
        frame = _read_fast(text, sample, dialect, width, decisions)
        if frame is not None:
            return frame, decisions
        decisions = Decisions(dialect=dialect)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    records = parse_records(lines, dialect, width, literal_quotes=decisions.literal_quotes)
    return _assemble(records, dialect, decisions), decisions


def _assemble(records: list[Record], dialect: Dialect, decisions: Decisions) -> pd.DataFrame:
    width = table_width(records)
    resplit = _resplitter(dialect, width)
    layout = find_layout(records, resplit)
    if layout.width == 0:
        decisions.header_rows = 0
        return pd.DataFrame()
    _describe_layout(records, layout, decisions)
    if (layout.has_header and len(layout.header_rows) == 1 and len(records[layout.header_rows[0]].cells) == width - 1
            and layout.data and all(not records[i].cells[-1].strip() for i in layout.data if len(records[i].cells) == width)):
        # "1,2,3," on every row under "a,b,c": the trailing delimiter is not a column.
        width -= 1
        for i in layout.data:
            if len(records[i].cells) == width + 1 and not records[i].cells[-1].strip():
                records[i].set_cells(records[i].cells[:-1])
        decisions.dropped_trailing_column = True
        resplit = _resplitter(dialect, width)
    kinds = layout.kinds if layout.kinds is not None and len(layout.kinds.counts) == width else column_kinds(
        [records[i] for i in layout.data], width)
    header = _header(records, layout, resplit, width, decisions)
    rows = []
    for i in layout.data:
        record = records[i]
        cells = record.cells
        if len(cells) != width:
            cells, action = repair_row(cells, width, kinds, dialect.delimiter, resplit.alternatives(record))
            decisions.repaired_rows.append({"line": record.line, "fields": len(record.cells), "action": action})
        rows.append(cells)
    if header is not None:
        header = (header + [""] * width)[:width]
        decisions.header_cells = list(header)
        columns = header
    else:
        columns = [f"column_{i + 1}" for i in range(width)]
    return _frame(rows, columns)


def _frame(rows: list[list[str]], columns: list[str]) -> pd.DataFrame:
    """Arrow-backed text columns, built column by column through pyarrow (several times faster than from rows)."""
    import pyarrow as pa

    arrays = [pa.array(list(column), type=pa.string()) for column in zip(*rows)] if rows else [pa.array([], pa.string())] * len(columns)
    # Not Table.to_pandas with a types_mapper: ~3 ms and ~700 KB a column (50,000 columns ran out of memory).
    frame = pd.DataFrame({f"f{i}": pd.arrays.ArrowStringArray(array) for i, array in enumerate(arrays)}, copy=False)
    return frame.set_axis(columns, axis=1)


def _describe_layout(records: list[Record], layout: Layout, decisions: Decisions) -> None:
    decisions.has_header = layout.has_header
    decisions.header_rows = len(layout.header_rows)
    decisions.lines_before_table = records[layout.start].line - 1
    decisions.preamble_rows = len(layout.preamble)
    decisions.other_tables = [{"first_line": a, "last_line": b, "columns": w} for a, b, w in layout.other_tables]
    decisions.notes_after = len(layout.notes_after)
    kept = {records[i].line for i in layout.data} | {records[i].line for i in layout.header_rows}
    decisions.literal_quotes = [line for line in decisions.literal_quotes if line in kept]


def _header(records: list[Record], layout: Layout, resplit, width: int, decisions: Decisions) -> list[str] | None:
    """The header as written; several header rows are merged cell by cell ("Flipper" over "length (mm)")."""
    if not layout.has_header:
        return None
    rows = []
    for i in layout.header_rows:
        record = records[i]
        cells = record.cells
        if len(cells) != width:
            cells = resplit(record) or _fit_header(cells, width)
            decisions.repaired_rows.append({"line": record.line, "fields": len(record.cells), "action": "header row brought to the table's width"})
        rows.append(cells)
    if len(rows) == 1:
        return list(rows[0])
    return [" ".join(part.strip() for part in parts if part.strip()) for parts in zip(*rows)]


def _fit_header(cells: list[str], width: int) -> list[str]:
    if len(cells) > width:
        cells = list(cells)
        while len(cells) > width and any(not c.strip() for c in cells):
            blanks = [i for i, c in enumerate(cells) if not c.strip()]
            cells.pop(blanks[-1] if blanks[-1] == len(cells) - 1 else blanks[0])
        if len(cells) > width:
            cells = cells[: width - 1] + [" ".join(cells[width - 1:])]
        return cells
    return list(cells) + [""] * (width - len(cells))


# ---- the fast path ---------------------------------------------------------------------------------

def _read_fast(text: str, sample: list[str], dialect: Dialect, width: int, decisions: Decisions) -> pd.DataFrame | None:
    """pyarrow for the bulk of a large file; None sends the file through the tolerant steps."""
    records = parse_records(sample, dialect, width)
    layout = find_layout(records, _resplitter(dialect, width))
    if layout.width != width or width < 1 or layout.other_tables or layout.notes_after:
        return None
    if any(len(records[i].cells) != width for i in layout.header_rows + layout.data):
        return None
    _describe_layout(records, layout, decisions)
    header = _header(records, layout, _resplitter(dialect, width), width, decisions)
    first_data_line = (records[layout.header_rows[-1]].line if layout.header_rows else records[layout.start].line - 1)
    offset = 0
    for _ in range(first_data_line):  # past the lines before the data (a header row spanning lines is not taken here)
        offset = text.index("\n", offset) + 1
    placeholders = [f"f{i}" for i in range(width)]
    body = text[offset:]
    frame = _pyarrow_rows(body, dialect, placeholders)
    if frame is None:  # some rows are ragged: pyarrow for the clean chunks, the tolerant reader for the others
        kinds = layout.kinds if layout.kinds is not None and len(layout.kinds.counts) == width else column_kinds(records, width)
        frame = _read_chunked(body, first_data_line + 1, dialect, width, kinds, placeholders, decisions)
    if header is not None and width > 1 and len(frame):
        # A second table with the same columns (a repeated header) is not data of the first.
        repeated = (frame["f0"] == header[0]) & (frame["f1"] == header[1])
        if repeated.any():
            return None
    decisions.reader = "pyarrow" if not decisions.repaired_rows and not decisions.literal_quotes else "pyarrow, tolerant where rows needed it"
    if header is not None:
        decisions.header_cells = list(header)
        frame.columns = header
    else:
        frame.columns = [f"column_{i + 1}" for i in range(width)]
    return frame


def _pyarrow_rows(body: str, dialect: Dialect, placeholders: list[str]) -> pd.DataFrame | None:
    """The rows of ``body`` (no header) as Arrow text columns; None when a row is ragged or pyarrow cannot read it."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    ragged = []

    def on_invalid(row):
        ragged.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(body.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=placeholders, block_size=16 << 20),
            parse_options=pacsv.ParseOptions(delimiter=dialect.delimiter, quote_char=dialect.quotechar or False,
                                             double_quote=True, newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={p: pa.string() for p in placeholders}, strings_can_be_null=False,
                                                 quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeError):
        return None
    if ragged:
        return None
    # Column by column: Table.to_pandas with a types_mapper costs ~3 ms and ~700 KB per column (50,000 columns: out of memory).
    return pd.DataFrame({p: pd.arrays.ArrowStringArray(table.column(p)) for p in placeholders}, copy=False)


_CHUNK_LINES = 20_000


def _read_chunked(body: str, first_line: int, dialect: Dialect, width: int, kinds, placeholders: list[str],
                  decisions: Decisions) -> pd.DataFrame:
    """A large file with a few damaged rows: chunks of lines (cut where the quotes balance) go through pyarrow, and a
    chunk it finds ragged goes through the tolerant reader, so only the chunks holding damaged rows are slow."""
    lines = body.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    quote = dialect.quotechar
    resplit = _resplitter(dialect, width)
    frames, start = [], 0
    while start < len(lines):
        end = min(start + _CHUNK_LINES, len(lines))
        if quote:
            odd = sum(line.count(quote) for line in lines[start:end]) % 2
            while odd and end < len(lines) and end - start < 2 * _CHUNK_LINES:  # do not cut a quoted value spanning lines
                odd ^= lines[end].count(quote) % 2
                end += 1
        chunk = lines[start:end]
        frame = _pyarrow_rows("\n".join(chunk) + "\n", dialect, placeholders)
        if frame is None:
            rows = []
            for record in parse_records(chunk, dialect, width, first_line=first_line + start, literal_quotes=decisions.literal_quotes):
                if record.blank:
                    continue
                cells = record.cells
                if len(cells) != width:
                    cells, action = repair_row(cells, width, kinds, dialect.delimiter, resplit.alternatives(record))
                    decisions.repaired_rows.append({"line": record.line, "fields": len(record.cells), "action": action})
                rows.append(cells)
            frame = _frame(rows, placeholders)
        frames.append(frame)
        start = end
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
