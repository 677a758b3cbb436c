"""Where a deployment lives: the home under AUTOMODEL_HOME, its Dagster instance, and the resources every run uses.

The lowest room of the wiring: it imports no other wiring module but the IO manager, so everything above it (run
creation, recovery, sensors, the definitions, the launcher, the command line) may open the instance or build the
resources without a circle.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

from automodel.atomic import file_lock, write_bytes_atomic
from automodel.layout import Layout, secure_home
from automodel_assets.io_manager import RunStoreIOManager
from resources.dask import DaskResource
from resources.llm import LLMResource
from resources.notifier import NotifierResource
from resources.settings import DEFAULT_HOME, PROJECT_ROOT, AutomodelSettings, current
from resources.storage import StorageResource

REPO_DAGSTER_YAML = PROJECT_ROOT / "dagster.yaml"
# First lines of the instance files this project wrote into homes (older versions copied it): those are ours to replace.
_OUR_HEADERS = ("# Embedded default instance", "# automodel's embedded default instance")
_ENV_HEADER = "# Written by automodel (automodel_assets.runs.write_project_env)"


def instance_config_source() -> Path:
    """The instance file every home links to: the repo's dagster.yaml (AUTOMODEL_DAGSTER_YAML names another)."""
    return Path(current().dagster_yaml or REPO_DAGSTER_YAML).expanduser().resolve()


def write_project_env(layout: Layout) -> Path | None:
    """Let ``dagster dev`` and ``dg dev`` started in the project folder use the project's home, not a temporary one.

    Dagster reads ``.env`` from the folder it starts in; DAGSTER_HOME must be absolute, so the file is written here
    (ignored by git) when the home is the project's own ``local_data``. A value already in the environment wins,
    and a ``.env`` someone else wrote is left alone.
    """
    if layout.home != Path(DEFAULT_HOME).resolve() or not (PROJECT_ROOT / "pyproject.toml").exists():
        return None
    env_file = PROJECT_ROOT / ".env"
    text = (f"{_ENV_HEADER}: `dagster dev` and `dg dev` started in this folder\n"
            "# use the same home as the command line and `make dev`. A value set in the environment wins.\n"
            f"DAGSTER_HOME=${{DAGSTER_HOME:-{layout.dagster_home}}}\n"
            f"AUTOMODEL_HOME=${{AUTOMODEL_HOME:-{layout.home}}}\n")
    try:
        if env_file.exists() and (not env_file.read_text().startswith(_ENV_HEADER) or env_file.read_text() == text):
            return None
        write_bytes_atomic(env_file, text.encode())
    except OSError:  # a read-only checkout: `make dev` still works, only plain `dagster dev` needs DAGSTER_HOME set
        return None
    return env_file


def ensure_dagster_home(layout: Layout) -> Path:
    """DAGSTER_HOME lives under AUTOMODEL_HOME; its dagster.yaml is a link to the project's, so edits there take effect.

    A dagster.yaml that someone put there themselves (the production profile's deploy/dagster.yaml) is left alone;
    a copy an older version made is replaced by the link.
    """
    secure_home(layout, private=current().private_home)  # the home is private to its OS user (automodel.trust)
    home = layout.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    write_project_env(layout)
    config, source = home / "dagster.yaml", instance_config_source()
    if not source.exists():
        return home
    if config.is_symlink():
        if config.resolve() == source:
            return home
    elif config.exists() and not config.read_text(errors="replace").startswith(_OUR_HEADERS):
        return home
    link = home / f".dagster.yaml.{os.getpid()}.tmp"
    link.unlink(missing_ok=True)
    try:
        link.symlink_to(source)
    except OSError:  # a file system without symlinks: a copy, refreshed whenever the source differs
        if config.exists() and not config.is_symlink() and config.read_bytes() == source.read_bytes():
            return home
        shutil.copyfile(source, link)
    os.replace(link, config)
    return home


def get_instance(layout: Layout) -> dg.DagsterInstance:
    """The Dagster instance whose home is under AUTOMODEL_HOME (its dagster.yaml picks SQLite or Postgres).

    Creating a new instance's SQLite schemas is not safe from several processes at once (alembic
    stamps its version table twice), so the first use of a home is serialised by a file lock.
    """
    home = ensure_dagster_home(layout)
    with file_lock(home / ".init.lock"):
        instance = dg.DagsterInstance.from_config(str(home))
        instance.get_runs(limit=1)
        instance.get_dynamic_partitions("run_id")
        instance.all_instigator_state()
    return instance


def asset_store(settings: AutomodelSettings) -> str:
    """Where run assets are stored: AUTOMODEL_ASSET_STORE (a folder or s3:// prefix), else ``assets/`` under the home."""
    return current().asset_store or str(settings.layout.asset_dir)


def build_resources(settings: AutomodelSettings | None = None) -> dict:
    settings = settings or AutomodelSettings.from_env()
    return {"settings": settings, "storage": StorageResource(), "io_manager": RunStoreIOManager(base_path=asset_store(settings)),
            "llm": LLMResource.from_settings(settings), "notifier": NotifierResource.from_settings(settings),
            "dask": DaskResource.from_settings(settings)}  # large tables' all-rows refit (automodel.large)
