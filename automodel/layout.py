"""Where every piece of local state lives under ``AUTOMODEL_HOME``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from automodel.safety import safe_file_name, safe_user_id


@dataclass(frozen=True)
class Layout:
    home: Path

    @classmethod
    def at(cls, home: str | Path) -> "Layout":
        return cls(Path(home).expanduser().resolve())

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def asset_dir(self) -> Path:
        return self.home / "assets"

    @property
    def users_dir(self) -> Path:
        return self.home / "users"

    @property
    def sessions_db(self) -> Path:
        return self.home / "sessions.db"

    @property
    def action_log_db(self) -> Path:
        return self.home / "action_logs.db"

    @property
    def catalog_db(self) -> Path:
        return self.home / "_INDEX_DB" / "catalog.duckdb"

    @property
    def drop_dir(self) -> Path:
        return self.home / "drop"

    def user_dir(self, user_id: str) -> Path:
        return self.users_dir / safe_user_id(user_id)

    def user_file(self, user_id: str, file_name: str) -> Path:
        return self.user_dir(user_id) / safe_file_name(file_name)

    def model_dir(self, run_id: str) -> Path:
        return self.home / "models" / run_id

    def model_path(self, run_id: str) -> Path:
        return self.model_dir(run_id) / "best_model"

    def predictions_path(self, run_id: str) -> Path:
        return self.home / "output_files" / f"{run_id}_predictions.csv"

    def dashboard_path(self, run_id: str) -> Path:
        return self.home / "dashboards" / f"{run_id}.html"

    def explanation_path(self, run_id: str) -> Path:
        return self.home / "output_files" / f"{run_id}_explanations.csv"

    def shap_path(self, run_id: str) -> Path:
        return self.home / "output_files" / f"{run_id}_shap.csv"

    def facts_path(self, run_id: str) -> Path:
        return self.home / "output_files" / f"{run_id}_facts.json"

    def run_output_paths(self, run_id: str) -> list[Path]:
        """Every file a run may write outside the IO manager's store."""
        return [
            self.model_dir(run_id),
            self.predictions_path(run_id),
            self.dashboard_path(run_id),
            self.explanation_path(run_id),
            self.shap_path(run_id),
            self.facts_path(run_id),
            self.home / "large" / run_id,  # a large table's Parquet parts (automodel.large)
        ]


PRIVATE_UMASK = 0o077  # new folders 0700, new files 0600


def secure_home(layout: Layout, private: bool = True) -> None:
    """Make the home private to the OS user who runs automodel (the embedded profile's trust model, automodel.trust).

    The process umask makes every folder and file written from now on (session store, action log, Dagster
    databases, models, predictions, dashboards, uploads) private, and child processes inherit it (``make dev``
    starts the webserver and daemon under it). The home folder itself is closed (0700), which also closes
    everything an older version left readable inside it, and the stores written directly in it are set to 0600.
    ``AUTOMODEL_PRIVATE_HOME=0`` leaves permissions to the operator (a home shared by a group of accounts).
    """
    if not private:
        return
    os.umask(PRIVATE_UMASK)
    home = layout.home
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if home.stat().st_uid == os.getuid():
        os.chmod(home, 0o700)
    for store in (layout.sessions_db, layout.action_log_db):
        for path in (store, store.with_name(store.name + "-wal"), store.with_name(store.name + "-shm")):
            if path.exists() and path.stat().st_uid == os.getuid():
                os.chmod(path, 0o600)
