"""An S3 lake holds tables in every format a lake folder does: the scheduled sync and the `--lake s3://` mirror
both bring each one into the lake and the index reads it (a real S3-compatible server on loopback)."""

from __future__ import annotations

import gzip
import io
import json

import duckdb
import pandas as pd
import pytest
from lake_data import rdata

from automodel.lake.catalog import build_index
from automodel.lake.source import mirror_s3_lake
from automodel.lake.sync import sync_lake

PREFIX = "exports/"


def _tables() -> dict[str, pd.DataFrame]:
    """Small public tables, one per format, keyed by the file name they are exported as."""
    def r(package, item, row_names=None):
        frame = rdata(package, item)
        return frame.rename(columns={"rownames": row_names}) if row_names else frame.drop(columns=["rownames"])

    return {"arrests.csv": r("datasets", "USArrests", "state"), "states.tsv": r("carData", "States", "state"),
            "airlines.psv": r("nycflights13", "airlines"), "country_codes.parquet": r("gapminder", "country_codes"),
            "murders.json": r("dslabs", "murders"), "cars.jsonl": r("datasets", "mtcars", "model"),
            "air_quality.xlsx": r("datasets", "airquality"), "iris.csv.gz": r("datasets", "iris"),
            "tooth_growth.jsonl.gz": r("datasets", "ToothGrowth")}


def _encode(name: str, frame: pd.DataFrame) -> bytes:
    plain = name.removesuffix(".gz")
    buffer = io.BytesIO()
    if plain.endswith(".csv"):
        frame.to_csv(buffer, index=False)
    elif plain.endswith(".tsv"):
        frame.to_csv(buffer, sep="\t", index=False)
    elif plain.endswith(".psv"):
        frame.to_csv(buffer, sep="|", index=False)
    elif plain.endswith(".parquet"):
        frame.to_parquet(buffer, index=False)
    elif plain.endswith(".jsonl"):
        frame.to_json(buffer, orient="records", lines=True)
    elif plain.endswith(".json"):
        frame.to_json(buffer, orient="records")
    elif plain.endswith(".xlsx"):
        frame.to_excel(buffer, index=False)
    data = buffer.getvalue()
    return gzip.compress(data) if name.endswith(".gz") else data


@pytest.fixture
def s3_export(s3_server):
    """Every table format under s3://lake-exports/exports/ (one in a sub-folder), plus objects that are not tables."""
    client = s3_server.client()
    client.create_bucket(Bucket="lake-exports")
    tables = _tables()
    for name, frame in tables.items():
        key = f"{PREFIX}world/{name}" if name.startswith("country") else f"{PREFIX}{name}"
        client.put_object(Bucket="lake-exports", Key=key, Body=_encode(name, frame))
    for key, body in {"_SUCCESS": b"", "_temporary/0/part-0.csv": b"a,b\n1,2\n", ".staging.csv": b"a,b\n1,2\n", "README.txt": b"exports"}.items():
        client.put_object(Bucket="lake-exports", Key=PREFIX + key, Body=body)
    return client, tables


def _indexed_rows(db) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return dict(con.execute("SELECT name, rows FROM lake_tables").fetchall())
    finally:
        con.close()


def test_scheduled_sync_mirrors_and_indexes_every_table_format(tmp_path, s3_export):
    client, tables = s3_export
    lake = tmp_path / "lake"
    lake.mkdir()
    report = sync_lake([{"name": "exports", "kind": "s3", "uri": f"s3://lake-exports/{PREFIX}"}], lake, client)
    assert report.errors == []
    expected = {("world/" if n.startswith("country") else "") + n for n in tables}
    assert set(report.sources[0].added) == expected, "every format is mirrored; markers, hidden and temporary files are not"
    manifest = {t["name"]: t for t in json.loads((lake / "manifest.json").read_text())["tables"]}
    assert set(manifest) == {"exports_" + n.split(".")[0] for n in tables}
    for rel in expected:
        body = client.get_object(Bucket="lake-exports", Key=PREFIX + rel)["Body"].read()
        assert (lake / "synced" / "exports" / rel).read_bytes() == body, "files are mirrored as they are"
    index = build_index(lake, tmp_path / "catalog.duckdb")
    assert index.skipped == {}
    rows = _indexed_rows(tmp_path / "catalog.duckdb")
    assert rows == {"exports_" + n.split(".")[0]: len(frame) for n, frame in tables.items()}

    again = sync_lake([{"name": "exports", "kind": "s3", "uri": f"s3://lake-exports/{PREFIX}"}], lake, client)
    assert not again.changed and len(again.sources[0].unchanged) == len(tables)


def test_a_damaged_file_of_any_format_fails_its_source_in_one_sentence(tmp_path, s3_export):
    client, _ = s3_export
    client.put_object(Bucket="lake-exports", Key=PREFIX + "broken.parquet", Body=b"PAR1 not really parquet")
    lake = tmp_path / "lake"
    lake.mkdir()
    report = sync_lake([{"name": "exports", "kind": "s3", "uri": f"s3://lake-exports/{PREFIX}"}], lake, client)
    assert len(report.errors) == 1 and "broken.parquet is not a readable table" in report.errors[0]
    assert "\n" not in report.errors[0] and not (lake / "manifest.json").exists(), "a failed source writes nothing"


def test_an_s3_lake_given_to_the_cli_is_mirrored_and_indexed_in_every_format(home, tmp_path, s3_export):
    _, tables = s3_export
    mirror = mirror_s3_lake(f"s3://lake-exports/{PREFIX}", home, force=True)
    files = sorted(p.relative_to(mirror).as_posix() for p in mirror.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert files == sorted(("world/" if n.startswith("country") else "") + n for n in tables)
    build_index(mirror, tmp_path / "catalog.duckdb")
    assert _indexed_rows(tmp_path / "catalog.duckdb") == {n.split(".")[0]: len(frame) for n, frame in tables.items()}


def test_the_lake_sensor_starts_a_sync_for_a_table_of_any_format_and_not_for_job_markers(home, tmp_path, s3_export):
    import dagster as dg

    from resources.settings import AutomodelSettings
    from sensors.lake import evaluate_lake_change

    client, tables = s3_export
    config = tmp_path / "sync.json"
    config.write_text(json.dumps({"sources": [{"name": "exports", "kind": "s3", "uri": f"s3://lake-exports/{PREFIX}"}]}))
    lake = tmp_path / "lake"
    lake.mkdir()
    settings = AutomodelSettings.from_env(lake_dir=str(lake), lake_sync=str(config))
    instance = dg.DagsterInstance.ephemeral()
    first = evaluate_lake_change(settings, instance, None, client=client)
    assert len(first.run_requests) == 1
    for key in ("_SUCCESS", "_temporary/1/part-1.parquet", ".staging.xlsx", "notes.txt"):
        client.put_object(Bucket="lake-exports", Key=PREFIX + key, Body=b"written by the export job")
    assert evaluate_lake_change(settings, instance, first.cursor, client=client).run_requests == [], "no table changed"
    client.put_object(Bucket="lake-exports", Key=PREFIX + "airquality_2.parquet", Body=_encode("x.parquet", tables["air_quality.xlsx"]))
    assert len(evaluate_lake_change(settings, instance, first.cursor, client=client).run_requests) == 1
