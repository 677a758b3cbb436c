"""AutomodelSettings: every setting of the README's configuration table, with its environment variable and the original guide's defaults."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from automodel.layout import Layout

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _project_dir(name: str) -> str:
    """``<project>/<name>`` in a source checkout, so the UI started from any folder sees the same state and lake;
    ``./<name>`` where the package is installed without its project folder."""
    root = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    return str(root / name)


DEFAULT_HOME = _project_dir("local_data")
DEFAULT_LAKE = _project_dir("datasets")
DEFAULT_DASHBOARD_URL = "http://127.0.0.1:3001/"


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def _secret(name: str):
    """Secrets stay environment variables: the UI and logs show the variable's name, never its value."""
    return dg.EnvVar(name) if os.environ.get(name) else ""


def reveal(value) -> str:
    """The value of a setting that may be an unresolved EnvVar (outside a Dagster run, e.g. the CLI)."""
    return value.get_value() or "" if isinstance(value, dg.EnvVar) else value


class AutomodelSettings(dg.ConfigurableResource):
    """Paths, thresholds, quotas and feature flags. Built from the environment by ``from_env``."""

    home: str = DEFAULT_HOME
    lake_dir: str = DEFAULT_LAKE
    drop_dir: str = ""
    s3_bucket: str = ""
    s3_prefix: str = "users/"
    # Drop-folder sensors and scheduled lake syncs (sensors/).
    s3_listing_overlap_s: float = 900.0
    max_runs_per_tick: int = 200
    lake_sync: str = ""
    lake_sync_cron: str = "0 3 * * *"
    llm_provider: str = "template"
    llm_base_url: str = ""
    llm_model: str = ""
    webhook_url: str = ""
    # Quality thresholds (original guide).
    min_r2: float = 0.5
    max_mape: float = 0.3
    # Scalability limits.
    max_rows_first_pass: int = 25_000
    max_features_first_pass: int = 100
    max_rows_full: int = 1_000_000
    profile_sample_rows: int = 1_000
    # Quotas for the free tier.
    max_requests_free: int = 20
    max_gb_free: float = 1.0
    # More tiers and who is in them, as JSON (automodel.quotas.parse_tiers); empty: everyone is on the free tier.
    quota_tiers: str = ""
    # Input bounds (automodel.ingest.archive): inflated size and expansion ratio of compressed files, table width.
    max_inflated_mb: float = 2048.0
    max_expansion_ratio: float = 100.0
    max_columns: int = 2_000
    # Fewest rows for a model, clusters, anomalies or a correlation (analyzers.selection); fewer get a descriptive analysis saying so.
    min_rows: int = 20
    # Feature flags.
    enable_llm_preprocessing: bool = False
    enable_shap_explanations: bool = True
    enable_semantic_merge: bool = True
    enable_agent_actions: bool = True
    enrich_max_tables: int = 3  # forward selection of lake tables stops at this many kept tables
    search_time_budget_s: float = 60.0
    search_backend: str = "automodel"  # or "pycaret": PyCaret's compare_models (slow to import)
    drop_outliers: bool = False  # leave rows with outlying feature values (IQR fence) out of training, as classic cleaning did
    interval_coverage: float = 0.9  # regression prediction intervals: the share of new rows they should cover
    # LLM endpoint details, SMTP notifications and recipe selection (issue 6).
    llm_api_key: str = ""
    llm_timeout_s: float = 30.0
    llm_retries: int = 2
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = "automodel@localhost"
    smtp_to: str = ""
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_ca_file: str = ""
    # Trust model (automodel.trust): operators may read every user's runs; a deployment may fix the identity.
    admin: bool = False
    user: str = ""
    recipes_enabled: str = ""  # comma-separated; empty means every recipe found
    recipes_disabled: str = ""
    recipe_options: str = ""  # JSON: {"reorder": {"threshold": 10}, "anomaly_alert": {"min_rate": 0.02}}
    # Tables larger than memory (automodel.large, docs/LARGE_TABLES.md).
    large_rows: int = 1_000_000  # a file with more rows goes out of core: DuckDB on disk, search on a sample, Dask refit on all rows
    large_search_rows: int = 1_000_000  # rows of the stratified sample the model search runs on, out of core
    large_chunk_rows: int = 250_000  # rows per chunk when cleaning, joining and scoring out of core
    duckdb_memory_limit: str = "2GB"  # DuckDB's memory limit out of core; beyond it DuckDB spills to AUTOMODEL_HOME/large
    duckdb_threads: int = 2  # DuckDB worker threads out of core
    dask_scheduler: str = ""  # address of an existing Dask scheduler (host:port); empty: a LocalCluster for each refit
    dask_workers: int = 2  # worker processes of that LocalCluster
    dask_worker_memory: str = "4GB"  # memory limit of each LocalCluster worker process
    # Where the dashboards folder is served. Empty: `make dev` serves it on DEFAULT_DASHBOARD_URL, or, with an S3
    # asset store, each dashboard is published beside the assets and linked by a presigned URL.
    dashboard_url: str = ""

    @classmethod
    def from_env(cls, **overrides) -> AutomodelSettings:
        env = os.environ
        values = dict(
            home=env.get("AUTOMODEL_HOME") or DEFAULT_HOME,
            lake_dir=env.get("AUTOMODEL_LAKE") or DEFAULT_LAKE,
            drop_dir=env.get("AUTOMODEL_DROP_DIR", ""),
            s3_bucket=env.get("AUTOMODEL_S3_BUCKET", ""),
            s3_prefix=env.get("AUTOMODEL_S3_PREFIX", "users/"),
            s3_listing_overlap_s=float(env.get("AUTOMODEL_S3_LISTING_OVERLAP_S", 900.0)),
            max_runs_per_tick=int(env.get("AUTOMODEL_MAX_RUNS_PER_TICK", 200)),
            lake_sync=env.get("AUTOMODEL_LAKE_SYNC", ""),
            lake_sync_cron=env.get("AUTOMODEL_LAKE_SYNC_CRON", "0 3 * * *"),
            llm_provider=env.get("AUTOMODEL_LLM_PROVIDER", "template"),
            llm_base_url=env.get("AUTOMODEL_LLM_BASE_URL", ""),
            llm_model=env.get("AUTOMODEL_LLM_MODEL", ""),
            webhook_url=env.get("AUTOMODEL_WEBHOOK_URL", ""),
            min_r2=float(env.get("MIN_R2", 0.5)),
            max_mape=float(env.get("MAX_MAPE", 0.3)),
            max_rows_first_pass=int(env.get("MAX_ROWS_FIRST_PASS", 25_000)),
            max_features_first_pass=int(env.get("MAX_FEATURES_FIRST_PASS", 100)),
            max_rows_full=int(env.get("MAX_ROWS_FULL", 1_000_000)),
            profile_sample_rows=int(env.get("PROFILE_SAMPLE_ROWS", 1_000)),
            max_requests_free=int(env.get("MAX_REQUESTS_FREE", 20)),
            max_gb_free=float(env.get("MAX_GB_FREE", 1.0)),
            quota_tiers=env.get("AUTOMODEL_QUOTA_TIERS", ""),
            max_inflated_mb=float(env.get("AUTOMODEL_MAX_INFLATED_MB", 2048.0)),
            max_expansion_ratio=float(env.get("AUTOMODEL_MAX_EXPANSION_RATIO", 100.0)),
            max_columns=int(env.get("AUTOMODEL_MAX_COLUMNS", 2_000)),
            min_rows=int(env.get("AUTOMODEL_MIN_ROWS", 20)),
            enable_llm_preprocessing=_flag("ENABLE_LLM_PREPROCESSING", False),
            enable_shap_explanations=_flag("ENABLE_SHAP_EXPLANATIONS", True),
            enable_semantic_merge=_flag("ENABLE_SEMANTIC_MERGE", True),
            enable_agent_actions=_flag("ENABLE_AGENT_ACTIONS", True),
            enrich_max_tables=int(env.get("AUTOMODEL_ENRICH_MAX_TABLES", 3)),
            drop_outliers=_flag("AUTOMODEL_DROP_OUTLIERS", False),
            interval_coverage=float(env.get("AUTOMODEL_INTERVAL_COVERAGE", 0.9)),
            search_time_budget_s=float(env.get("AUTOMODEL_SEARCH_BUDGET_S", 60.0)),
            search_backend=env.get("AUTOMODEL_SEARCH_BACKEND", "automodel"),
            llm_api_key=_secret("AUTOMODEL_LLM_API_KEY"),
            llm_timeout_s=float(env.get("AUTOMODEL_LLM_TIMEOUT_S", 30.0)),
            llm_retries=int(env.get("AUTOMODEL_LLM_RETRIES", 2)),
            smtp_host=env.get("AUTOMODEL_SMTP_HOST", ""),
            smtp_port=int(env.get("AUTOMODEL_SMTP_PORT", 25)),
            smtp_from=env.get("AUTOMODEL_SMTP_FROM", "automodel@localhost"),
            smtp_to=env.get("AUTOMODEL_SMTP_TO", ""),
            smtp_username=env.get("AUTOMODEL_SMTP_USERNAME", ""),
            smtp_password=_secret("AUTOMODEL_SMTP_PASSWORD"),
            smtp_starttls=_flag("AUTOMODEL_SMTP_STARTTLS", False),
            smtp_ca_file=env.get("AUTOMODEL_SMTP_CA_FILE", ""),
            admin=_flag("AUTOMODEL_ADMIN", False),
            user=env.get("AUTOMODEL_USER", ""),
            recipes_enabled=env.get("AUTOMODEL_RECIPES", ""),
            recipes_disabled=env.get("AUTOMODEL_RECIPES_DISABLED", ""),
            recipe_options=env.get("AUTOMODEL_RECIPE_OPTIONS", ""),
            dashboard_url=env.get("AUTOMODEL_DASHBOARD_URL", ""),
            large_rows=int(env.get("AUTOMODEL_LARGE_ROWS", 1_000_000)),
            large_search_rows=int(env.get("AUTOMODEL_LARGE_SEARCH_ROWS", 1_000_000)),
            large_chunk_rows=int(env.get("AUTOMODEL_LARGE_CHUNK_ROWS", 250_000)),
            duckdb_memory_limit=env.get("AUTOMODEL_DUCKDB_MEMORY_LIMIT", "2GB"),
            duckdb_threads=int(env.get("AUTOMODEL_DUCKDB_THREADS", 2)),
            dask_scheduler=env.get("AUTOMODEL_DASK_SCHEDULER", ""),
            dask_workers=int(env.get("AUTOMODEL_DASK_WORKERS", 2)),
            dask_worker_memory=env.get("AUTOMODEL_DASK_WORKER_MEMORY", "4GB"),
        )
        values.update(overrides)
        return cls(**values)

    @property
    def layout(self) -> Layout:
        return Layout.at(self.home)

    @property
    def lake_path(self) -> Path:
        """The lake as a local folder; an s3:// lake is mirrored under AUTOMODEL_HOME (re-listed at most every few seconds)."""
        from automodel.lake.source import resolve_lake

        return resolve_lake(self.lake_dir, self.home)
