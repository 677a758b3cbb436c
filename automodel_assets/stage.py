"""What every stage asset's body does around its own work, however the run was started (CLI, sensor or the UI)."""

from __future__ import annotations

import functools

from automodel.sessions import SessionStore
from automodel_assets.intake import USER_TAG, run_tags
from automodel_assets.redaction import redacted_errors


def tag_run(context, settings) -> None:
    """A run started from the UI ("Materialize" on a partition) carries the same user, file and target tags as a CLI run,
    so it can be filtered with the others; tags the run already has are left as they are."""
    if settings is None or not context.has_partition_key:
        return
    existing = context.run.tags
    if USER_TAG in existing:
        return
    manifest = SessionStore(settings.layout.sessions_db).manifest(context.partition_key)
    if manifest is None:
        return  # the stage itself says why the run has no manifest
    missing = {k: v for k, v in run_tags(manifest, origin="ui").items() if k not in existing}
    if missing:
        context.instance.add_run_tags(context.run_id, missing)


def run_stage(compute):
    """The stage asset's body with its failures and logs redacted (``redacted_errors``) and its run tagged (``tag_run``)."""
    redacted = redacted_errors(compute)

    @functools.wraps(compute)
    def body(*args, **kwargs):
        context = kwargs.get("context", args[0] if args else None)
        tag_run(context, kwargs.get("settings"))
        return redacted(*args, **kwargs)

    return body
