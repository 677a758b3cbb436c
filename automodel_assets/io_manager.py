"""RunStoreIOManager: every asset output at ``<base>/<asset>/<partition>.<ext>``, locally or on S3.

DataFrames are Parquet (pickle when a column cannot be written as Parquet); anything else is pickle.
Local writes are atomic (temp file + rename); an S3 PUT is atomic by nature.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import dagster as dg
import pandas as pd

from automodel.atomic import write_bytes_atomic


def _encode(obj) -> tuple[str, bytes]:
    if isinstance(obj, pd.DataFrame):
        try:
            buffer = io.BytesIO()
            obj.to_parquet(buffer, index=False)
            return "parquet", buffer.getvalue()
        except (ValueError, TypeError, ImportError, Exception):  # pyarrow raises ArrowTypeError/ArrowInvalid for mixed columns
            pass
    return "pkl", pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _decode(ext: str, data: bytes):
    if ext == "parquet":
        return pd.read_parquet(io.BytesIO(data))
    return pickle.loads(data)


class RunStoreIOManager(dg.ConfigurableIOManager):
    """Stores each partition's output in one file under ``base_path`` (a folder or ``s3://bucket/prefix``)."""

    base_path: str

    def _stem(self, context) -> str:
        key = "/".join(context.asset_key.path)
        partition = context.partition_key if context.has_partition_key else "__all__"
        return f"{key}/{partition}"

    def _is_s3(self) -> bool:
        return self.base_path.startswith("s3://")

    def _s3(self):
        import boto3  # deferred: only an S3 asset store needs boto3 (a third of a second to import)

        return boto3.client("s3")

    def _s3_location(self, stem: str, ext: str) -> tuple[str, str]:
        bucket, _, prefix = self.base_path[len("s3://"):].partition("/")
        return bucket, f"{prefix.rstrip('/')}/{stem}.{ext}".lstrip("/")

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        ext, data = _encode(obj)
        stem = self._stem(context)
        if self._is_s3():
            bucket, key = self._s3_location(stem, ext)
            self._s3().put_object(Bucket=bucket, Key=key, Body=data)
            location = f"s3://{bucket}/{key}"
        else:
            path = Path(self.base_path) / f"{stem}.{ext}"
            for stale in path.parent.glob(f"{path.stem}.*"):
                if stale.suffix in (".parquet", ".pkl") and stale != path:
                    stale.unlink()
            write_bytes_atomic(path, data)
            location = str(path)
        context.add_output_metadata({"stored_at": dg.MetadataValue.path(location), "stored_bytes": len(data)})

    def load_input(self, context: dg.InputContext):
        partition = context.asset_partition_key if context.has_asset_partitions else "__all__"
        stem = f"{'/'.join(context.asset_key.path)}/{partition}"
        for ext in ("parquet", "pkl"):
            if self._is_s3():
                bucket, key = self._s3_location(stem, ext)
                client = self._s3()
                try:
                    return _decode(ext, client.get_object(Bucket=bucket, Key=key)["Body"].read())
                except client.exceptions.NoSuchKey:
                    continue
            path = Path(self.base_path) / f"{stem}.{ext}"
            if path.exists():
                return _decode(ext, path.read_bytes())
        raise FileNotFoundError(f"no stored output for {stem}; materialize it first")

    def delete_partition(self, asset_names: list[str] | None, partition: str) -> None:
        """Remove one partition's stored outputs (used when a run fails on bad input); ``None``: of every asset stored here."""
        for name in self._stored_assets() if asset_names is None else asset_names:
            for ext in ("parquet", "pkl"):
                if self._is_s3():
                    bucket, key = self._s3_location(f"{name}/{partition}", ext)
                    self._s3().delete_object(Bucket=bucket, Key=key)
                else:
                    path = Path(self.base_path) / name / f"{partition}.{ext}"
                    if path.exists():
                        path.unlink()

    def _stored_assets(self) -> list[str]:
        """Every asset with a folder here (one folder per asset key; keys of one part, as every run asset's is)."""
        if self._is_s3():
            bucket, _, prefix = self.base_path[len("s3://"):].partition("/")
            prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
            pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/")
            return sorted(p["Prefix"][len(prefix):].strip("/") for page in pages for p in page.get("CommonPrefixes", []))
        base = Path(self.base_path)
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []
