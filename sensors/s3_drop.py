"""s3_drop_sensor: each new object under ``s3://AUTOMODEL_S3_BUCKET/AUTOMODEL_S3_PREFIX`` becomes a run.

``<prefix><user_id>/<file>`` gives the user. One tick lists the prefix (dagster-aws ``get_objects``),
records a manifest for each new upload (validation and quotas included), and returns the
run_id partitions and run requests together.

The cursor is a Last-Modified watermark plus the versions seen inside an overlap window below
it. S3 sets Last-Modified itself (an upload cannot arrive with an old time, unlike a file moved
into a local folder), but the listing is only eventually ordered: an object can show up in a
listing after a newer one, and times have one-second resolution. Every object newer than
``watermark - overlap`` is therefore compared with the versions seen, so nothing inside the
window is skipped or repeated, and each run id is derived from ``bucket/key, ETag, Last-Modified``
so a tick that failed half way and is retried reuses the manifests it already wrote.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import dagster as dg

from automodel.errors import AutomodelError
from automodel.sessions import SessionStore
from automodel_assets.intake import create_run, stored_run_tags
from resources.settings import AutomodelSettings
from sensors.drop_common import TickPlan, drop_run_id, is_upload, sidecar_options, user_of


class S3UnavailableError(Exception):
    """S3 could not be asked about an object; the tick fails and its cursor stays where it was."""


@dataclass(frozen=True)
class S3Upload:
    key: str
    relative: str
    etag: str
    modified: float
    size: int

    @property
    def version(self) -> str:
        return f"{self.etag}@{self.modified:.3f}"


@dataclass
class ListingPlan:
    new: list[S3Upload]
    deferred: int
    cursor: dict


def uploads_under(objects: list[dict], prefix: str) -> list[S3Upload]:
    """Finished uploads of supported formats under the prefix, oldest first."""
    uploads = []
    for obj in objects:
        key = obj["Key"]
        relative = key.removeprefix(prefix)
        if is_upload(relative):
            uploads.append(S3Upload(key, relative, str(obj.get("ETag", "")).strip('"'), obj["LastModified"].timestamp(), int(obj.get("Size", 0))))
    return sorted(uploads, key=lambda u: (u.modified, u.key))


def seen_digest(upload: S3Upload) -> str:
    """48 bits of the key and version: the cursor stays small (15 bytes an upload) when a burst fills the window."""
    return hashlib.blake2b(f"{upload.key}@{upload.version}".encode(), digest_size=6).hexdigest()


def plan_listing(uploads: list[S3Upload], cursor: dict, overlap_s: float, max_new: int) -> ListingPlan:
    """Which uploads are new since ``cursor``, at most ``max_new`` of them (oldest first), and the cursor after handling them.

    An upload at or below ``watermark - overlap`` was handled by an earlier tick; inside the window
    an upload is new unless its exact version was seen. The next watermark never passes a deferred
    upload, and the next window keeps every handled version that could still show up again.
    """
    watermark = cursor.get("watermark")
    seen = set(cursor.get("seen", []))
    floor = None if watermark is None else watermark - overlap_s
    new = [u for u in uploads if (floor is None or u.modified > floor) and seen_digest(u) not in seen]
    taken, deferred = new[:max_new], new[max_new:]
    waiting = set(deferred)
    handled = [u for u in uploads if u not in waiting]
    next_watermark = max([u.modified for u in handled] + ([watermark] if watermark is not None else []), default=None)
    if deferred and next_watermark is not None:
        next_watermark = min(next_watermark, deferred[0].modified)
    next_floor = None if next_watermark is None else next_watermark - overlap_s
    next_seen = sorted({seen_digest(u) for u in handled if next_floor is None or u.modified > next_floor})
    return ListingPlan(taken, len(deferred), {"watermark": next_watermark, "seen": next_seen})


def s3_client():
    """boto3 reads AWS_ENDPOINT_URL and credentials itself; short timeouts keep a tick against a dead endpoint short."""
    # deferred: boto3 (a third of a second) is loaded only where an S3 drop folder is watched
    import boto3
    from botocore.config import Config

    return boto3.client("s3", config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"}))


def list_prefix(client, bucket: str, prefix: str) -> list[dict]:
    from dagster_aws.s3.sensor import get_objects  # deferred: dagster-aws loads boto3, needed only for an S3 drop folder

    return list(get_objects(bucket, prefix, client=client))


def _still_there(client, bucket: str, key: str) -> bool:
    """After a rejected upload: False when the object is gone; raise when S3 itself could not answer."""
    from botocore.exceptions import ClientError  # deferred with boto3 (s3_client)

    try:
        client.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise S3UnavailableError(f"S3 answered {exc.response.get('Error', {}).get('Code')} for s3://{bucket}/{key}; retrying next tick") from exc
    except Exception as exc:  # EndpointConnectionError, timeouts: a failed tick, not a rejected upload
        raise S3UnavailableError(f"S3 could not be reached for s3://{bucket}/{key} ({type(exc).__name__}); retrying next tick") from exc


def _read_sidecar(client, bucket: str, key: str, listed_keys: set[str]) -> bytes | None:
    """The sidecar's bytes when the listing holds it; a sidecar that cannot be read fails the tick (the cursor stays)."""
    if key not in listed_keys:
        return None
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        raise S3UnavailableError(f"The sidecar s3://{bucket}/{key} could not be read ({type(exc).__name__}); retrying next tick") from exc


def evaluate_s3_drop(settings: AutomodelSettings, instance: dg.DagsterInstance, cursor_text: str | None, client=None,
                     context: dg.SensorEvaluationContext | None = None) -> dg.SensorResult | dg.SkipReason:
    if not settings.s3_bucket:
        return dg.SkipReason("AUTOMODEL_S3_BUCKET is not set; set it (and AUTOMODEL_S3_PREFIX) to watch an S3 drop folder.")
    client = client or s3_client()
    bucket, prefix = settings.s3_bucket, settings.s3_prefix
    cursor = json.loads(cursor_text) if cursor_text else {}
    try:
        listed = list_prefix(client, bucket, prefix)
    except Exception as exc:  # EndpointConnectionError, AccessDenied, NoSuchBucket: the tick fails and keeps its cursor
        raise S3UnavailableError(f"s3://{bucket}/{prefix} could not be listed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                                 "the cursor stays and the next tick retries.") from exc
    plan = plan_listing(uploads_under(listed, prefix), cursor, settings.s3_listing_overlap_s, settings.max_runs_per_tick)
    tick = TickPlan(deferred=plan.deferred)
    store = SessionStore(settings.layout.sessions_db)
    listed_keys = {obj["Key"] for obj in listed}
    for upload in plan.new:
        uri = f"s3://{bucket}/{upload.key}"
        identity = f"{uri}@{upload.version}"
        run_id = drop_run_id("s3", identity, upload.key.rsplit("/", 1)[-1], upload.modified)
        user = user_of(upload.relative)
        if store.get(run_id) is None:
            try:
                base = upload.key[: len(upload.key) - len(upload.relative)]
                options = sidecar_options(lambda rel, base=base: _read_sidecar(client, bucket, base + rel, listed_keys), upload.relative)
                create_run(settings, instance, uri, user_id=user, run_id=run_id, add_partition=False, target=options.target,
                           labels=options.labels, category=options.category, options=options.options, from_drop=True)
            except AutomodelError as exc:
                if _still_there(client, bucket, upload.key):
                    tick.skipped.append(f"{upload.relative}: {exc}")
                continue
        tick.add(run_id, identity, user, stored_run_tags(store, run_id, "s3_drop_sensor"))
    return tick.result(json.dumps(plan.cursor, separators=(",", ":")), context,
                       idle_reason=f"No new uploads under s3://{bucket}/{prefix}.")


@dg.sensor(job_name="automodel_run", minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Starts a run for each new object under s3://AUTOMODEL_S3_BUCKET/AUTOMODEL_S3_PREFIX (<prefix><user>/<file>). "
                       "Partial and temporary uploads are ignored; quota and format rejections show as skip reasons.")
def s3_drop_sensor(context: dg.SensorEvaluationContext, settings: AutomodelSettings):
    return evaluate_s3_drop(settings, context.instance, context.cursor, context=context)
