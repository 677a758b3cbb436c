"""Storage backends: the same code path reads a user's file from the local folder or from S3."""

from __future__ import annotations

import hashlib
import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg

from automodel.atomic import atomic_path
from automodel.errors import InputFileError
from automodel.layout import Layout
from automodel.safety import safe_file_name


class StorageBackend(ABC):
    @abstractmethod
    def read_bytes(self, uri: str) -> bytes: ...

    @abstractmethod
    def size(self, uri: str) -> int: ...


class LocalBackend(StorageBackend):
    def read_bytes(self, uri: str) -> bytes:
        path = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
        if not path.is_file():
            raise InputFileError(f"{path} does not exist or is not a file; check the path and try again.")
        return path.read_bytes()

    def size(self, uri: str) -> int:
        path = Path(uri[len("file://"):] if uri.startswith("file://") else uri)
        return path.stat().st_size if path.is_file() else 0


class S3Backend(StorageBackend):
    """Any S3-compatible store; boto3 reads AWS_ENDPOINT_URL and credentials from the environment."""

    def __init__(self, client=None):
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import boto3  # deferred: only an S3 backend needs boto3 (a third of a second to import)

            self._client = boto3.client("s3")
        return self._client

    @staticmethod
    def split(uri: str) -> tuple[str, str]:
        parsed = urlparse(uri)
        return parsed.netloc, parsed.path.lstrip("/")

    def read_bytes(self, uri: str) -> bytes:
        bucket, key = self.split(uri)
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey as exc:
            raise InputFileError(f"{uri} does not exist; check the bucket and key.") from exc
        except Exception as exc:  # botocore raises ClientError/EndpointConnectionError and more
            raise InputFileError(f"{uri} could not be read from S3 ({type(exc).__name__}); check the URI, credentials and endpoint.") from exc

    def size(self, uri: str) -> int:
        bucket, key = self.split(uri)
        return int(self.client.head_object(Bucket=bucket, Key=key)["ContentLength"])


def get_backend(uri: str) -> StorageBackend:
    return S3Backend() if uri.startswith("s3://") else LocalBackend()


def stage_upload(layout: Layout, user_id: str, source: Path) -> Path:
    """Copy a local file into ``users/<user_id>/<content hash>/<name>`` (the upload), atomically.

    The content hash keeps every run's input immutable: a later upload with the same name
    cannot change what an earlier run's partition rematerializes from. The original is only read.
    """
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    target = layout.user_dir(user_id) / digest.hexdigest()[:16] / safe_file_name(source.name)
    if target.exists() or target.resolve() == source.resolve():
        return target
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target


class StorageResource(dg.ConfigurableResource):
    """Reads run inputs from local paths or ``s3://`` URIs through one interface."""

    def read_bytes(self, uri: str) -> bytes:
        return get_backend(uri).read_bytes(uri)

    def size(self, uri: str) -> int:
        return get_backend(uri).size(uri)
