"""Dialect detection for delimited text: which delimiter, quote and escape character a file was written with.

Each candidate dialect parses a sample of lines and is scored the way CleverCSV scores it (van den Burg et
al., "Wrangling messy CSV files by detecting row and type patterns", 2019): a *pattern* score that rewards
rows agreeing on their number of cells, times a *type* score, the share of cells that look like a value
(a number, a date, a word, an identifier...) rather than a fragment a wrong dialect cut out of a field.

The tokenizer is tolerant in the ways people write files by hand:
- a quote opens a quoted field only at the start of a field, and closes it only where a delimiter or the end
  of the line follows; any other quote inside is kept as a literal character (unescaped quotes, "5" Inseam");
- a quote that never closes on its line is a literal character of an unquoted cell (a stray quote);
- a doubled quote inside a quoted field is one quote; with a backslash escape, an escaped quote is one quote.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

DELIMITERS = (",", ";", "\t", "|", ", ", " ")
QUOTES = ('"', "'", "")
_SCORING_LINES = 80


@dataclass(frozen=True)
class Dialect:
    delimiter: str
    quotechar: str  # "" when fields are never quoted
    escapechar: str | None = None

    def describe(self) -> str:
        names = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", " ": "space", ", ": "comma and space"}
        quote = {'"': 'double quote (")', "'": "single quote (')", "": "none"}[self.quotechar]
        escape = f", escape {self.escapechar!r}" if self.escapechar else ""
        return f"delimiter {names.get(self.delimiter, repr(self.delimiter))}, quote {quote}{escape}"


@lru_cache(maxsize=64)
def _field_pattern(delimiter: str, quote: str, escape: str | None) -> re.Pattern:
    d = re.escape(delimiter)
    unquoted = f"[^{d}]*" if len(delimiter) == 1 else f"(?:(?!{d}).)*"
    if not quote:
        return re.compile(f"(?P<u>{unquoted})(?P<sep>{d})?", re.DOTALL)
    q = re.escape(quote)
    if escape:
        e = re.escape(escape)
        body = f"(?:{e}.|[^{e}])*?"
    else:
        body = ".*?"
    # The closing quote is the first one followed by the delimiter or the end: inner quotes stay literal.
    quoted = f"{q}(?P<q>{body}){q}(?={d}|$)"
    return re.compile(f"(?:{quoted}|(?P<u>{unquoted}))(?P<sep>{d})?", re.DOTALL)


def split_record(text: str, dialect: Dialect) -> list[str]:
    """The cells of one record (one line, or several joined for a quoted value spanning lines)."""
    quote = dialect.quotechar
    if not quote or quote not in text:
        return text.split(dialect.delimiter)
    if len(dialect.delimiter) == 1 and not dialect.escapechar:
        # The csv module (C) reads a well-formed line exactly as the rules above do; it raises on anything else
        # (a quote that never closes, a quote inside a quoted field), which then goes through the tolerant pattern.
        try:
            return next(csv.reader((text,), delimiter=dialect.delimiter, quotechar=quote, doublequote=True, strict=True))
        except (csv.Error, StopIteration):
            pass
    pattern = _field_pattern(dialect.delimiter, quote, dialect.escapechar)
    unescape = re.compile(re.escape(dialect.escapechar) + "(.)", re.DOTALL) if dialect.escapechar else None
    cells, pos, n, doubled = [], 0, len(text), quote * 2
    while True:
        match = pattern.match(text, pos)
        value = match.group("q")
        if value is None:
            value = match.group("u")
        elif unescape is not None:
            value = unescape.sub(r"\1", value)
        elif doubled in value:
            value = value.replace(doubled, quote)
        cells.append(value)
        if match.group("sep") is None:
            return cells
        pos = match.end()
        if pos == n:  # a delimiter at the very end: one more, empty, field
            cells.append("")
            return cells


_JOIN_LINES = 200  # the longest quoted value spanning lines that is looked for
_PLACEHOLDER = "\x00"


def _join_from(lines: list[str], i: int, first: str, quote: str) -> tuple[str, int] | None:
    """``first`` (line i, possibly edited) joined with the following lines until its quotes balance; None if they never do."""
    joined, count, j = first, first.count(quote), i + 1
    while count % 2 and j < len(lines) and j - i < _JOIN_LINES:
        joined += "\n" + lines[j]
        count += lines[j].count(quote)
        j += 1
    return (joined.removesuffix("\r"), j) if count % 2 == 0 else None


def _field_start_quotes(line: str, dialect: Dialect) -> list[int]:
    quote, delimiter = dialect.quotechar, dialect.delimiter
    return [k for k, ch in enumerate(line) if ch == quote and (k == 0 or line[:k].endswith(delimiter))]


def split_lines(lines: list[str], dialect: Dialect, width: int | None, literal_quotes: list[int] | None = None,
                first_line: int = 1) -> list[tuple[int, list[str], str]]:
    """Lines split into records: (index of the first line, cells, text as written).

    A line leaving a quote open is joined with the following lines (a quoted value spanning lines) when that gives a
    record of the table's width and the lines it would swallow are not rows of that width themselves. A line whose
    cells do not reach the width that way is read again with one of its field-opening quotes taken as a literal
    character (a stray quote), alone or joined. Lines may end with "\\r" (CRLF files): it is not part of the last
    cell, but a quoted value spanning lines keeps its line ends as written."""
    quote = dialect.quotechar
    records: list[tuple[int, list[str], str]] = []
    i, n = 0, len(lines)
    while i < n:
        raw = lines[i]
        line = raw.removesuffix("\r")
        if not quote or quote not in line:
            records.append((i, split_record(line, dialect), line))
            i += 1
            continue
        alone = split_record(line, dialect)
        if width is None or len(alone) == width and line.count(quote) % 2 == 0:
            records.append((i, alone, line))
            i += 1
            continue
        if line.count(quote) % 2:
            joined = _join_from(lines, i, raw, quote)
            if joined is not None:
                together = split_record(joined[0], dialect)
                swallowed_rows = all(len(split_record(lines[k].removesuffix("\r"), dialect)) == width for k in range(i + 1, joined[1]))
                if len(together) == width and (len(alone) != width or not swallowed_rows):
                    records.append((i, together, joined[0]))
                    i = joined[1]
                    continue
        if len(alone) != width:
            repaired = _with_one_literal_quote(lines, i, line, dialect, width)
            if repaired is not None:
                cells, text, i_next = repaired
                if literal_quotes is not None:
                    literal_quotes.append(first_line + i)
                records.append((i, cells, text))
                i = i_next
                continue
        if literal_quotes is not None and line.count(quote) % 2:
            literal_quotes.append(first_line + i)
        records.append((i, alone, line))
        i += 1
    return records


def _with_one_literal_quote(lines: list[str], i: int, line: str, dialect: Dialect, width: int):
    """The record read with one of its field-opening quotes taken as a literal character, where that gives the
    table's width: a stray quote at the start of a cell otherwise runs on to the next quoted field, or shifts which
    quotes open and close a value spanning lines. Returns (cells, text, index of the next line) or None."""
    quote = dialect.quotechar
    for k in _field_start_quotes(line, dialect):
        edited = line[:k] + _PLACEHOLDER + line[k + 1:]
        if edited.count(quote) % 2 == 0:
            cells = split_record(edited, dialect)
            if len(cells) == width:
                return [c.replace(_PLACEHOLDER, quote) for c in cells], line, i + 1
        else:
            joined = _join_from(lines, i, edited, quote)
            if joined is not None:
                cells = split_record(joined[0], dialect)
                if len(cells) == width:
                    return [c.replace(_PLACEHOLDER, quote) for c in cells], joined[0].replace(_PLACEHOLDER, quote), joined[1]
    return None


# ---- cell types (the type score) ------------------------------------------------------------------

_KNOWN = re.compile(
    r"""
    (?:
      [-+]?[$€£¥]?[-+]?(?:\d{1,3}(?:[,.\u00a0' ]\d{3})+|\d+)(?:[.,]\d+)?(?:[eE][-+]?\d+)?\s?(?:%|[$€£¥])?   # numbers, money, percent
    | [-+]?[$€£¥]?[-+]?[.,]\d+(?:[eE][-+]?\d+)?%?
    | \(\s*[$€£¥]?\d[\d,.]*\s*\)                                                                           # accounting negative
    | \d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s?[AaPp][Mm])?(?:Z|[+-]\d{2}:?\d{2})?)?  # dates
    | \d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s?[AaPp][Mm])?                                                 # times
    | (?:https?|ftp)://[^\s"'<>]+ | www\.[^\s"'<>]+                                                        # urls
    | [\w.+-]+@[\w-]+(?:\.[\w-]+)+                                                                         # emails
    | [\w(\[#&*+.:/\\-][\w .,'’()\[\]/&%#+*!?:;=@~^\\-]*[\w.)\]%!?*]                                      # words and phrases
    | [\w.#%*+-]
    )
    """,
    re.VERBOSE,
)


@lru_cache(maxsize=65536)
def _is_known(cell: str) -> bool:
    """Leading or trailing blanks are kept: a cell that starts with a space is a sign of a ", " delimiter read as ","."""
    return not cell.strip() or _KNOWN.fullmatch(cell) is not None


@lru_cache(maxsize=1 << 17)
def _is_value(cell: str, others: str) -> bool:
    return _is_known(cell) and not any(o in cell for o in others)


def _type_score(rows: list[list[str]], dialect: Dialect) -> float:
    """Share of cells that look like a value; a cell holding another delimiter looks like a fragment of a line."""
    # A comma inside a cell is ordinary text ("Adult, 1 Egg Stage"), except where spaces split the line: a space-split
    # cell holding a comma is a piece of a comma-delimited line.
    others = "".join(d for d in (";", "\t", "|") if d not in dialect.delimiter) + ("," if dialect.delimiter == " " else "")
    total = known = 0
    for row in rows:
        total += len(row)
        known += sum(1 for cell in row if _is_value(cell, others))
    return known / total if total else 0.0


def _pattern_score(rows: list[list[str]]) -> float:
    """How consistently rows agree on a width of more than one cell.

    CleverCSV divides by the number of distinct widths, which lets a single damaged row (a stray quote, a missing
    delimiter) outweigh a hundred consistent ones; here the share of rows at the most common width counts instead."""
    if not rows:
        return 0.0
    widths = Counter(len(r) for r in rows if len(r) > 1)
    if not widths:
        return 0.0
    width, n = max(widths.items(), key=lambda kv: (kv[1], kv[0]))
    return (n / len(rows)) * (width - 1) / width


# Spaces also separate words inside values, so a space delimiter must explain the file clearly better to win.
_PRIOR = {" ": 0.9}


def score_dialect(lines: list[str], dialect: Dialect) -> float:
    """Rows are first split line by line; the most common width then lets quoted values spanning lines be joined and
    stray quotes be read as literals, as the reader will, before the rows are scored."""
    rows = [split_record(line, dialect) for line in lines]
    if dialect.quotechar and any(dialect.quotechar in line for line in lines):
        widths = Counter(len(r) for r in rows if len(r) > 1)
        if widths:
            width = max(widths.items(), key=lambda kv: (kv[1], kv[0]))[0]
            rows = [cells for _, cells, _ in split_lines(lines, dialect, width)]
    pattern = _pattern_score(rows)
    if pattern == 0.0:
        return 0.0
    return pattern * max(_type_score(rows, dialect), 1e-3) * _PRIOR.get(dialect.delimiter, 1.0)


def _candidates(sample: str, name: str) -> list[Dialect]:
    delimiters = [d for d in DELIMITERS if d in sample]
    if ", " in delimiters and sample.count(", ") < sample.count(",") * 0.9:
        delimiters.remove(", ")  # ", " only where nearly every comma is followed by a space
    quotes = [q for q in QUOTES if q != "'" or q in sample]  # with no quote in the sample, '"' wins the tie as the convention
    escapes = [None, "\\"] if "\\" in sample else [None]
    out = [Dialect(d, q, e if q else None) for d in delimiters for q in quotes for e in escapes]
    return list(dict.fromkeys(out))


def detect(lines: list[str], name: str = "") -> tuple[Dialect, dict[str, float]]:
    """The best-scoring dialect on the sample lines (blank lines ignored), with the scores of the runners-up."""
    sample_lines = [line for line in lines if line.strip()][:_SCORING_LINES]
    if name.lower().endswith(".tsv") and any("\t" in line for line in sample_lines):
        candidates = [Dialect("\t", q) for q in QUOTES]
    else:
        candidates = _candidates("\n".join(sample_lines), name)
    if not candidates:
        return Dialect(",", '"'), {}
    scores = {}
    for dialect in candidates:
        scores[dialect] = score_dialect(sample_lines, dialect)
    best = max(scores.values())
    if best <= 0:
        return Dialect(",", '"'), {}
    # Ties keep the conventional choice: candidates are listed from the most to the least common.
    chosen = next(d for d in candidates if scores[d] >= best * (1 - 1e-9))
    return chosen, {f"{d.delimiter!r} {d.quotechar!r}": round(s, 4) for d, s in scores.items()}
