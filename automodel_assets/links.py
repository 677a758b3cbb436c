"""Links the UI opens: a run's dashboard and the charts ``automodel ask`` draws, all files of the dashboards folder.

- ``AUTOMODEL_DASHBOARD_URL`` set: the folder is served there (a web server, a bucket website, a CDN).
- Otherwise, with an S3 asset store (``AUTOMODEL_ASSET_STORE=s3://...``): the file is published beside the
  assets (``<store>/dashboards/<file>``) and linked by a presigned URL (valid for 7 days, S3's limit).
- Otherwise ``make dev`` serves the folder on loopback (``http://127.0.0.1:3001/``).
With an S3 asset store the file is published in every case, so the link works from any machine.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlparse

from resources.settings import DEFAULT_DASHBOARD_URL, AutomodelSettings, current

PRESIGNED_SECONDS = 7 * 24 * 3600


def _asset_store() -> str:
    return current().asset_store


def publish_to_s3(store: str, path: Path) -> tuple[str, str]:
    """Upload a dashboard file beside the assets; (bucket, key)."""
    import boto3  # deferred: only an S3 asset store needs boto3 (a third of a second to import)

    bucket, _, prefix = store[len("s3://"):].partition("/")
    key = f"{prefix.strip('/')}/dashboards/{path.name}".lstrip("/")
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType="text/html; charset=utf-8")
    return bucket, key


def dashboard_link(settings: AutomodelSettings, path: Path) -> str:
    """The URL of a file of the dashboards folder, as the UI should open it."""
    path = Path(path)
    store = _asset_store()
    published = publish_to_s3(store, path) if store.startswith("s3://") else None
    if settings.dashboard_url:
        return settings.dashboard_url.rstrip("/") + "/" + quote(path.name)
    if published:
        import boto3  # deferred: only an S3 asset store needs boto3

        bucket, key = published
        return boto3.client("s3").generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=PRESIGNED_SECONDS)
    return DEFAULT_DASHBOARD_URL + quote(path.name)


def served_address(settings: AutomodelSettings) -> tuple[str, int] | None:
    """(host, port) where ``make dev`` should serve the dashboards folder: the configured URL when it is on this
    machine's loopback, the default otherwise; None when the links point elsewhere (a bucket, another server)."""
    url = settings.dashboard_url or (None if _asset_store().startswith("s3://") else DEFAULT_DASHBOARD_URL)
    if not url:
        return None
    parsed = urlparse(url)
    if parsed.scheme != "http" or parsed.hostname not in ("127.0.0.1", "localhost") or parsed.path.strip("/"):
        return None
    return parsed.hostname, parsed.port or 80
