"""Run ids a person can read: ``2026-11-27-penguins-3f9a2c1b`` is the day (UTC), the file's stem and a short hash.

A run id is a Dagster partition key and also part of file names (``models/<run_id>/``,
``dashboards/<run_id>.html``) and S3 keys, so it holds only lowercase ASCII letters, digits and
dashes. The hash keeps ids unique: random for a run started by hand, derived from the upload's
identity and version for a drop-folder run (a retried sensor tick finds the run it recorded).
Ids of the older forms (``20261127T162532-386e7a7c``, ``drop-<hash>``, ``s3-<hash>``) stay valid:
nothing parses a run id, it is only compared.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from datetime import UTC, datetime

STEM_CHARS = 32
_COMPRESSION = (".gz", ".zip", ".bz2", ".xz")


def without_format_suffix(name: str) -> str:
    """``Sales Q3.csv.gz`` -> ``Sales Q3``: a file name less its compression suffix and its format suffix (one each).

    A leading dot (``.env``) belongs to the name, not to a suffix."""
    lowered = name.lower()
    for suffix in _COMPRESSION:
        if lowered.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if "." in name.strip("."):
        name = name.rsplit(".", 1)[0]
    return name


def file_stem(file_name: str) -> str:
    """``Sales Q3.csv.gz`` -> ``sales-q3``: the name without folders, compression and format suffix, as a slug."""
    name = without_format_suffix(file_name.replace("\\", "/").rsplit("/", 1)[-1])
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    if len(slug) > STEM_CHARS:
        slug = slug[:STEM_CHARS].rsplit("-", 1)[0] if "-" in slug[:STEM_CHARS] else slug[:STEM_CHARS]
    return slug.strip("-") or "file"


def readable_run_id(file_name: str, when: datetime | float | None = None, seed: str | None = None) -> str:
    """The run id for a run of ``file_name`` started ``when`` (UTC; a UNIX time or a datetime; now by default).

    ``seed`` (an upload's identity and version) makes the id deterministic; without it the hash is random.
    """
    if when is None:
        moment = datetime.now(UTC)
    elif isinstance(when, datetime):
        moment = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(float(when), tz=UTC)
    digest = hashlib.sha1(seed.encode()).hexdigest()[:10] if seed is not None else uuid.uuid4().hex[:8]
    return f"{moment:%Y-%m-%d}-{file_stem(file_name)}-{digest}"
