"""Input sanitisation: user ids and file names that cannot escape their folder, PII redaction (also as a logging filter)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from automodel.errors import UnsafePathError

_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")  # matched in full: "$" would let a trailing newline through


def safe_user_id(user_id: str) -> str:
    if not isinstance(user_id, str) or not _USER_ID.fullmatch(user_id) or ".." in user_id:
        raise UnsafePathError(
            f"User id {user_id!r} is not allowed: use 1-64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit."
        )
    return user_id


def safe_file_name(file_name: str) -> str:
    """Return a plain file name; reject anything with a directory part or traversal."""
    if not isinstance(file_name, str) or not file_name or "\x00" in file_name:
        raise UnsafePathError("The file name is empty or contains a NUL byte: give a plain file name.")
    name = PurePosixPath(file_name.replace("\\", "/"))
    if name.is_absolute() or len(name.parts) != 1 or name.name in {".", ".."} or name.name.startswith("."):
        raise UnsafePathError(
            f"File name {file_name!r} is not allowed: give a plain file name without folders, '..' or a leading dot."
        )
    return name.name


def regular_files_inside(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative POSIX path, lstat) of every regular file under ``root``, never through a symbolic link.

    Symlinks to files and to folders are both skipped, so nothing outside ``root`` is ever listed:
    a drop folder is a place others write to, and a link in it would hand them any file this process
    can read. ``root`` itself may be a link (an operator's choice of where the folder lives).
    """
    base = Path(root)
    for folder, dirs, files in os.walk(base, followlinks=False):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        for name in files:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except FileNotFoundError:  # removed while listing
                continue
            if stat.S_ISREG(info.st_mode):
                yield Path(path).relative_to(base).as_posix(), info


def open_inside(root: Path, relative: str):
    """Open ``root/relative`` for reading without following a symbolic link at any step.

    Each folder on the way and the file itself are opened with O_NOFOLLOW relative to the one before,
    so a link swapped in after the folder was listed is refused rather than followed out of ``root``.
    """
    parts = PurePosixPath(relative).parts
    if not parts or any(part in ("", ".", "..") for part in parts) or PurePosixPath(relative).is_absolute():
        raise UnsafePathError(f"{relative!r} is not a plain path inside the drop folder.")
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | nofollow, dir_fd=fd)
            except OSError as exc:
                raise UnsafePathError(f"{relative!r} goes through {part!r}, which is a link or not a folder; drop folders never follow links.") from exc
            os.close(fd)
            fd = next_fd
        try:
            file_fd = os.open(parts[-1], os.O_RDONLY | nofollow, dir_fd=fd)
        except OSError as exc:
            raise UnsafePathError(f"{relative!r} is a link or cannot be opened; drop folders never follow links.") from exc
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise UnsafePathError(f"{relative!r} is not a regular file.")
    return os.fdopen(file_fd, "rb")


@contextlib.contextmanager
def private_copy_inside(root: Path, relative: str, scratch: Path) -> Iterator[Path]:
    """A private copy of ``root/relative`` (opened as ``open_inside`` does) under ``scratch``, removed afterwards."""
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder = Path(tempfile.mkdtemp(prefix=".drop-", dir=scratch))
    try:
        target = folder / safe_file_name(PurePosixPath(relative).name)
        with open_inside(root, relative) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# SSNs written 123-45-6789 or 123 45 6789: always redacted.
_SSN_SEPARATED = re.compile(r"(?<![\w.-])\d{3}([- ])\d{2}\1\d{4}(?![\w-]|\.\d)")
# Nine digits in a row, not part of a longer number, a decimal, a word or a dashed id.
_NINE_DIGITS = re.compile(r"(?<![\w.+-])\d{9}(?![\w-]|\.\d)")
_SSN_WORDS = re.compile(r"(ssn|social\s*security|\btin\b|\bitin\b|tax\s*id|taxpayer)", re.IGNORECASE)
# A column named for social security or tax numbers: its whole numbers are SSNs even when leading zeros were lost (12345678).
_SSN_COLUMN = re.compile(r"(^|[^a-z])(ssn|ssns|itin|tin)([^a-z]|$)|social.?security|tax.?id|taxpayer", re.IGNORECASE)
_ZIP_WORDS = re.compile(r"(zip|postal|postcode|plus4|\+4)", re.IGNORECASE)
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_PHONE = re.compile(r"(?<![\w.])(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b")
# International numbers written with a leading +: 8 to 15 digits with spaces, dashes or brackets between (no dots: +0.123456789 is a number).
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d[\d ()-]{6,20}\d(?![\w.])")
_CONTEXT = 24  # characters before a number that are read for words like "zip" or "SSN"


def _luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _ssn_shaped(digits: str) -> bool:
    """Could be issued as an SSN (or an ITIN, area 9xx): area not 000 or 666, group not 00, serial not 0000."""
    return digits[:3] not in ("000", "666") and digits[3:5] != "00" and digits[5:] != "0000"


def _nine_digits(text: str, match: re.Match) -> str:
    before = text[max(0, match.start() - _CONTEXT):match.start()]
    if _SSN_WORDS.search(before):
        return "[ssn]"
    if _ZIP_WORDS.search(before) or not _ssn_shaped(match.group(0)):
        return match.group(0)  # a ZIP+4 written without its dash, or a number no SSN can have
    return "[ssn]"


def redact_pii(text: str) -> str:
    """Replace emails, SSNs (with or without dashes), card numbers (Luhn-valid) and phone numbers.

    Nine digits in a row count as an SSN unless a word like "zip" or "postal" comes just before them
    (a ZIP+4 without its dash) or they cannot be an SSN (area 000 or 666, group 00, serial 0000);
    after "SSN", "social security" or "tax id" they are redacted whatever their shape. Longer digit
    runs, decimals (0.123456789) and dashed or lettered ids (run-123456789, A123456789) are left alone.
    """
    if not text:
        return text
    text = _EMAIL.sub("[email]", text)
    text = _SSN_SEPARATED.sub("[ssn]", text)
    text = _NINE_DIGITS.sub(lambda m: _nine_digits(m.string, m), text)

    def card(match: re.Match) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return "[card]" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)

    text = _CARD.sub(card, text)
    text = _PHONE.sub("[phone]", text)

    def intl(match: re.Match) -> str:
        return "[phone]" if 8 <= len(re.sub(r"\D", "", match.group(0))) <= 15 else match.group(0)

    return _PHONE_INTL.sub(intl, text)


_MASKED_ROLES = ("email", "phone")


def redact_value(value, role: str | None = None, column: str | None = None):
    """One cell shown outside the run (a role sample, a label): masked whole for email and phone columns and for
    columns named for SSNs or tax ids, strings through ``redact_pii``, and whole numbers too (a phone or SSN
    column parsed as integers)."""
    if role in _MASKED_ROLES and value is not None:
        return f"[{role}]"
    if column is not None and value is not None and not isinstance(value, bool) and _SSN_COLUMN.search(str(column)):
        return "[ssn]"
    if isinstance(value, str):
        return redact_pii(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 1e19):
        text = str(int(value))
        redacted = redact_pii(text)
        if redacted != text:
            return redacted
        if len(text) == 10 and text[0] not in "01" and role != "numeric":  # a US phone number without separators
            return "[phone]"
    return value


def redact_structure(value, _seen: dict | None = None):
    """Every string inside nested dicts, lists, tuples and numpy object arrays through ``redact_pii`` (numbers kept)."""
    memo = {} if _seen is None else _seen
    if isinstance(value, str):
        if value not in memo:
            memo[value] = redact_pii(value)
        return memo[value]
    if isinstance(value, dict):
        return {redact_structure(k, memo): redact_structure(v, memo) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_structure(v, memo) for v in value) if isinstance(value, list) else tuple(redact_structure(v, memo) for v in value)
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind in ("O", "U", "S"):
        import numpy as np

        return np.array([redact_structure(v, memo) for v in value.ravel().tolist()], dtype=object).reshape(value.shape)
    return value


def redact_figure(figure):
    """A plotly figure with every string in its data and layout redacted (numbers, and so the chart, unchanged)."""
    import plotly.graph_objects as go

    spec = figure.to_plotly_json()
    redacted = redact_structure({"data": spec.get("data", []), "layout": spec.get("layout", {})})
    return go.Figure(redacted)


class RedactingFilter(logging.Filter):
    """Redacts personal data from every record a handler emits (the message after %-formatting)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a record whose arguments do not format: leave it to the handler
            return True
        redacted = redact_pii(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install_log_redaction(*logger_names: str) -> None:
    """Attach one RedactingFilter to the handlers of the given loggers (root when none), once."""
    for name in logger_names or ("",):
        for handler in logging.getLogger(name or None).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())
