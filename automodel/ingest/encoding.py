"""Which text encoding a file was written in, and how sure that guess is.

Certain answers come from the bytes themselves: a byte-order mark, UTF-16's pattern of NUL bytes, or
text that decodes as UTF-8 (random non-UTF-8 text almost never does). Everything else is a guess:

- Text in a script that is not Latin (Japanese, Chinese, Korean, Cyrillic, Greek, Arabic, ...) written in
  a legacy code page shows as long runs of bytes above 0x7F (every character of a word is one or two such
  bytes), where Latin text has an accented letter here and there between ASCII ones. Such files are handed
  to charset-normalizer, which scores each candidate code page by how messy the decoded text is and which
  language it reads as.
- Latin text is read as Windows-1252 (a superset of Latin-1's printable characters), or Latin-1 when it has
  bytes CP1252 leaves undefined.

Every guess carries a confidence; a low one is said in the load problems so the user can re-save the
file as UTF-8 when the text looks wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SNIFF_BYTES = 64 * 1024
_DETECT_BYTES = 256 * 1024
_HIGH_RUN = re.compile(rb"[\x80-\xff]+")
# Code pages of Latin script: charset-normalizer often prefers a sibling (cp1250 for cp1252 text) on little evidence.
_LATIN = {"cp1252", "latin_1", "iso8859_1", "cp1250", "cp1257", "cp1254", "cp1258", "cp850", "cp852", "cp775", "cp437", "cp858",
          "iso8859_2", "iso8859_3", "iso8859_4", "iso8859_9", "iso8859_10", "iso8859_13", "iso8859_14", "iso8859_15", "iso8859_16",
          "mac_roman", "mac_latin2", "mac_iceland", "mac_turkish", "cp273", "cp500", "cp1140", "cp037", "cp1026", "ascii", "utf_8"}
CONFIDENT = 0.8


@dataclass
class EncodingGuess:
    encoding: str
    confidence: float
    method: str  # "byte-order mark", "UTF-16 pattern", "valid UTF-8", "detected", "Latin fallback"
    alternatives: list[str] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        """One sentence for the load problems when the guess is not sure, else None."""
        if self.confidence >= CONFIDENT:
            return None
        also = f"; {', '.join(self.alternatives[:3])} would also fit" if self.alternatives else ""
        return (f"the text encoding was guessed as {self.encoding} with confidence {self.confidence:.2f}{also}; "
                "if letters look wrong, save the file as UTF-8")


def _utf16(head: bytes) -> str | None:
    # UTF-16 without a BOM shows as every other byte being NUL.
    if len(head) >= 4 and head[1::2].count(0) > len(head) // 4:
        return "utf-16-le"
    if len(head) >= 4 and head[0::2].count(0) > len(head) // 4:
        return "utf-16-be"
    return None


def looks_non_latin(sample: bytes) -> bool:
    """Most bytes above 0x7F come in runs of three or more: whole words of a non-Latin script, not accents."""
    runs = [len(m) for m in _HIGH_RUN.findall(sample)]
    if not runs:
        return False
    in_long_runs = sum(n for n in runs if n >= 3)
    return in_long_runs / sum(runs) >= 0.5


def _sample(data: bytes) -> bytes:
    """The first bytes, cut at a line end so no multi-byte character is split (0x0A is never a trail byte)."""
    if len(data) <= _DETECT_BYTES:
        return data
    head = data[:_DETECT_BYTES]
    cut = head.rfind(b"\n")
    return head[: cut + 1] if cut > 0 else head


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
        return True
    except (UnicodeDecodeError, LookupError):
        return False


def _detect_non_latin(data: bytes, sample: bytes) -> EncodingGuess | None:
    from charset_normalizer import from_bytes

    matches = [m for m in from_bytes(sample) if m.encoding not in _LATIN]
    if not matches:
        return None
    # The whole file must decode under the guess: a code page that fits the first lines only is not the file's.
    usable = [m for m in matches if _decodes(data, m.encoding)] or matches
    best = usable[0]
    decoded = str(best)
    rivals = [m.encoding for m in usable[1:] if m.chaos <= best.chaos + 0.02 and str(m) != decoded]
    confidence = max(0.0, 1.0 - best.chaos)
    if rivals:  # another code page reads as well but gives other letters: the bytes alone cannot settle it
        confidence = min(confidence, 0.6 + 0.3 * min(1.0, best.coherence))
    if best not in [m for m in matches if _decodes(data, m.encoding)]:
        confidence = min(confidence, 0.5)
    return EncodingGuess(best.encoding, round(confidence, 2), "detected", rivals)


def _latin(data: bytes, sample: bytes) -> EncodingGuess:
    if not _decodes(data, "cp1252"):  # bytes CP1252 leaves undefined (0x81, 0x8d, ...): Latin-1 maps every byte
        return EncodingGuess("latin-1", 0.7, "Latin fallback", [])
    runs = [len(m) for m in _HIGH_RUN.findall(sample)]
    # Accents between ASCII letters are Western European text; CP1252 and its Central European siblings
    # share ASCII, so the fewer high bytes there are, the less a wrong sibling could change.
    share = sum(runs) / max(1, len(sample))
    confidence = 0.95 if share < 0.01 else 0.85 if share < 0.05 else 0.7
    return EncodingGuess("cp1252", confidence, "Latin fallback", [])


def guess_encoding(data: bytes) -> EncodingGuess:
    if data.startswith(b"\xef\xbb\xbf"):
        return EncodingGuess("utf-8-sig", 1.0, "byte-order mark")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return EncodingGuess("utf-16", 1.0, "byte-order mark")
    head = data[:_SNIFF_BYTES]
    utf16 = _utf16(head)
    if utf16:
        return EncodingGuess(utf16, 0.9, "UTF-16 pattern")
    if _decodes(data, "utf-8"):
        return EncodingGuess("utf-8", 1.0, "valid UTF-8")
    sample = _sample(data)
    if looks_non_latin(sample):
        found = _detect_non_latin(data, sample)
        if found is not None:
            return found
        fallback = _latin(data, sample)
        fallback.confidence = min(fallback.confidence, 0.5)  # it looked like another script and nothing fitted
        return fallback
    return _latin(data, sample)


def detect_encoding(data: bytes) -> str:
    """The encoding to read ``data`` with (see ``guess_encoding`` for how sure that is)."""
    return guess_encoding(data).encoding
