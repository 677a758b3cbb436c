"""Tier quotas, checked before any work: how many runs and how much data a user may have.

The free tier comes from MAX_REQUESTS_FREE and MAX_GB_FREE. More tiers, and which users belong to
them, come from one JSON setting (AUTOMODEL_QUOTA_TIERS), for example::

    {"tiers": {"pro": {"max_requests": 500, "max_gb": 50}, "internal": {"max_requests": 100000, "max_gb": 1000}},
     "users": {"alice": "pro", "etl@example.com": "internal"},
     "default": "free"}

A user not listed gets ``default`` (the free tier unless said otherwise). Quotas are for tenants: the
drop-folder users and anyone named with ``--user``. The person at the command line without ``--user``
(the embedded ``default`` user) is not throttled unless the JSON lists ``"default"`` under ``users``.
Every refusal names the setting that changes it.

This is the one module of quotas: the tiers, the user's tier from the settings, what the user has stored, the
bounds a run's input gets from both (``input_limits``), and the check before a run is created (``check_new_run``).
``settings`` is any object with the fields of resources.settings (the plain ``current()`` or the Dagster resource).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

from automodel.errors import AutomodelError, QuotaExceededError
from automodel.ingest.archive import InputLimits, inflated_size, is_compressed

TIERS_SETTING = "AUTOMODEL_QUOTA_TIERS"
LOCAL_USER = "default"
# MAX_REQUESTS_FREE counts the runs of the last 24 hours, so a quota refills rather than ending the account.
QUOTA_WINDOW_S = 24 * 3600


@dataclass(frozen=True)
class Tier:
    name: str
    max_requests: int
    max_gb: float
    # Where each limit is set, for the refusal message (the free tier's come from MAX_REQUESTS_FREE and MAX_GB_FREE).
    requests_setting: str = field(default="", compare=False)
    gb_setting: str = field(default="", compare=False)

    def setting_for(self, limit: str) -> str:
        named = self.requests_setting if limit == "max_requests" else self.gb_setting
        return named or f"{limit} of tier {self.name!r} in {TIERS_SETTING}"


UNLIMITED = Tier("unlimited", 10**12, float("inf"))


@dataclass(frozen=True)
class TierPlan:
    tiers: dict[str, Tier]
    users: dict[str, str]
    default: str = "free"

    def tier_for(self, user_id: str | None) -> Tier:
        return self.tiers[self.users.get(user_id or "", self.default)]

    def tier_for_caller(self, user_id: str, local: bool) -> Tier:
        """The local user at the command line (``default``, no ``--user``) is unthrottled unless the tiers name it."""
        if local and user_id == LOCAL_USER and LOCAL_USER not in self.users:
            return UNLIMITED
        return self.tier_for(user_id)


def parse_tiers(spec: str | dict | None, free: Tier) -> TierPlan:
    """Read the tier JSON; a mistake in it is a configuration error with one sentence saying where."""
    tiers = {free.name: free}
    if not spec:
        return TierPlan(tiers, {}, free.name)
    try:
        data = json.loads(spec) if isinstance(spec, str) else dict(spec)
    except json.JSONDecodeError as exc:
        raise AutomodelError(f"AUTOMODEL_QUOTA_TIERS is not valid JSON ({exc.msg} at character {exc.pos}); fix the setting.") from exc
    if not isinstance(data, dict):
        raise AutomodelError("AUTOMODEL_QUOTA_TIERS must be a JSON object with 'tiers' and 'users'; fix the setting.")
    for name, limits in (data.get("tiers") or {}).items():
        try:
            tiers[name] = Tier(str(name), int(limits["max_requests"]), float(limits["max_gb"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AutomodelError(f"Tier {name!r} in AUTOMODEL_QUOTA_TIERS needs numeric max_requests and max_gb; fix the setting.") from exc
    users = {str(k): str(v) for k, v in (data.get("users") or {}).items()}
    default = str(data.get("default") or free.name)
    unknown = sorted({*users.values(), default} - set(tiers))
    if unknown:
        raise AutomodelError(f"AUTOMODEL_QUOTA_TIERS names tier {unknown[0]!r} without defining it under 'tiers'; add it or fix the name.")
    return TierPlan(tiers, users, default)


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 1024**3:,.2f} GB" if n_bytes >= 1024**3 else f"{n_bytes / 1024**2:,.1f} MB"


def check_quota(tier: Tier, runs_so_far: int, stored_bytes: int, new_bytes: int) -> None:
    """Raise QuotaExceededError naming the limit and what to do when a new run would pass it."""
    if runs_so_far + 1 > tier.max_requests:
        raise QuotaExceededError(
            f"The {tier.name} tier allows {tier.max_requests} runs a day and this user has used {runs_so_far}; raise "
            f"{tier.setting_for('max_requests')}, move the user to a larger tier in {TIERS_SETTING}, or wait for older runs to age out "
            "of the 24-hour window."
        )
    limit = tier.max_gb * 1024**3
    if stored_bytes + new_bytes > limit:
        raise QuotaExceededError(
            f"This file ({_size(new_bytes)}) would take the user's uploads ({_size(stored_bytes)} stored) past the {tier.name} tier's "
            f"{tier.max_gb:g} GB storage limit; remove old uploads, raise {tier.setting_for('max_gb')}, or move the user to a larger tier "
            f"in {TIERS_SETTING}."
        )


def user_tier(settings, user_id: str | None = None, local: bool = False) -> Tier:
    """The user's tier: the free tier (MAX_REQUESTS_FREE, MAX_GB_FREE) unless AUTOMODEL_QUOTA_TIERS puts them in another.

    ``local``: the caller is the person at the command line; as the ``default`` user they are not throttled
    unless AUTOMODEL_QUOTA_TIERS lists ``default``.
    """
    free = Tier("free", settings.max_requests_free, settings.max_gb_free, "MAX_REQUESTS_FREE", "MAX_GB_FREE")
    return parse_tiers(settings.quota_tiers, free).tier_for_caller(user_id or LOCAL_USER, local)


def user_stored_bytes(layout, user_id: str) -> int:
    folder = layout.user_dir(user_id)
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def input_limits(settings, user_id: str | None = None, local: bool = False) -> InputLimits:
    """Bounds on a run's input: the settings' inflated size, expansion ratio and column limits; with a user, what is
    left of their storage quota too (a compressed upload counts at its inflated size). ``local`` as for ``user_tier``."""
    if user_id is None:
        return InputLimits.from_settings(settings)
    tier = user_tier(settings, user_id, local=local)
    if not math.isfinite(tier.max_gb):
        return InputLimits.from_settings(settings)
    left = int(tier.max_gb * 1024**3) - user_stored_bytes(settings.layout, user_id)
    return InputLimits.from_settings(settings, quota_left_bytes=max(0, left))


def check_new_run(settings, user_id: str, source: str, name: str, size: int, runs_in_window, local: bool) -> None:
    """Refuse, before any work, a run that would pass the user's quotas.

    ``runs_in_window(user_id, since)`` counts the user's runs since a time (the session store's ``count_for_user``);
    a local compressed file is counted at its inflated size (streamed, never held).
    """
    recent_runs = runs_in_window(user_id, since=time.time() - QUOTA_WINDOW_S)
    check_quota(user_tier(settings, user_id, local=local), recent_runs, user_stored_bytes(settings.layout, user_id), size)
    if not source.startswith("s3://") and is_compressed(name):
        inflated_size(name, Path(source).read_bytes(), input_limits(settings, user_id, local=local))
