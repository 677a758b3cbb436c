"""Input sanitisation: user ids and file names that cannot escape their folder, PII redaction (also as a logging filter)."""

from __future__ import annotations

import logging
import re
from pathlib import PurePosixPath

from automodel.errors import UnsafePathError

_USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def safe_user_id(user_id: str) -> str:
    if not isinstance(user_id, str) or not _USER_ID.match(user_id) or ".." in user_id:
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


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_PHONE = re.compile(r"(?<![\w.])(?:\+?1[ .-]?)?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b")


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


def redact_pii(text: str) -> str:
    """Replace emails, SSN-like numbers, card numbers (Luhn-valid) and phone numbers."""
    if not text:
        return text
    text = _EMAIL.sub("[email]", text)
    text = _SSN.sub("[ssn]", text)

    def card(match: re.Match) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return "[card]" if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)

    text = _CARD.sub(card, text)
    text = _PHONE.sub("[phone]", text)
    return text


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
