"""Compressed inputs (.gz, .zip, .bz2, .xz), inflated through a streaming reader with bounds.

A few megabytes of gzip or zip can inflate to gigabytes (a decompression bomb). Inflating in one call
(``gzip.decompress``) holds all of it in memory before anything can say no, so here the archive is read
in chunks and refused as soon as either bound is passed:

- an absolute inflated size (``max_bytes``, AUTOMODEL_MAX_INFLATED_MB, and at most what is left of the
  user's storage quota: the inflated table is what the run stores and works on, not the upload);
- an expansion ratio (``max_ratio``, AUTOMODEL_MAX_EXPANSION_RATIO): inflated bytes over compressed bytes
  read so far, checked once the output passes ``ratio_floor_bytes`` (small files may compress very well
  and are harmless).

Peak memory is therefore the accepted output plus one chunk. Damaged archives (truncated, garbled,
encrypted, unsupported methods) are one sentence saying so.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import re
import zipfile
import zlib
from dataclasses import dataclass

from automodel.errors import InputFileError, human_size
from resources.settings import current as current_settings

COMPRESSED_SUFFIXES = (".gz", ".zip", ".bz2", ".xz")
_CHUNK = 64 * 1024  # small reads keep the compressed bytes read ahead (the ratio's denominator) close to those used
_MB = 1024 * 1024
DEFAULT_MAX_INFLATED_MB = 2048.0
DEFAULT_MAX_EXPANSION_RATIO = 100.0
DEFAULT_RATIO_FLOOR_MB = 16.0
DEFAULT_MAX_COLUMNS = 2_000  # profiling costs ~10-40 ms a column: 2,000 columns profile in under a minute
DEFAULT_MAX_LINE_KB = 8 * 1024  # 8 MB: 2,000 columns of 4 KB each; a line past it is not a table's row
DEFAULT_MAX_CELL_KB = 1024  # 1 MB: a long review or a page of text fits; a file pasted into a cell does not

# Files the loader reads (a compressed one holds one of the others).
SUPPORTED_SUFFIXES = (
    ".csv", ".tsv", ".txt", ".psv", ".dat", ".parquet", ".pq", ".xlsx", ".json", ".jsonl", ".ndjson",
) + COMPRESSED_SUFFIXES


def is_supported(name: str) -> bool:
    return name.lower().endswith(SUPPORTED_SUFFIXES)


@dataclass(frozen=True)
class InputLimits:
    """Bounds on what an input may inflate to, and how many columns its table may have."""

    max_bytes: int = int(DEFAULT_MAX_INFLATED_MB * _MB)
    max_ratio: float = DEFAULT_MAX_EXPANSION_RATIO
    ratio_floor_bytes: int = int(DEFAULT_RATIO_FLOOR_MB * _MB)
    # Bytes left of the user's storage quota (None: not counted here); the smaller of this and max_bytes binds.
    quota_left_bytes: int | None = None
    # Widest table accepted (AUTOMODEL_MAX_COLUMNS); 0 means no limit.
    max_columns: int = DEFAULT_MAX_COLUMNS
    # Longest line of delimited text (AUTOMODEL_MAX_LINE_KB), checked on the bytes before parsing, so one huge cell
    # is refused in bounded memory; and the largest cell (AUTOMODEL_MAX_CELL_KB), checked on the parsed table
    # (a quoted value may span lines). 0 means no limit.
    max_line_bytes: int = DEFAULT_MAX_LINE_KB * 1024
    max_cell_bytes: int = DEFAULT_MAX_CELL_KB * 1024

    @classmethod
    def from_settings(cls, settings, quota_left_bytes: int | None = None) -> InputLimits:
        return cls(max_bytes=int(float(getattr(settings, "max_inflated_mb", DEFAULT_MAX_INFLATED_MB)) * _MB),
                   max_ratio=float(getattr(settings, "max_expansion_ratio", DEFAULT_MAX_EXPANSION_RATIO)),
                   quota_left_bytes=quota_left_bytes, max_columns=int(getattr(settings, "max_columns", DEFAULT_MAX_COLUMNS)),
                   max_line_bytes=int(getattr(settings, "max_line_kb", DEFAULT_MAX_LINE_KB)) * 1024,
                   max_cell_bytes=int(getattr(settings, "max_cell_kb", DEFAULT_MAX_CELL_KB)) * 1024)

    @classmethod
    def from_env(cls) -> InputLimits:
        return cls.from_settings(current_settings())


def check_columns(name: str, columns: int, limits: InputLimits | None = None, where: str = "") -> None:
    """Refuse a table wider than the column limit, in one sentence."""
    limit = (limits or InputLimits.from_env()).max_columns
    if limit and columns > limit:
        raise InputFileError(
            f"{name} has {columns:,} columns{where}, more than the {limit:,} accepted (AUTOMODEL_MAX_COLUMNS); "
            "keep the columns you need, reshape it to long form (one row per id and variable), or raise the limit.")


_HEAD_BYTES = 8 * _MB


def check_header_width(name: str, payload: bytes, limits: InputLimits | None = None) -> None:
    """Refuse delimited text that is far too wide before parsing it (parsing 50,000 columns takes seconds and
    gigabytes of bookkeeping). A delimiter counted at least that many times on each of the first two lines
    is the table's: no other punctuation repeats thousands of times on both the header and a row."""
    limit = (limits or InputLimits.from_env()).max_columns
    if not limit:
        return
    head = payload[:_HEAD_BYTES]
    # Records ended by a bare CR (old spreadsheet exports) are lines too: the whole file is not one header line.
    lines = [line for line in re.split(rb"\r\n|\r|\n", head, maxsplit=3)[:3] if line.strip(b"\x00 ")][:2]
    for delimiter in (b",", b";", b"\t", b"|"):
        counts = [line.count(delimiter) + 1 for line in lines]
        if counts and min(counts) > limit:
            check_columns(name, min(counts), limits, where=" in its first rows")


_LINE_SCAN_BYTES = 32 * _MB


def check_line_lengths(name: str, payload: bytes, limits: InputLimits | None = None) -> None:
    """Refuse delimited text with a line longer than the line limit, before decoding or parsing it: one 50 MB cell
    costs gigabytes once split, decoded and typed. The bytes are scanned in chunks, so memory stays flat; a line
    ends at LF, CRLF or a bare CR."""
    import numpy as np

    limit = (limits or InputLimits.from_env()).max_line_bytes
    if not limit or len(payload) <= limit:
        return
    view = memoryview(payload)
    last_end = -1
    for start in range(0, len(payload), _LINE_SCAN_BYTES):
        chunk = np.frombuffer(view[start:start + _LINE_SCAN_BYTES], dtype=np.uint8)
        ends = np.flatnonzero((chunk == 10) | (chunk == 13)) + start
        gaps = np.diff(ends, prepend=last_end) - 1
        if len(gaps) and gaps.max() > limit:
            at = int(np.argmax(gaps > limit))
            _refuse_line(name, payload, int(gaps[at]), int(ends[at] - gaps[at]), limit)
        if len(ends):
            last_end = int(ends[-1])
        if start + len(chunk) - 1 - last_end > limit:
            _refuse_line(name, payload, start + len(chunk) - 1 - last_end, last_end + 1, limit)


def _refuse_line(name: str, payload: bytes, length: int, offset: int, limit: int) -> None:
    ends = [end for end in (payload.find(b"\n", offset), payload.find(b"\r", offset)) if end >= 0]
    length = max(length, (min(ends) if ends else len(payload)) - offset)  # the whole line, not the part scanned so far
    line = payload.count(b"\n", 0, offset) + payload.count(b"\r", 0, offset) - payload.count(b"\r\n", 0, offset) + 1
    raise InputFileError(
        f"{name} has a line of {human_size(length)} (line {line:,}), longer than the {human_size(limit)} a line may hold "
        "(AUTOMODEL_MAX_LINE_KB); a cell that large is not table data: remove it, or raise the limit.")


def check_cell_sizes(name: str, frame, limits: InputLimits | None = None) -> None:
    """Refuse a parsed table holding a cell larger than the cell limit (a quoted value spanning many lines)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    limit = (limits or InputLimits.from_env()).max_cell_bytes
    if not limit:
        return
    for position, column in enumerate(frame.columns):
        values = frame.iloc[:, position]  # by position: a header may repeat a name before the loader renames it
        try:
            array = pa.array(values.array) if not hasattr(values.array, "_pa_array") else values.array._pa_array
            longest = pc.max(pc.binary_length(pc.cast(array, pa.string()))).as_py()
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError):
            continue
        if longest is not None and longest > limit:
            raise InputFileError(
                f"{name} has a cell of {human_size(longest)} in column {str(column)!r}, larger than the {human_size(limit)} a cell may hold "
                "(AUTOMODEL_MAX_CELL_KB); shorten or remove it, or raise the limit.")



def is_compressed(name: str, data: bytes = b"") -> bool:
    return _kind(name, data) is not None


def _kind(name: str, data: bytes) -> str | None:
    lower = name.lower()
    if lower.endswith(".gz") or data[:2] == b"\x1f\x8b":
        return "gzip"
    if lower.endswith(".bz2") or data[:3] == b"BZh" and data[4:10] == b"1AY&SY":
        return "bzip2"
    if lower.endswith(".xz") or data[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if lower.endswith(".zip") or data[:4] == b"PK\x03\x04" and not lower.endswith(".xlsx"):
        return "zip"
    return None


class _Meter:
    """Counts inflated bytes against the limits as chunks arrive; refuses with one sentence."""

    def __init__(self, name: str, limits: InputLimits, compressed_total: int):
        self.name, self.limits, self.compressed_total = name, limits, compressed_total
        self.inflated = 0
        quota = limits.quota_left_bytes
        self.cap = limits.max_bytes if quota is None else max(0, min(limits.max_bytes, quota))
        self.quota_binds = quota is not None and quota < limits.max_bytes

    def add(self, n: int, compressed_read: int) -> None:
        self.inflated += n
        if self.inflated > self.cap:
            if self.quota_binds:
                raise InputFileError(
                    f"{self.name} inflates to more than {human_size(self.cap)}, which is what is left of this user's storage quota "
                    "(compressed files count at their inflated size); remove old uploads or move to a larger tier.")
            raise InputFileError(
                f"{self.name} inflates to more than {human_size(self.cap)} (the AUTOMODEL_MAX_INFLATED_MB limit); "
                "upload a smaller file or split it, or raise the limit if the file is genuine.")
        if self.inflated > self.limits.ratio_floor_bytes:
            ratio = self.inflated / max(1, compressed_read)
            if ratio > self.limits.max_ratio:
                raise InputFileError(
                    f"{self.name} expands more than {self.limits.max_ratio:g} times when decompressed ({human_size(self.inflated)} from "
                    f"{human_size(compressed_read)} so far), as decompression bombs do; upload it uncompressed, or raise "
                    "AUTOMODEL_MAX_EXPANSION_RATIO if the file is genuine.")


def _drain(reader, raw: io.BytesIO, meter: _Meter, offset: int = 0, keep: bool = True) -> bytes:
    chunks = []
    while True:
        chunk = reader.read(_CHUNK)
        if not chunk:
            break
        if keep:
            chunks.append(chunk)
        meter.add(len(chunk), raw.tell() - offset)
    return b"".join(chunks)


_STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)


def _corrupt(name: str, kind: str, exc: BaseException) -> InputFileError:
    if isinstance(exc, EOFError):
        why = "it ends before the end of its compressed data (a truncated upload or copy)"
    else:
        why = "its compressed data is damaged"
    return InputFileError(f"{name} is not a readable {kind} file: {why}; upload it again, re-compress it, or upload it uncompressed.")


def inflate(name: str, data: bytes, limits: InputLimits | None = None) -> tuple[str, bytes, str | None]:
    """(inner file name, inflated bytes, compression) of a compressed input; the input itself when it is not compressed."""
    inner, payload, kind, _ = _inflate(name, data, limits, keep=True)
    return inner, payload, kind


def inflated_size(name: str, data: bytes, limits: InputLimits | None = None) -> int:
    """How many bytes an input inflates to (its own size when not compressed), refusing past the limits;
    counted chunk by chunk, never held, so a quota can be checked before any work."""
    return _inflate(name, data, limits, keep=False)[3]


def _inflate(name: str, data: bytes, limits: InputLimits | None, keep: bool) -> tuple[str, bytes, str | None, int]:
    kind = _kind(name, data)
    if kind is None:
        return name, data, None, len(data)
    meter = _Meter(name, limits or InputLimits.from_env(), len(data))
    raw = io.BytesIO(data)
    if kind == "zip":
        inner, payload = _inflate_zip(name, raw, meter, keep)
        return inner, payload, kind, meter.inflated
    opener = {"gzip": lambda f: gzip.GzipFile(fileobj=f, mode="rb"), "bzip2": bz2.BZ2File, "xz": lzma.LZMAFile}[kind]
    suffix = {"gzip": ".gz", "bzip2": ".bz2", "xz": ".xz"}[kind]
    inner = name[: -len(suffix)] if name.lower().endswith(suffix) else name
    try:
        with opener(raw) as reader:
            payload = _drain(reader, raw, meter, keep=keep)
    except InputFileError:
        raise
    except _STREAM_ERRORS as exc:
        raise _corrupt(name, kind, exc) from exc
    return inner, payload, kind, meter.inflated


def _inflate_zip(name: str, raw: io.BytesIO, meter: _Meter, keep: bool) -> tuple[str, bytes]:
    try:
        with zipfile.ZipFile(raw) as archive:
            members = [m for m in archive.infolist()
                       if not m.is_dir() and is_supported(m.filename) and not m.filename.startswith("__MACOSX")]
            if len(members) != 1:
                raise InputFileError(
                    f"{name} holds {len(members)} tabular files; put exactly one CSV, Parquet, Excel or JSON file in the zip.")
            member = members[0]
            if member.file_size > meter.cap:  # the declared size is a cheap first refusal; the stream is still counted
                meter.add(member.file_size, max(1, member.compress_size))
            with archive.open(member) as reader:
                payload = _drain(reader, raw, meter, offset=member.header_offset, keep=keep)
            return member.filename, payload
    except InputFileError:
        raise
    except RuntimeError as exc:  # zipfile's way of saying a member is encrypted
        raise InputFileError(f"{name} is password-protected; upload the file unencrypted.") from exc
    except NotImplementedError as exc:
        raise InputFileError(f"{name} uses a compression method that cannot be read ({exc}); re-create it as a standard zip.") from exc
    except (zipfile.BadZipFile, *_STREAM_ERRORS) as exc:
        if isinstance(exc, zipfile.BadZipFile):
            raise InputFileError(f"{name} is not a readable zip file (it is damaged or truncated); re-create the archive or upload the file itself.") from exc
        raise _corrupt(name, "zip", exc) from exc


def check_workbook(name: str, data: bytes, limits: InputLimits | None = None) -> None:
    """An .xlsx is a zip of XML parts: refuse one whose parts declare more than the limits before a reader inflates them.

    zipfile never returns more than a member's declared size, so the declared sizes bound what openpyxl can inflate."""
    limits = limits or InputLimits.from_env()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            declared = sum(m.file_size for m in archive.infolist())
    except (zipfile.BadZipFile, *_STREAM_ERRORS):
        return  # the Excel reader says what is wrong with it
    meter = _Meter(name, limits, len(data))
    meter.add(declared, len(data))
