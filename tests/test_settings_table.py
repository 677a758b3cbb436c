"""Every setting is read in resources/settings.py, and the README's configuration table is the one generated from it."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_the_readme_configuration_table_is_generated_from_the_settings():
    from resources.settings import readme_table

    readme = (REPO / "README.md").read_text()
    assert readme_table() in readme, "README.md's configuration table is out of date; replace it with `python -m resources.settings`."


def test_settings_are_read_in_one_place_and_the_core_reads_them_without_dagster(monkeypatch):
    from resources.settings import SETTINGS, current

    monkeypatch.setenv("AUTOMODEL_MAX_INFLATED_MB", "12")
    monkeypatch.setenv("AUTOMODEL_MAX_COLUMNS", "")  # empty: the default, not a crash
    from automodel.ingest.archive import InputLimits

    assert InputLimits.from_env().max_bytes == 12 * 1024**2 and InputLimits.from_env().max_columns == 2000
    assert current().max_inflated_mb == 12.0
    assert len({s.variable for s in SETTINGS}) == len(SETTINGS)  # one row per variable
    # The core imports the settings without loading Dagster.
    code = "import sys, resources.settings, automodel.ingest.archive, automodel.lake.catalog; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout.strip()
    assert out == "False"


def test_the_dagster_resource_has_every_setting_and_hides_secrets(monkeypatch):
    from resources.settings import FIELDS, AutomodelSettings

    monkeypatch.setenv("AUTOMODEL_SMTP_PASSWORD", "hunter2")
    monkeypatch.setenv("ENABLE_SHAP_EXPLANATIONS", "0")
    settings = AutomodelSettings.from_env()
    assert set(FIELDS) <= set(type(settings).model_fields)
    assert settings.enable_shap_explanations is False
    assert "hunter2" not in repr(settings) and settings.smtp_password.env_var_name == "AUTOMODEL_SMTP_PASSWORD"


def test_the_wiring_has_no_import_circle_no_unexplained_local_import_and_no_side_channel():
    sys.path.insert(0, str(REPO / "bench"))
    from structure import WIRING, measure

    figures = measure(REPO)
    wiring_modules = tuple(w.rstrip("/").replace("/", ".") for w in WIRING)
    assert [c for c in figures["circles"] if any(m.startswith(wiring_modules) for m in c)] == []
    assert [u for u in figures["unexplained"] if u.startswith(WIRING)] == []
    assert figures["settings_reads"] == []
    assert figures["side_channels"] == []
