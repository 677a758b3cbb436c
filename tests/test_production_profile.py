"""The production profile (deploy/): Postgres run/event/schedule storage started by the test on loopback,
asset storage and compute logs on a real S3-compatible server, the run queue and the Celery executor."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import dagster as dg
import pytest
from conftest import REPO, free_port

DEPLOY = REPO / "deploy"


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (initdb refuses root, so as root it runs as the postgres user)."""

    def __init__(self):
        self.initdb, self.pg_ctl, self.createdb = _pg_bin("initdb"), _pg_bin("pg_ctl"), _pg_bin("createdb")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="automodel-pg-"))
        self.data = self.dir / "data"
        self.as_user = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60", "start",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off")
        self._run(self.createdb, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "dagster")

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/dagster"


@pytest.fixture(scope="module")
def postgres():
    if not (_pg_bin("initdb") and _pg_bin("pg_ctl")):
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed; `make system-deps` installs Debian's postgresql package.")
    server = Postgres()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def production_home(home, postgres, s3_server, monkeypatch):
    """AUTOMODEL_HOME whose instance is deploy/dagster.yaml, assets and logs on S3 (bucket automodel-prod)."""
    (home / "dagster").mkdir(parents=True)
    shutil.copyfile(DEPLOY / "dagster.yaml", home / "dagster" / "dagster.yaml")
    monkeypatch.setenv("AUTOMODEL_POSTGRES_URL", postgres.url)
    monkeypatch.setenv("AUTOMODEL_S3_BUCKET", "automodel-prod")
    monkeypatch.setenv("AUTOMODEL_ASSET_STORE", "s3://automodel-prod/assets")
    s3_server.client().create_bucket(Bucket="automodel-prod")
    return home


@pytest.mark.lake_indexed
def test_full_run_on_postgres_and_s3_reads_back_through_sessions(production_home, s3_server, cli, penguins, monkeypatch):
    # Where the run's records and outputs go is checked here; a short search still separates penguin species (accuracy > 0.9).
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "5")
    client = s3_server.client()
    client.put_object(Bucket="automodel-prod", Key="users/alice/penguins.csv", Body=penguins.to_csv(index=False).encode())

    result = cli("run", "s3://automodel-prod/users/alice/penguins.csv", "--target", "species", "--user", "alice", "--json")
    assert result.code == 0, result.err
    run_id = result.json["run_id"]
    assert result.json["status"] == "success" and result.json["metrics"]["accuracy"] > 0.9

    listed = cli("sessions", "--user", "alice", "--json")
    assert listed.code == 0, listed.err
    row = next(r for r in listed.json["sessions"] if r["run_id"] == run_id)
    assert row["status"] == "success" and row["user_id"] == "alice" and row["source_uri"] == "s3://automodel-prod/users/alice/penguins.csv"

    instance = dg.DagsterInstance.from_config(str(production_home / "dagster"))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"automodel/run_id": run_id}))
        assert runs and runs[0].status == dg.DagsterRunStatus.SUCCESS
        assert run_id in instance.get_dynamic_partitions("run_id")
        events = instance.fetch_materializations(dg.AssetKey("model"), limit=10).records
        assert any(e.partition_key == run_id for e in events)
    finally:
        instance.dispose()
    stored = {o["Key"] for o in client.list_objects_v2(Bucket="automodel-prod", Prefix="assets/")["Contents"]}
    for asset in ("raw_dataset", "cleaned_frame", "column_metadata", "enriched_frame", "model", "predictions", "summary"):
        assert any(key.startswith(f"assets/{asset}/{run_id}.") for key in stored), f"{asset} is not on S3"
    assert not (production_home / "assets").exists(), "the asset store is S3, nothing is written locally"
    logs = client.list_objects_v2(Bucket="automodel-prod", Prefix="dagster/compute-logs/").get("KeyCount", 0)
    assert logs > 0, "step logs go to S3"


def test_run_queue_limits_are_global_and_per_user(production_home):
    instance = dg.DagsterInstance.from_config(str(production_home / "dagster"))
    try:
        coordinator = instance.run_coordinator
        assert type(coordinator).__name__ == "QueuedRunCoordinator"
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 8
        per_user = next(limit for limit in queue.tag_concurrency_limits if limit["key"] == "automodel/user")
        assert per_user["limit"] == 2 and per_user["value"] == {"applyLimitPerUniqueValue": True}
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 4
        # The drop sensors tag runs with the key this limit counts.
        from sensors.drop_common import USER_TAG

        assert USER_TAG == per_user["key"]
    finally:
        instance.dispose()


def test_celery_executor_and_worker_config_agree(monkeypatch):
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv("AUTOMODEL_CELERY_BROKER", "redis://127.0.0.1:6390/3")
    monkeypatch.setenv("AUTOMODEL_CELERY_BACKEND", "redis://127.0.0.1:6390/4")
    monkeypatch.setenv("AUTOMODEL_EXECUTOR", "celery")
    from automodel_assets.definitions import executor_from_env

    executor = executor_from_env()
    assert executor.name == "automodel_celery"
    worker = get_validated_config(str(DEPLOY / "celery.yaml"))
    assert worker["broker"] == "redis://127.0.0.1:6390/3" and worker["backend"] == "redis://127.0.0.1:6390/4"
    resolved = executor.config_schema.resolve_config({})
    assert resolved.success
    assert resolved.value["config"]["broker"] == worker["broker"] and resolved.value["config"]["backend"] == worker["backend"]
