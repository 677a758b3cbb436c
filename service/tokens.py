"""Bearer tokens of the HTTP API: each maps to a user namespace and a role (``user`` or ``admin``).

A token is shown once, when it is made (``automodel token create --user NAME``); the store under
AUTOMODEL_HOME keeps only its SHA-256 (a token is 256 random bits, so a plain hash cannot be reversed by
guessing), its short public id (to list and revoke it) and when it was made, last used and revoked.
``user`` tokens see their own runs; ``admin`` tokens see every user's, as AUTOMODEL_ADMIN=1 does at the
command line.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from automodel.errors import AutomodelError
from automodel.safety import safe_user_id

ROLES = ("user", "admin")
PREFIX = "am"
SERVICE_DB = "api.db"  # tokens and the runs waiting to be submitted (service.submitter)


@dataclass(frozen=True)
class Caller:
    """Who a request acts for."""

    user_id: str
    role: str
    token_id: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    def __init__(self, home: str | Path):
        self.path = Path(home) / SERVICE_DB
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as con, con:
            con.execute("CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, digest TEXT UNIQUE NOT NULL, user_id TEXT NOT NULL, "
                        "role TEXT NOT NULL, created_at REAL NOT NULL, last_used_at REAL, revoked_at REAL)")

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
        con.row_factory = sqlite3.Row
        return con

    def create(self, user_id: str, role: str = "user") -> tuple[str, str]:
        """(token id, the token itself): the token is not kept, only its hash."""
        user_id = safe_user_id(user_id)
        if role not in ROLES:
            raise AutomodelError(f"Role {role!r} is not known; use one of {', '.join(ROLES)}.")
        token_id = secrets.token_hex(4)
        token = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        with closing(self._connect()) as con, con:
            con.execute("INSERT INTO tokens (id, digest, user_id, role, created_at) VALUES (?, ?, ?, ?, ?)",
                        [token_id, _digest(token), user_id, role, time.time()])
        return token_id, token

    def caller(self, token: str) -> Caller | None:
        """The caller a presented token stands for; None when it is unknown or revoked."""
        if not token or len(token) > 200:
            return None
        digest = _digest(token)
        with closing(self._connect()) as con:
            row = con.execute("SELECT * FROM tokens WHERE digest = ?", [digest]).fetchone()
        if row is None or row["revoked_at"] is not None or not hmac.compare_digest(row["digest"], digest):
            return None
        return Caller(row["user_id"], row["role"], row["id"])

    def touch(self, token_id: str) -> None:
        with closing(self._connect()) as con, con:
            con.execute("UPDATE tokens SET last_used_at = ? WHERE id = ?", [time.time(), token_id])

    def revoke(self, token_or_id: str) -> str:
        """Revoke by the token itself or its id (the part after ``am_``); returns the id."""
        with closing(self._connect()) as con, con:
            row = con.execute("SELECT id FROM tokens WHERE id = ? OR digest = ?", [token_or_id, _digest(token_or_id)]).fetchone()
            if row is None:
                raise AutomodelError(f"No token {token_or_id!r}; list them with `automodel token list`.")
            con.execute("UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", [time.time(), row["id"]])
        return row["id"]

    def list(self) -> list[dict]:
        with closing(self._connect()) as con:
            rows = con.execute("SELECT id, user_id, role, created_at, last_used_at, revoked_at FROM tokens ORDER BY created_at").fetchall()
        return [dict(r) for r in rows]
