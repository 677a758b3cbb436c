"""Rematerializing one asset of a finished run alone gives what the full run gave (DESIGN.md, "The asset graph").

Assets depend on each other only through their inputs: rebuilt alone, with its inputs loaded from the stored outputs
of the full run, each asset must produce the same value (the same predictions, the same summary text, the same
dashboard up to the time it was written). An asset that read another's output through a side channel (the session
store, the event log, a file another asset wrote) would still pass a full run, but fail here once that side channel
says something else: the test scribbles over the session store's copies before rebuilding.

The model search is time-budgeted, so the model rebuilt alone may be another candidate on a busy machine; what
must be the same is everything it was given (rows, target, roles, enrichment spec, training schema, held-out rows).
Every other asset is deterministic given its inputs.
"""

from __future__ import annotations

import re
import shutil

import pandas as pd
import pytest

from conftest import REPO

SAMPLE = REPO / "datasets" / "samples" / "penguins.csv"


def _stored(settings, name: str, run_id: str):
    import dagster as dg

    from automodel_assets.assets import ALL_ASSETS
    from automodel_assets.home import build_resources, get_instance

    return dg.Definitions(assets=ALL_ASSETS, resources=build_resources(settings)).load_asset_value(
        name, partition_key=run_id, instance=get_instance(settings.layout))


def _snapshot(settings, run_id: str, into) -> list:
    """Copies of everything the run wrote (stored outputs, model bundle, files for people), to put back later."""
    pairs = []
    for i, path in enumerate([settings.layout.asset_dir, *settings.layout.run_output_paths(run_id)]):
        if path.exists():
            copy = into / str(i)
            shutil.copytree(path, copy) if path.is_dir() else (into.mkdir(parents=True, exist_ok=True), shutil.copy2(path, copy))
            pairs.append((path, copy))
    return pairs


def _restore(pairs: list) -> None:
    for path, copy in pairs:
        if path.is_dir():
            shutil.rmtree(path)
            shutil.copytree(copy, path)
        else:
            shutil.copy2(copy, path)


def _same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=False, rtol=1e-9)
    assert a.attrs == b.attrs  # what travels with the frame (reports, spec, SHAP rows) is rebuilt the same


def _page(path) -> str:
    """The dashboard without the moments it mentions (when it was written, when the model was saved)."""
    text = path.read_text()
    return re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?( ?UTC|Z|[+-]\d\d:?\d\d)?", "<time>", text)


def _same(name: str, before, after, first_bundle: dict) -> None:
    from automodel import stages

    if isinstance(before, pd.DataFrame):
        _same_frame(before, after)
    elif name == "model":
        assert (after.analyzer, after.task, after.target, after.roles, after.excluded_columns) == \
               (before.analyzer, before.task, before.target, before.roles, before.excluded_columns)
        assert (None if after.holdout is None else list(after.holdout.index)) == (None if before.holdout is None else list(before.holdout.index))
        saved = stages.load_model_bundle(after.model_path)
        assert (saved["enrichment_spec"], saved["training_schema"]) == (first_bundle["enrichment_spec"], first_bundle["training_schema"])
    elif name == "column_metadata":
        assert (after.target, after.target_reason, after.tags) == (before.target, before.target_reason, before.tags)
        assert [(m.name, m.role, m.dtype) for m in after.metas] == [(m.name, m.role, m.dtype) for m in before.metas]
    elif name == "summary":
        assert after["text"] == before["text"]
        assert after["recommendations"] == before["recommendations"]
        assert after["facts"] == before["facts"]
    elif name == "dashboard":
        assert (after["path"], after["charts"], after["key_figures"]) == (before["path"], before["charts"], before["key_figures"])
    elif name == "actions":
        keep = ("recipe", "triggered", "message", "held_back")
        assert [{k: r.get(k) for k in keep} for r in after] == [{k: r.get(k) for k in keep} for r in before]
    else:
        assert after == before


@pytest.mark.lake_indexed
def test_each_asset_rematerialized_alone_gives_what_the_full_run_gave(home, tmp_path, monkeypatch):
    from automodel import stages
    from automodel.sessions import SessionStore
    from automodel_assets.assets import RUN_ASSET_NAMES
    from automodel_assets.runs import get_instance, launch_run, submit_run
    from resources.settings import AutomodelSettings

    # What is compared is what each asset is given and rebuilds, not the model's quality; half the run's budget at least goes
    # to the search (run_budget), enough for a tree model and its SHAP values on penguins.
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "6")
    settings = AutomodelSettings.from_env()
    instance = get_instance(settings.layout)
    source = tmp_path / "penguins.csv"
    shutil.copyfile(SAMPLE, source)
    submitted = submit_run(settings, instance, str(source), target="species")
    assert submitted.outcome.success, submitted.outcome.error
    run_id = submitted.run_id
    store = SessionStore(settings.layout.sessions_db)
    full = {name: _stored(settings, name, run_id) for name in RUN_ASSET_NAMES}
    first_bundle = stages.load_model_bundle(settings.layout.model_path(run_id))
    snapshot = _snapshot(settings, run_id, tmp_path / "snapshot")
    predictions_csv = settings.layout.predictions_path(run_id).read_text()
    page = _page(settings.layout.dashboard_path(run_id))
    assert "id='actions-table'" in page  # built after the actions, showing them
    assert full["enriched_frame"].attrs["automodel/cleaning_report"]["total_changes"] >= 0

    # Whatever the session store says of the run besides its manifest must not matter to any asset.
    store.update(run_id, enrichment={"spec": None, "kept": False}, scoring={"notes": ["stale"]}, actions=[{"recipe": "stale"}],
                 summary="stale")

    for name in RUN_ASSET_NAMES:
        _restore(snapshot)  # each asset is rebuilt from the full run's outputs, not from the asset rebuilt before it
        outcome = launch_run(settings, instance, run_id, only=[name])
        assert outcome.success, f"{name} alone: {outcome.error}"
        _same(name, full[name], _stored(settings, name, run_id), first_bundle)
        if name == "predictions":
            assert settings.layout.predictions_path(run_id).read_text() == predictions_csv
        if name == "dashboard":
            assert _page(settings.layout.dashboard_path(run_id)) == page

    # The rebuilt assets recorded the run again for `automodel sessions` from what they were given.
    row = store.get(run_id)
    assert row["summary"] == full["summary"]["text"] and row["enrichment"]["kept"] == full["enriched_frame"].attrs["automodel/merge_report"]["kept"]


def test_only_an_asset_of_the_run_can_be_rematerialized(home, tmp_path):
    from automodel.errors import AutomodelError
    from automodel_assets.runs import get_instance, launch_run
    from resources.settings import AutomodelSettings

    settings = AutomodelSettings.from_env()
    with pytest.raises(AutomodelError, match="Unknown asset 'semantic_indexx'; choose one of"):
        launch_run(settings, get_instance(settings.layout), "no-such-run", only=["semantic_indexx"])
