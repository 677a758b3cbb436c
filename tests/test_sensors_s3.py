"""s3_drop_sensor against a real S3-compatible server (moto in server mode on 127.0.0.1), called tick by tick."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone

import dagster as dg
import pytest

from automodel.sessions import SessionStore
from resources.settings import AutomodelSettings
from sensors import s3_drop
from sensors.s3_drop import S3Upload, plan_listing, s3_drop_sensor, seen_digest

BUCKET = "drops"


@pytest.fixture
def penguin_files(penguins):
    """Twenty different real CSV files: slices of the Palmer penguins, with different columns dropped."""
    files = []
    for i in range(20):
        part = penguins.iloc[i * 15: i * 15 + 40].drop(columns=[["year", "sex", "island", "bill_depth_mm"][i % 4]])
        files.append(part.to_csv(index=False).encode())
    return files


@pytest.fixture
def bucket(s3_server):
    client = s3_server.client()
    client.create_bucket(Bucket=BUCKET)
    return client


def _settings(**overrides) -> AutomodelSettings:
    return AutomodelSettings.from_env(s3_bucket=BUCKET, s3_prefix="users/", **overrides)


def _tick(instance, settings, cursor):
    """One sensor evaluation, then what the daemon does with it: add the requested partitions."""
    result = s3_drop_sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"settings": settings}))
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def _run_keys(result) -> list[str]:
    return [r.run_key for r in result.run_requests]


def test_twenty_uploads_give_twenty_partitions_and_run_requests_once(home, bucket, penguin_files):
    for i, data in enumerate(penguin_files):
        bucket.put_object(Bucket=BUCKET, Key=f"users/{['alice', 'bob'][i % 2]}/penguins_{i:02d}.csv", Body=data)
    for key in ("users/alice/big.csv.part", "users/alice/_temporary/0/part-0000.csv", "users/bob/.hidden.csv",
                "users/bob/slides.pdf", "users/bob/upload.csv.tmp", "other/outside_prefix.csv", "users/alice/"):
        bucket.put_object(Bucket=BUCKET, Key=key, Body=penguin_files[0])
    instance = dg.DagsterInstance.ephemeral()
    settings = _settings()

    first = _tick(instance, settings, None)
    assert len(first.run_requests) == 20
    assert len(set(_run_keys(first))) == 20
    keys = [r.partition_key for r in first.run_requests]
    assert sorted(first.dynamic_partitions_requests[0].partition_keys) == sorted(keys)
    assert sorted(instance.get_dynamic_partitions("run_id")) == sorted(keys)
    assert {r.tags["automodel/user"] for r in first.run_requests} == {"alice", "bob"}
    store = SessionStore(settings.layout.sessions_db)
    manifest = store.manifest(keys[0])
    assert manifest.source_uri.startswith(f"s3://{BUCKET}/users/") and manifest.user_id in manifest.source_uri
    assert len(store.list(100)) == 20

    cursor = first.cursor
    for _ in range(2):
        again = _tick(instance, settings, cursor)
        assert again.run_requests == [] and again.dynamic_partitions_requests == []
        assert "No new uploads" in again.skip_reason.skip_message
        cursor = again.cursor
    assert len(instance.get_dynamic_partitions("run_id")) == 20
    assert len(store.list(100)) == 20


def test_uploads_during_ticks_are_each_requested_exactly_once(home, bucket, penguin_files):
    instance = dg.DagsterInstance.ephemeral()
    settings = _settings(max_requests_free=1000)
    uploaded = []

    def upload():
        for i in range(40):
            key = f"users/carol/live_{i:02d}.csv"
            bucket.put_object(Bucket=BUCKET, Key=key, Body=penguin_files[i % 20])
            uploaded.append(key)
            time.sleep(0.02)

    uploader = threading.Thread(target=upload)
    uploader.start()
    cursor, requested, productive_ticks = None, [], 0
    while uploader.is_alive():
        result = _tick(instance, settings, cursor)
        requested += _run_keys(result)
        productive_ticks += bool(result.run_requests)
        cursor = result.cursor
    uploader.join()
    result = _tick(instance, settings, cursor)  # the tick after the last upload
    requested += _run_keys(result)
    assert productive_ticks >= 2, "the uploads should have landed across several ticks"
    assert len(requested) == len(set(requested)) == 40
    assert {k.split("@")[0].removeprefix(f"s3://{BUCKET}/") for k in requested} == set(uploaded)
    assert len(instance.get_dynamic_partitions("run_id")) == 40


def test_tick_fails_while_s3_is_down_and_the_next_recovers_everything(home, s3_server, bucket, penguin_files, monkeypatch):
    instance = dg.DagsterInstance.ephemeral()
    settings = _settings()
    for i in range(5):
        bucket.put_object(Bucket=BUCKET, Key=f"users/dave/batch1_{i}.csv", Body=penguin_files[i])
    first = _tick(instance, settings, None)
    assert len(first.run_requests) == 5
    cursor = first.cursor
    for i in range(5):
        bucket.put_object(Bucket=BUCKET, Key=f"users/dave/batch2_{i}.csv", Body=penguin_files[5 + i])

    s3_server.stop()
    with pytest.raises(s3_drop.S3UnavailableError, match="could not be listed .*the cursor stays"):
        _tick(instance, settings, cursor)  # the daemon records a failed tick and keeps the cursor it had
    s3_server.start()

    # Half way: the listing succeeds, then S3 goes away while the uploads are being validated.
    real_list = s3_drop.list_prefix

    def list_then_fail(client, bucket_name, prefix):
        objects = real_list(client, bucket_name, prefix)
        s3_server.stop()
        return objects

    monkeypatch.setattr(s3_drop, "list_prefix", list_then_fail)
    with pytest.raises(s3_drop.S3UnavailableError):
        _tick(instance, settings, cursor)
    monkeypatch.setattr(s3_drop, "list_prefix", real_list)
    s3_server.start()
    assert len(instance.get_dynamic_partitions("run_id")) == 5, "a failed tick adds no partitions"

    recovered = _tick(instance, settings, cursor)
    assert sorted(k.split("@")[0].rsplit("/", 1)[-1] for k in _run_keys(recovered)) == [f"batch2_{i}.csv" for i in range(5)]
    assert len(instance.get_dynamic_partitions("run_id")) == 10
    assert len(SessionStore(settings.layout.sessions_db).list(100)) == 10, "the retried tick reuses the manifests it wrote"
    assert _tick(instance, settings, recovered.cursor).run_requests == []


def test_quota_rejections_show_as_skip_reasons(home, bucket, penguin_files):
    instance = dg.DagsterInstance.ephemeral()
    settings = _settings(max_requests_free=3)
    for i in range(5):
        bucket.put_object(Bucket=BUCKET, Key=f"users/erin/q_{i}.csv", Body=penguin_files[i])
    bucket.put_object(Bucket=BUCKET, Key="users/frank/empty.csv", Body=b"")
    first = _tick(instance, settings, None)
    assert len(first.run_requests) == 3
    assert {r.tags["automodel/user"] for r in first.run_requests} == {"erin"}
    bucket.put_object(Bucket=BUCKET, Key="users/erin/q_late.csv", Body=penguin_files[7])
    second = _tick(instance, settings, first.cursor)
    assert second.run_requests == []
    assert "tier allows 3 runs" in second.skip_reason.skip_message and "q_late.csv" in second.skip_reason.skip_message
    assert _tick(instance, settings, second.cursor).skip_reason.skip_message.startswith("No new uploads"), "a rejected upload is reported once"


def test_unconfigured_bucket_skips_with_a_reason(home):
    result = s3_drop_sensor(dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources={"settings": AutomodelSettings.from_env(s3_bucket="")}))
    assert "AUTOMODEL_S3_BUCKET" in result.skip_message


def _upload(key: str, second: float, etag: str = "e1") -> S3Upload:
    return S3Upload(key, key, etag, datetime.fromtimestamp(1_700_000_000 + second, tz=timezone.utc).timestamp(), 10)


def test_cursor_keeps_a_late_listed_older_object_inside_the_overlap():
    first = plan_listing([_upload("a", 10), _upload("b", 20)], {}, overlap_s=60, max_new=100)
    assert [u.key for u in first.new] == ["a", "b"]
    # "c" was written before "b" but shows up in a later listing; it is inside the window, so it is new.
    late = plan_listing([_upload("a", 10), _upload("c", 15), _upload("b", 20)], first.cursor, overlap_s=60, max_new=100)
    assert [u.key for u in late.new] == ["c"]
    assert plan_listing([_upload("a", 10), _upload("c", 15), _upload("b", 20)], late.cursor, 60, 100).new == []
    # A re-upload of "a" (new ETag, new time) runs again.
    again = plan_listing([_upload("c", 15), _upload("b", 20), _upload("a", 30, "e2")], late.cursor, 60, 100)
    assert [u.key for u in again.new] == ["a"]
    # Far behind the window, everything old is forgotten from the cursor but stays handled.
    later = plan_listing([_upload("c", 15), _upload("b", 20), _upload("a", 30, "e2"), _upload("d", 500)], again.cursor, 60, 100)
    assert [u.key for u in later.new] == ["d"] and later.cursor["seen"] == [seen_digest(_upload("d", 500))]


def test_cursor_defers_beyond_the_per_tick_limit_without_skipping():
    uploads = [_upload(f"k{i:02d}", i) for i in range(25)]
    cursor, taken = {}, []
    for _ in range(3):
        plan = plan_listing(uploads, cursor, overlap_s=5, max_new=10)
        taken += [u.key for u in plan.new]
        cursor = plan.cursor
    assert taken == [u.key for u in uploads]
    assert plan_listing(uploads, cursor, 5, 10).new == []
    assert json.loads(json.dumps(cursor)) == cursor
