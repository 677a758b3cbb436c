"""The semantic index over the lake: what the catalog holds, incremental rebuilds, and search on real relational data."""

from __future__ import annotations

import json
import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest
from lake_data import LAKE, county_murders_1996, flights_sample, profile, shared_catalog, us_arrests, zip_records

from automodel.lake import search_index
from automodel.lake.catalog import build_index, index_is_current
from automodel.lake.search import _SNAPSHOTS, search_datasets
from automodel.lake.sketches import ContainmentLSH, signature, value_hashes


def test_catalog_holds_profiles_embeddings_and_sketches_for_every_table_and_column():
    db = shared_catalog()
    manifest = json.loads((LAKE / "manifest.json").read_text())["tables"]
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = dict(con.execute("SELECT name, rows FROM lake_tables").fetchall())
        columns = con.execute("SELECT table_name, column_name, role, stats, sample_values, embedding FROM lake_columns").fetchall()
        keys = con.execute("SELECT key_id, table_name, columns, key_kind, distinct_count FROM lake_keys").fetchall()
    finally:
        con.close()
    index = search_index.load(db)
    assert tables == {t["name"]: t["rows"] for t in manifest}
    assert len(columns) == sum(len(t["columns"]) for t in manifest)
    for table, column, role, stats, samples, embedding in columns:
        vector = np.asarray(embedding)
        assert vector.shape == (384,) and abs(np.linalg.norm(vector) - 1) < 1e-3, (table, column)
        assert json.loads(stats) and isinstance(json.loads(samples), list)
    roles = {(t, c): r for t, c, r, *_ in columns}
    assert roles[("zip_county", "zip")] == "zip_code" and roles[("us_counties", "county_fips")] == "fips_code"
    by_table = {}
    # Every key's distinct value hashes and MinHash signature are in the search index, under its kind.
    assert sorted(index.keys) == sorted(k[0] for k in keys)
    for key_id, table, cols, kind, distinct in keys:
        by_table.setdefault(table, set()).add((tuple(json.loads(cols)), kind))
        exact = index.kinds[kind].key_hashes(key_id)
        assert len(exact) == distinct and np.all(exact[1:] > exact[:-1])
        assert index.kinds[kind].lsh.signatures.shape[1] == 128
    assert (("state_name",), "state") in by_table["state_crime"]
    assert (("county_fips",), "fips_code") in by_table["county_postal_profile"]
    assert (("city", "state_abbr"), "city_state") in by_table["city_postal_profile"]
    assert (("airport", "local_hour"), "generic+hour") in by_table["nyc_weather_hourly"]
    # An hourly table also keys its days and months (to meet daily and monthly user tables), and any
    # code or name column is a key: the county names of us_counties, alone and with their state.
    assert {(("airport", "local_hour"), "generic+date"), (("local_hour",), "date"), (("local_hour",), "month")} <= by_table["nyc_weather_hourly"]
    assert {(("county_name",), "generic"), (("state_abbr", "county_name"), "state+generic")} <= by_table["us_counties"]
    # Zip and county codes keep their leading zeros in the catalog.
    zips = pd.read_csv(LAKE / "lake" / "zip_county.csv.gz", dtype=str)
    assert zips["zip"].str.len().eq(5).all() and zips["county_fips"].str.len().eq(5).all()


def _small_lake(tmp_path):
    lake = tmp_path / "lake"
    (lake / "lake").mkdir(parents=True)
    manifest = json.loads((LAKE / "manifest.json").read_text())
    keep = [t for t in manifest["tables"] if t["name"] in ("us_states", "state_crime", "us_counties")]
    for entry in keep:
        shutil.copy(LAKE / entry["file"], lake / entry["file"])
    (lake / "manifest.json").write_text(json.dumps({"tables": keep}))
    return lake, keep


def test_rebuild_reprofiles_only_changed_tables_and_drops_removed_ones(tmp_path):
    lake, entries = _small_lake(tmp_path)
    db = tmp_path / "catalog.duckdb"
    first = build_index(lake, db)
    assert sorted(first.profiled) == ["state_crime", "us_counties", "us_states"] and index_is_current(lake, db)

    again = build_index(lake, db)
    assert again.profiled == [] and sorted(again.unchanged) == ["state_crime", "us_counties", "us_states"]

    crime = lake / "lake" / "state_crime.csv"
    crime.write_text(crime.read_text().replace("Alabama,459.9", "Alabama,460.0"))
    assert not index_is_current(lake, db)
    changed = build_index(lake, db)
    assert changed.profiled == ["state_crime"] and index_is_current(lake, db)

    (lake / "manifest.json").write_text(json.dumps({"tables": [e for e in entries if e["name"] != "us_counties"]}))
    (lake / "lake" / "us_counties.csv").unlink()
    removed = build_index(lake, db)
    assert removed.removed == ["us_counties"] and removed.profiled == []
    con = duckdb.connect(str(db), read_only=True)
    try:
        for table in ("lake_tables", "lake_columns", "lake_keys"):
            column = "name" if table == "lake_tables" else "table_name"
            assert con.execute(f"SELECT count(*) FROM {table} WHERE {column} = 'us_counties'").fetchone()[0] == 0
    finally:
        con.close()


def test_search_index_reopened_and_rebuilt_incrementally_gives_what_a_full_build_gives(tmp_path, monkeypatch):
    lake, _ = _small_lake(tmp_path)
    db = tmp_path / "catalog.duckdb"
    build_index(lake, db)
    frame, metas = profile(us_arrests())

    def hits(catalog):
        return [h.to_dict() for h in search_datasets(metas, 5, frame=frame, db_path=catalog, lake_dir=lake)]

    first = hits(db)
    _SNAPSHOTS.clear()  # as a new process: the index is opened from its files, nothing rebuilt
    assert hits(db) == first

    # The crime table loses its last ten states: only it is re-profiled, and the search sees the change at once.
    crime = lake / "lake" / "state_crime.csv"
    crime.write_text("\n".join(crime.read_text().splitlines()[:-10]) + "\n")
    assert build_index(lake, db).profiled == ["state_crime"] and index_is_current(lake, db)
    left = set(pd.read_csv(crime)["state_name"])
    expected = us_arrests()["State"].isin(left).mean()
    assert 0.7 < expected < 1.0
    after = {h["table"]: h for h in hits(db)}
    assert after["state_crime"]["containment"] == pytest.approx(expected, abs=1e-4)
    assert after["us_states"]["containment"] == 1.0

    # The incremental index holds exactly what a build from scratch of the same lake holds, here profiled by
    # two worker processes as a large lake is.
    from automodel.lake import catalog

    monkeypatch.setattr(catalog, "PARALLEL_FROM_TABLES", 1)
    monkeypatch.setenv("AUTOMODEL_INDEX_WORKERS", "2")
    full = tmp_path / "full.duckdb"
    assert sorted(build_index(lake, full).profiled) == ["state_crime", "us_counties", "us_states"]
    incremental, scratch = search_index.load(db), search_index.load(full)
    assert sorted(incremental.keys) == sorted(scratch.keys)
    for key_id, key in scratch.keys.items():
        assert np.array_equal(incremental.kinds[key.kind].key_hashes(key_id), scratch.kinds[key.kind].key_hashes(key_id)), key_id
    assert hits(db) == hits(full)


def test_a_build_stopped_before_its_search_index_is_written_is_finished_by_the_next(tmp_path, monkeypatch):
    lake, _ = _small_lake(tmp_path)
    db = tmp_path / "catalog.duckdb"
    build_index(lake, db)
    states = lake / "lake" / "us_states.csv"
    states.write_text(states.read_text().replace("Alabama", "Alabama ", 1))

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(search_index, "write", stopped)
        with pytest.raises(KeyboardInterrupt):
            build_index(lake, db)
    # The catalog has the new us_states, the search index the old one: not current, and the next build re-profiles it.
    assert not index_is_current(lake, db)
    assert build_index(lake, db).profiled == ["us_states"] and index_is_current(lake, db)


def test_search_ranks_by_name_similarity_and_value_containment():
    frame, metas = profile(us_arrests())
    hits = search_datasets(metas, 5, frame=frame, db_path=shared_catalog(), lake_dir=LAKE)
    top = hits[0]
    assert top.table == "state_crime"
    assert top.key.user_columns == ["State"] and top.key.kind == "state" and top.containment == 1.0
    # Several lake tables hold every state; the crime table wins on its description.
    others = [h for h in hits[1:] if h.containment == 1.0]
    assert others and all(h.name_similarity < top.name_similarity for h in others)
    # Without the values, only names and descriptions count and no key is reported.
    names_only = search_datasets(metas, 3, db_path=shared_catalog())
    assert names_only[0].table == "state_crime" and names_only[0].key is None


def test_state_names_abbreviations_and_fips_numbers_find_the_same_table():
    arrests = us_arrests()
    import us

    by_name = {s.name: s for s in us.states.STATES}
    for written in (lambda s: s.abbr, lambda s: int(s.fips), lambda s: s.name.upper()):
        user = arrests.assign(State=arrests["State"].map(lambda n, write=written: write(by_name[n])))
        frame, metas = profile(user)
        top = search_datasets(metas, 3, frame=frame, db_path=shared_catalog(), lake_dir=LAKE)[0]
        assert (top.table, top.containment) == ("state_crime", 1.0), user["State"].head(3).tolist()


def test_county_fips_written_as_integers_match_county_tables_exactly():
    import us

    user = county_murders_1996()
    frame, metas = profile(user)
    hits = search_datasets(metas, 10, frame=frame, db_path=shared_catalog(), lake_dir=LAKE)
    county_hits = {h.table: h for h in hits if h.key and h.key.kind == "fips_code" and h.key.strategy == "direct"}
    assert {"county_postal_profile", "us_counties"} <= set(county_hits)
    known = {c.fips for s in us.states.STATES + [us.states.DC] for c in s.counties}
    expected = np.mean([f"{v:05d}" in known for v in user["countyid"].unique()])
    assert county_hits["us_counties"].containment == pytest.approx(expected, abs=1e-4)
    assert hits[0].key.kind == "fips_code"  # the county grain beats the same counties cut to their states


def test_zips_reach_county_tables_through_the_crosswalk():
    user = zip_records()
    frame, metas = profile(user)
    hits = search_datasets(metas, 10, frame=frame, db_path=shared_catalog(), lake_dir=LAKE)
    # Ground truth: the share of the user's zips (as integers, leading zeros lost) that the crosswalk lists.
    crosswalk = pd.read_csv(LAKE / "lake" / "zip_county.csv.gz", dtype=str)
    expected = user["zip"].map(lambda z: f"{z:05d}").isin(crosswalk["zip"]).mean()
    assert 0.95 < expected < 1.0  # territories and military zips are not in the 50-state crosswalk
    direct = next(h for h in hits if h.table == "zip_county")
    assert direct.key.kind == "zip_code" and direct.key.strategy == "direct"
    assert direct.containment == pytest.approx(expected, abs=1e-4)
    # The crosswalk's lookup is stored normalised in the search index: what reading the table gives.
    from automodel.lake.tables import read_crosswalk, table_entry

    stored = search_index.load(shared_catalog()).crosswalk("zip_county", "zip", "county_fips")
    read = read_crosswalk(LAKE, table_entry(LAKE, "zip_county"), "zip", "county_fips")
    assert len(stored) > 40000 and stored.sort_index().equals(read.sort_index())
    bridged = next(h for h in hits if h.table == "county_postal_profile")
    assert bridged.key.kind == "fips_code" and bridged.key.bridge["table"] == "zip_county"
    assert bridged.key.strategy == "zip mapped to county FIPS through zip_county"
    assert bridged.containment == pytest.approx(expected, abs=1e-4)


def test_airport_plus_date_and_hour_find_the_hourly_weather():
    frame, metas = profile(flights_sample(1500))
    top = search_datasets(metas, 3, frame=frame, db_path=shared_catalog(), lake_dir=LAKE)[0]
    assert top.table == "nyc_weather_hourly"
    assert top.key.kind == "generic+hour" and top.key.user_columns == ["origin", "date", "hour"] and top.containment > 0.98


def test_category_filter_limits_the_search():
    frame, metas = profile(us_arrests())
    hits = search_datasets(metas, 10, frame=frame, db_path=shared_catalog(), lake_dir=LAKE, category="environment")
    assert [h.table for h in hits] == ["nyc_weather_hourly"] and hits[0].key is None


def test_lsh_candidates_are_reranked_by_exact_containment():
    zips = pd.read_csv(LAKE / "lake" / "zip_county.csv.gz", dtype=str)["zip"]
    ny = zips[zips.str.startswith("1")]
    ca = zips[zips.str.startswith("9")]
    sets = sorted([("all", value_hashes(zips)), ("ny", value_hashes(ny)), ("ca", value_hashes(ca))], key=lambda item: len(item[1]))
    lsh = ContainmentLSH.build(np.stack([signature(hashes) for _, hashes in sets]), [len(hashes) for _, hashes in sets])
    sample = ny.sample(1500, random_state=0)
    query = value_hashes(sample)
    found = {name for (name, _), hit in zip(sets, lsh.query(signature(query), len(query))) if hit}
    assert {"ny", "all"} <= found and "ca" not in found
    # The sketch only nominates; the exact share decides.
    exact = {name: sample.isin(values).mean() for name, values in (("all", zips), ("ny", ny), ("ca", ca))}
    assert exact["ny"] == 1.0 and exact["ca"] == 0.0


def test_a_bad_lake_table_is_skipped_with_a_reason_and_the_rest_indexed(tmp_path):
    lake, entries = _small_lake(tmp_path)
    (lake / "lake" / "broken.csv").write_bytes(b"")
    (lake / "lake" / "not_parquet.parquet").write_bytes(b"PAR1 this is no parquet file")
    entries = [*entries, {"name": "broken", "file": "lake/broken.csv", "columns": []},
               {"name": "gone", "file": "lake/gone.csv", "columns": []}]
    (lake / "manifest.json").write_text(json.dumps({"tables": entries}))
    db = tmp_path / "catalog.duckdb"
    report = build_index(lake, db)
    assert sorted(report.profiled) == ["state_crime", "us_counties", "us_states"]
    assert set(report.skipped) == {"broken", "gone", "not_parquet"} and "missing" in report.skipped["gone"]
    assert "empty" in report.skipped["broken"] and "Parquet" in report.skipped["not_parquet"]
    # The unreadable files are not read again until they change, and the index counts as current meanwhile.
    assert set(build_index(lake, db).skipped) == {"broken", "gone", "not_parquet"}
    (lake / "manifest.json").write_text(json.dumps({"tables": entries[:-1]}))
    assert index_is_current(lake, db)
    (lake / "lake" / "broken.csv").write_text("state,value\nOhio,1\nIowa,2\n")
    assert not index_is_current(lake, db)
    assert "broken" in build_index(lake, db).profiled
    (lake / "manifest.json").write_text("{not json")
    from automodel.errors import AutomodelError

    with pytest.raises(AutomodelError, match="manifest"):
        build_index(lake, tmp_path / "catalog.duckdb")
