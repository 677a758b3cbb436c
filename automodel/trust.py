"""The trust model: who a command acts for and whose runs it may see.

Embedded profile: the OS user who owns AUTOMODEL_HOME owns everything in it (folders 0700, files 0600,
``automodel.layout.secure_home``); ``--user`` is a namespace inside that home, not an identity: anyone
who can run commands as that OS user can name any namespace. Listing or reading another namespace's
runs (``sessions --all-users``; rerun, score or ask of another user's run) needs the operator setting
AUTOMODEL_ADMIN=1. Where the identity must not be an argument (the production profile, a shared
service), the deployment sets AUTOMODEL_USER and ``--user`` may only repeat it; drop-folder sensors take
the user from the drop path (``<drop>/<user>/<file>``, ``<prefix><user>/<file>``).
"""

from __future__ import annotations

from automodel.errors import AutomodelError
from automodel.safety import safe_user_id

DEFAULT_USER = "default"


def acting_user(requested: str | None, deployment_user: str = "") -> str:
    """The user a command acts for: the deployment's (AUTOMODEL_USER) when set, else ``--user``, else ``default``."""
    if deployment_user:
        deployment_user = safe_user_id(deployment_user)
        if requested is not None and requested != deployment_user:
            raise AutomodelError(f"This deployment acts as user {deployment_user!r} (AUTOMODEL_USER); --user cannot name another user.")
        return deployment_user
    return safe_user_id(requested if requested is not None else DEFAULT_USER)


def may_read(owner: str | None, user: str, admin: bool = False) -> bool:
    """Whether ``user`` may see a run owned by ``owner``: their own, or any with the admin setting."""
    return admin or owner == user


def require_admin(admin: bool, what: str) -> None:
    if not admin:
        raise AutomodelError(f"{what} shows every user's runs; it needs the operator setting AUTOMODEL_ADMIN=1.")
