"""Tier quotas, checked before any work: how many runs and how much data a user may have."""

from __future__ import annotations

from dataclasses import dataclass

from automodel.errors import QuotaExceededError


@dataclass(frozen=True)
class Tier:
    name: str
    max_requests: int
    max_gb: float


def check_quota(tier: Tier, runs_so_far: int, stored_bytes: int, new_bytes: int) -> None:
    """Raise QuotaExceededError naming the limit and what to do when a new run would pass it."""
    if runs_so_far + 1 > tier.max_requests:
        raise QuotaExceededError(
            f"The {tier.name} tier allows {tier.max_requests} runs and this user has used {runs_so_far}; "
            "delete old runs or move to a larger tier."
        )
    limit = tier.max_gb * 1024**3
    if stored_bytes + new_bytes > limit:
        raise QuotaExceededError(
            f"This file ({new_bytes / 1024**2:,.1f} MB) would take the user past the {tier.name} tier's {tier.max_gb:g} GB "
            "storage limit; remove old uploads or move to a larger tier."
        )
