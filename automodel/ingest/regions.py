"""Where the table is in a parsed file: lines before it (titles, notes), its header rows, its data rows, and
any further tables or notes after it.

Works on records (the cells of each line, already split by the detected dialect). The table's width is the
most common row width; column kinds (number, date, time, url, text, empty) come from rows of that width and
tell a header row (words above numbers) from a data row.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

_NUMBER = re.compile(r"[-+]?[$€£¥]?\s?[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?\s?(?:%|[$€£¥])?|\(\s*[$€£¥]?\d[\d,.]*\s*\)")
_DATE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s?[AaPp][Mm])?(?:Z|[+-]\d{2}:?\d{2})?)?")
_TIME = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s?[AaPp][Mm])?")
_URL = re.compile(r"(?:https?|ftp)://\S+|www\.\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
TYPED = ("number", "date", "time", "url")
MISSING_TOKENS = frozenset({"na", "n/a", "nan", "null", "none", "-", "--", "?", ".", "#n/a", "missing"})


_DIGIT = re.compile(r"\d")


@lru_cache(maxsize=1 << 16)
def cell_kind(cell: str) -> str:
    text = cell.strip().strip("\"'")  # a stray quote does not change what a value is
    if not text or text.lower() in MISSING_TOKENS:
        return "empty"
    if _DIGIT.search(text):
        if _NUMBER.fullmatch(text):
            return "number"
        if _DATE.fullmatch(text):
            return "date"
        if _TIME.fullmatch(text):
            return "time"
    if _URL.fullmatch(text):
        return "url"
    return "text"


class Record:
    """One record: where it starts in the file (1-based line), its cells and its text as written."""

    __slots__ = ("blank", "cells", "filled", "line", "text")

    def __init__(self, line: int, cells: list[str], text: str):
        self.line, self.text = line, text
        self.set_cells(cells)

    def set_cells(self, cells: list[str]) -> None:
        self.cells = cells
        filled = len(cells) - cells.count("")
        if filled and filled <= 2 and not "".join(cells).strip():
            filled = 0  # cells holding only spaces
        self.filled = filled
        self.blank = filled == 0


@dataclass
class ColumnKinds:
    """For each column, how often each kind occurs among rows of the table's width."""

    counts: list[Counter]
    rows: int

    def share(self, column: int, kind: str) -> float:
        if column >= len(self.counts) or not self.rows:
            return 0.0
        return self.counts[column][kind] / self.rows

    def typed(self) -> dict[int, str]:
        """Columns where one non-text kind holds at least 80% of the filled cells: the columns that tell headers from data."""
        out = {}
        for column, counts in enumerate(self.counts):
            filled = sum(n for kind, n in counts.items() if kind != "empty")
            if filled < 2:
                continue
            kind, n = max(((k, n) for k, n in counts.items() if k != "empty"), key=lambda kv: kv[1])
            if kind in TYPED and n >= 0.8 * filled:
                out[column] = kind
        return out

    def fit(self, cells: list[str]) -> float:
        """How well a row's cells fit the columns' usual kinds (higher is better)."""
        return sum(self.share(i, cell_kind(c)) for i, c in enumerate(cells))


def column_kinds(records: list[Record], width: int, limit: int = 200) -> ColumnKinds:
    counts = [Counter() for _ in range(width)]
    rows = 0
    for record in records:
        if len(record.cells) == width and not record.blank:
            for i, cell in enumerate(record.cells):
                counts[i][cell_kind(cell)] += 1
            rows += 1
            if rows >= limit:
                break
    return ColumnKinds(counts, rows)


def table_width(records: list[Record]) -> int:
    """The first table's width: that of the first run of three rows sharing a width (more than one cell) that is
    common in the file, so a longer second table does not set it; else the most common width."""
    nonblank = [r for r in records if not r.blank]
    widths = Counter(len(r.cells) for r in nonblank)
    if not widths:
        return 0
    for a, b, c in zip(nonblank, nonblank[1:], nonblank[2:]):
        width = len(a.cells)
        if width > 1 and len(b.cells) == width == len(c.cells) and widths[width] >= 0.2 * len(nonblank):
            return width
    return max(widths.items(), key=lambda kv: (kv[1], kv[0]))[0]


def header_like(record: Record, kinds: ColumnKinds, typed: dict[int, str], header: list[str] | None = None,
                least: int = 1) -> bool:
    """Words where the data has numbers, dates or links: a header row (or a repeat of the header)."""
    cells = record.cells
    if (header is not None and cells and header and cells[0].strip() == header[0].strip() and record.filled
            and [c.strip() for c in cells[: len(header)]] == [h.strip() for h in header]):
        return True
    if not typed or (len(typed) < least and not all(cell_kind(c) == "text" for c in cells)):
        return False  # with one typed column, only a row of names (every cell filled, all words) is a header
    filled = 0
    for i in typed:
        if i < len(cells):
            kind = cell_kind(cells[i])
            if kind == "empty":
                continue
            if kind != "text":
                return False
            filled += 1
    return filled > 0 and filled >= max(min(least, len(typed)), len(typed) // 2)


@dataclass
class Layout:
    width: int
    start: int  # index of the first header (or data) record
    header_rows: list[int] = field(default_factory=list)
    data: list[int] = field(default_factory=list)
    preamble: list[int] = field(default_factory=list)  # non-blank records before the table
    other_tables: list[tuple[int, int, int]] = field(default_factory=list)  # (first line, last line, width)
    notes_after: list[int] = field(default_factory=list)
    has_header: bool = True
    kinds: ColumnKinds | None = None


def _near(width: int, target: int) -> bool:
    return abs(width - target) <= 1


def find_layout(records: list[Record], resplit) -> Layout:
    """Preamble, header rows, the first table's data rows, further tables and trailing notes.

    ``resplit(record)`` returns the record's cells re-split with another delimiter when that gives the table's width.
    """
    width = table_width(records)
    nonblank = [i for i, r in enumerate(records) if not r.blank]
    if not nonblank:
        return Layout(width=0, start=0)
    kinds = column_kinds(records, width)
    typed = kinds.typed()
    filled_counts = sorted(records[i].filled for i in nonblank if len(records[i].cells) == width)
    usual_filled = filled_counts[len(filled_counts) // 2] if filled_counts else 1
    enough = max(1, min(usual_filled, (width + 1) // 2)) if width > 1 else 1

    def shaped(record: Record, near: bool) -> list[str] | None:
        """The record's cells at (or, with ``near``, within one of) the table's width, re-split when another delimiter gives it."""
        if len(record.cells) == width or (near and _near(len(record.cells), width)):
            return record.cells
        return resplit(record)

    def filled(cells: list[str]) -> int:
        return sum(1 for c in cells if c.strip())

    def fits(i: int) -> bool:
        cells = shaped(records[i], near=False)
        return cells is not None and filled(cells) >= enough

    start_pos = 0
    for pos, i in enumerate(nonblank):
        cells = shaped(records[i], near=True)
        if cells is None or filled(cells) < enough:
            continue
        if filled(cells) < usual_filled and i + 1 < len(records) and records[i + 1].blank:
            continue  # a sparse line set off by a blank line: a title ("PREAMBLE,,,"), not the header
        following = nonblank[pos + 1: pos + 4]
        if not following or sum(fits(j) for j in following) * 2 >= len(following):
            start_pos = pos
            break
    else:
        start_pos = 0
    start = nonblank[start_pos]
    layout = Layout(width=width, start=start, preamble=[i for i in nonblank[:start_pos]], kinds=kinds)

    first = records[start]
    body = nonblank[start_pos + 1:]
    layout.has_header = _is_header(first, [records[i] for i in body[:5]], typed, width)
    header_cells = first.cells if layout.has_header else None
    if header_cells is not None:
        # A header repeated further down starts another table (files appended to each other); a first row that recurs
        # as data (a table of repeated text values) is not a header to look for.
        stripped = [c.strip() for c in header_cells]
        recurring = sum(1 for i in body[3:500] if [c.strip() for c in records[i].cells] == stripped)
        repeat_header = header_cells if recurring < 2 else None
    else:
        repeat_header = None
    position = start_pos + 1 if layout.has_header else start_pos
    if layout.has_header:
        layout.header_rows.append(start)
        # Up to two more header rows (units, a second line of long names, a repeated header) above the data.
        while len(layout.header_rows) < 3 and position < len(nonblank) and len(body) > len(layout.header_rows):
            candidate = records[nonblank[position]]
            if _near(len(candidate.cells), width) and header_like(candidate, kinds, typed, repeat_header):
                layout.header_rows.append(nonblank[position])
                position += 1
            else:
                break
    rest = nonblank[position:]
    _split_tables(records, rest, layout, kinds, typed, repeat_header, width)
    return layout


def _is_header(first: Record, below: list[Record], typed: dict[int, str], width: int) -> bool:
    """A first row is data when its cells have the data's kinds in the typed columns (numbers above numbers)."""
    if not below:
        return True
    cells = first.cells
    if typed:
        checked = [i for i in typed if i < len(cells) and cells[i].strip()]
        return not (checked and all(cell_kind(cells[i]) == typed[i] for i in checked))
    # Nothing typed: a first row of only numbers above rows of numbers is data.
    kinds = [cell_kind(c) for c in cells]
    if kinds and all(k == "number" for k in kinds):
        return not all(all(i < len(r.cells) and cell_kind(r.cells[i]) == "number" for i in range(len(cells))) for r in below)
    return True


def _split_tables(records, rest: list[int], layout: Layout, kinds: ColumnKinds, typed, header_cells, width: int) -> None:
    """Data rows of the first table; where another table or trailing notes begin, the rest is set aside."""
    data: list[int] = []
    previous = layout.header_rows[-1] if layout.header_rows else layout.start - 1
    pos = 0
    while pos < len(rest):
        i = rest[pos]
        record = records[i]
        after_blank = i > previous + 1
        odd_width = len(record.cells) != width
        starts_table = False
        # A run of rows sharing another width is another table; a lone odd row is a damaged row of this one.
        run = [j for j in rest[pos: pos + 3] if len(records[j].cells) == len(record.cells)] if odd_width else rest[pos: pos + 3]
        if (data and len(record.cells) > 1 and header_like(record, kinds, typed, header_cells, least=2)
                and (_near(len(record.cells), width) or len(run) >= 2)):
            starts_table = True
        elif data and odd_width and (after_blank or not _near(len(record.cells), width)):
            if after_blank and all(records[j].filled <= 1 for j in rest[pos:]):
                layout.notes_after = list(rest[pos:])
                break
            if len(run) >= 2 and len(record.cells) > 1:
                starts_table = True
        elif data and odd_width and len(run) >= 3:  # three rows in a row one cell off: another table, not damaged rows
            starts_table = True
        if starts_table:
            _record_other_tables(records, rest[pos:], layout)
            break
        data.append(i)
        previous = i
        pos += 1
    layout.data = data


def _record_other_tables(records, rest: list[int], layout: Layout) -> None:
    """Group what follows the first table into blocks (separated by blank lines or a change of width) to report them."""
    block: list[int] = []
    for i in rest:
        if block and i > block[-1] + 1:  # a blank line between blocks
            layout.other_tables.append((records[block[0]].line, records[block[-1]].line, len(records[block[0]].cells)))
            block = []
        block.append(i)
    if block:
        layout.other_tables.append((records[block[0]].line, records[block[-1]].line, len(records[block[0]].cells)))
