"""Multipart uploads streamed to disk: chunk by chunk from the socket into a file, never held whole.

Starlette's own form parsing reads the whole body before the handler sees it, and has no limit on a
file part; this parser (python-multipart's, callback by callback) writes the ``file`` part into a private
folder as it arrives, counts every byte of the body against the request-size limit and refuses a
malformed body (no boundary, a truncated part, a missing closing boundary) with one sentence.
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

try:  # python-multipart >= 0.0.13 names its module python_multipart; older releases only multipart
    from python_multipart.multipart import MultipartParser, parse_options_header
except ImportError:  # pragma: no cover - depends on the installed release
    from multipart.multipart import MultipartParser, parse_options_header

from automodel.errors import UnsafePathError
from automodel.safety import safe_file_name

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 200


class UploadError(Exception):
    """A refused upload: the HTTP status and one sentence for the caller."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ParsedForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    file_path: Path | None = None
    file_name: str | None = None
    file_bytes: int = 0
    folder: Path | None = None

    def first(self, name: str) -> str | None:
        values = self.fields.get(name) or []
        return values[0] if values else None

    def cleanup(self) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def boundary_of(content_type: str | None) -> bytes:
    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data":
        raise UploadError(415, "Send the file as multipart/form-data with a part named 'file' (or a form with an s3:// URI in 'source').")
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise UploadError(400, "The multipart body has no boundary in its Content-Type; send it with a standard HTTP client or form.")
    return boundary


def too_large(limit_bytes: int) -> UploadError:
    return UploadError(413, f"The request is larger than the service's limit of {limit_bytes / 1024**2:,.0f} MB "
                            "(AUTOMODEL_API_MAX_UPLOAD_MB); send a smaller file or put it on S3 and give its s3:// URI.")


class _FormWriter:
    """python-multipart callbacks: fields into memory (small, bounded), the file part into its file."""

    def __init__(self, folder_root: Path, file_field: str):
        self.folder_root, self.file_field = folder_root, file_field
        self.form = ParsedForm()
        self.finished = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._value: bytearray | None = None
        self._handle = None

    def callbacks(self) -> dict:
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field, "on_header_value": self.header_value,
                "on_header_end": self.header_end, "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end, "on_end": self.end}

    def part_begin(self) -> None:
        self._headers, self._name, self._value = {}, None, None

    def header_field(self, data, start, end) -> None:
        self._header_field += data[start:end]

    def header_value(self, data, start, end) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field, self._header_value = bytearray(), bytearray()

    def headers_finished(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            raise UploadError(400, "A part of the multipart body has no Content-Disposition name; send the form with a standard client.")
        self._name = params[b"name"].decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is None:
            if len(self.form.fields) >= MAX_FIELDS:
                raise UploadError(400, f"The form has more than {MAX_FIELDS} fields; send only the run's options.")
            self._value = bytearray()
            return
        if self._name != self.file_field:
            raise UploadError(400, f"The form has a file in field {self._name!r}; send the file in the field {self.file_field!r}.")
        if self.form.file_path is not None:
            raise UploadError(400, "The form has more than one file; send one file per request.")
        written = filename.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]  # some clients send the whole path
        try:
            name = safe_file_name(written)
        except UnsafePathError as exc:
            raise UploadError(400, str(exc)) from exc
        folder = self.folder_root / secrets.token_hex(8)
        folder.mkdir(mode=0o700)
        self.form.folder, self.form.file_name, self.form.file_path = folder, name, folder / name
        self._handle = open(self.form.file_path, "xb")  # noqa: SIM115  (closed at the part's end or on cleanup)

    def part_data(self, data, start, end) -> None:
        if self._handle is not None:
            self._handle.write(data[start:end])
            self.form.file_bytes += end - start
        elif self._value is not None:
            if len(self._value) + end - start > MAX_FIELD_BYTES:
                raise UploadError(413, f"Form field {self._name!r} is longer than {MAX_FIELD_BYTES // 1024} KB; send only the run's options.")
            self._value += data[start:end]

    def part_end(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        elif self._value is not None and self._name is not None:
            try:
                text = bytes(self._value).decode("utf-8")
            except UnicodeDecodeError:
                raise UploadError(400, f"Form field {self._name!r} is not UTF-8 text.") from None
            self.form.fields.setdefault(self._name, []).append(text)
            self._value = None

    def end(self) -> None:
        self.finished = True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


async def read_multipart(request, folder_root: Path, limit_bytes: int, file_field: str = "file") -> ParsedForm:
    """Parse a multipart/form-data request as it streams in; the file part lands in a new private folder under ``folder_root``.

    Raises UploadError (413 past ``limit_bytes``, 400 for a malformed body, 415 for another content type); nothing is
    left on disk then. The caller removes ``form.folder`` when done with the file.
    """
    boundary = boundary_of(request.headers.get("content-type"))
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit_bytes:
        raise too_large(limit_bytes)
    writer = _FormWriter(folder_root, file_field)
    parser = MultipartParser(boundary, writer.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit_bytes:
                raise too_large(limit_bytes)
            if chunk:
                parser.write(chunk)
        parser.finalize()
        if not writer.finished:
            raise UploadError(400, "The multipart body ended before its closing boundary (a truncated upload); send the file again.")
    except UploadError:
        writer.close()
        writer.form.cleanup()
        raise
    except Exception as exc:  # python-multipart's MultipartParseError, a client that went away, a full disk
        writer.close()
        writer.form.cleanup()
        if isinstance(exc, OSError):
            raise UploadError(507, f"The upload could not be stored ({type(exc).__name__}); free disk space under AUTOMODEL_HOME and try again.") from exc
        if type(exc).__name__ == "ClientDisconnect":
            raise UploadError(400, "The client closed the connection before the upload finished; send the file again.") from exc
        raise UploadError(400, "The multipart body is malformed (" + (str(exc).strip().splitlines() or ["unreadable"])[0][:120]
                          + "); send the file with a standard HTTP client or form.") from exc
    writer.close()
    return writer.form
