"""Every setting of automodel, read from the environment in this one place: its variable, default and meaning.

``SETTINGS`` is the table (the README's configuration table is generated from it: ``python -m resources.settings``).
Two views of the same values:

- ``current()``: a plain object, for the core (``automodel/``, ``analyzers/``), which must not import Dagster;
- ``AutomodelSettings``: the Dagster ConfigurableResource the assets, sensors and schedules take, with the same fields.
  Secrets (``kind="secret"``) are ``dg.EnvVar`` there, so the UI shows the variable's name, never its value.

This module imports no Dagster: ``AutomodelSettings`` is built from the table the first time it is asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from automodel.lake.source import resolve_lake
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
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Setting:
    """One setting: the field on the settings objects, its environment variable, default and one line for the README.

    ``kind`` is the type the text is read as: str, int, float, bool, or "secret" (text the UI never shows).
    ``shown_default`` is the default as the README writes it, where the value itself would read badly (a path).
    ``field`` is empty for a variable only a configuration file reads (deploy/dagster.yaml)."""

    field: str
    variable: str
    default: object
    meaning: str
    kind: object = str
    shown_default: str | None = None

    def parse(self, text: str | None):
        if text is None or (text == "" and self.kind not in (str, "secret")):
            return self.default
        if self.kind is bool:
            value = text.strip().lower()
            return True if value in _TRUE else False if value in _FALSE else self.default
        if self.kind in (int, float):
            return self.kind(float(text)) if self.kind is int else float(text)
        return text


SETTINGS: tuple[Setting, ...] = (
    # Where things are.
    Setting("home", "AUTOMODEL_HOME", DEFAULT_HOME, "all local state (always used as an absolute path)", shown_default="`local_data/` in the project folder"),
    Setting("lake_dir", "AUTOMODEL_LAKE", DEFAULT_LAKE, "the data lake: a folder or `s3://bucket/prefix` of table files (`manifest.json` optional)",
            shown_default="`datasets/` in the project folder"),
    Setting("drop_dir", "AUTOMODEL_DROP_DIR", "", "local drop folder (`<drop>/<user>/<file>`)", shown_default="`$AUTOMODEL_HOME/drop`"),
    Setting("s3_bucket", "AUTOMODEL_S3_BUCKET", "", "S3 drop folder: the bucket"),
    Setting("s3_prefix", "AUTOMODEL_S3_PREFIX", "users/", "S3 drop folder: the prefix (`<prefix><user>/<file>`)"),
    Setting("asset_store", "AUTOMODEL_ASSET_STORE", "", "where run assets are stored: a folder or `s3://bucket/prefix`", shown_default="`$AUTOMODEL_HOME/assets`"),
    Setting("dagster_yaml", "AUTOMODEL_DAGSTER_YAML", "", "the instance file the home's `dagster.yaml` links to", shown_default="the project's `dagster.yaml`"),
    Setting("dashboard_url", "AUTOMODEL_DASHBOARD_URL", "", "where the dashboards folder is served; the UI's dashboard links start with it",
            shown_default=f"`{DEFAULT_DASHBOARD_URL}` (`make dev`)"),
    Setting("", "AUTOMODEL_POSTGRES_URL", "", "production profile: the Postgres instance storage (read by `deploy/dagster.yaml`)"),
    # Drop-folder sensors and scheduled lake syncs (sensors/).
    Setting("s3_listing_overlap_s", "AUTOMODEL_S3_LISTING_OVERLAP_S", 900.0, "S3 drop sensor: cursor overlap window in seconds", float),
    Setting("max_runs_per_tick", "AUTOMODEL_MAX_RUNS_PER_TICK", 200, "drop sensors: uploads taken per tick", int),
    Setting("lake_sync", "AUTOMODEL_LAKE_SYNC", "", "lake sync sources (a JSON file or inline JSON)"),
    Setting("lake_sync_cron", "AUTOMODEL_LAKE_SYNC_CRON", "0 3 * * *", "schedule of the lake sync"),
    # Execution.
    Setting("executor", "AUTOMODEL_EXECUTOR", "in_process", "`in_process`, `multiprocess` or `celery`"),
    Setting("celery_broker", "AUTOMODEL_CELERY_BROKER", "redis://127.0.0.1:6379/0", "Celery executor: the broker"),
    Setting("celery_backend", "AUTOMODEL_CELERY_BACKEND", "", "Celery executor: the result backend", shown_default="the broker"),
    Setting("asset_modules", "AUTOMODEL_ASSET_MODULES", "", "modules whose `run_id` assets join every run (see Compose an asset)"),
    Setting("debug", "AUTOMODEL_DEBUG", False, "the command line shows the traceback of an unexpected error", bool),
    # Language models and notifications.
    Setting("llm_provider", "AUTOMODEL_LLM_PROVIDER", "template", "`template`, `openai` or `vllm`"),
    Setting("llm_base_url", "AUTOMODEL_LLM_BASE_URL", "", "OpenAI-compatible endpoint including `/v1` (e.g. `vllm serve`)"),
    Setting("llm_model", "AUTOMODEL_LLM_MODEL", "", "the model (default: the first one the server lists)"),
    Setting("llm_api_key", "AUTOMODEL_LLM_API_KEY", "", "bearer key of the LLM endpoint", "secret"),
    Setting("llm_timeout_s", "AUTOMODEL_LLM_TIMEOUT_S", 30.0, "LLM per-request timeout in seconds", float),
    Setting("llm_retries", "AUTOMODEL_LLM_RETRIES", 2, "LLM retries on 5xx, 429 and timeouts", int),
    Setting("webhook_url", "AUTOMODEL_WEBHOOK_URL", "", "notifications: HTTP POST of JSON (timeout 5 s, 2 retries)"),
    Setting("smtp_host", "AUTOMODEL_SMTP_HOST", "", "notifications by email: the relay"),
    Setting("smtp_port", "AUTOMODEL_SMTP_PORT", 25, "the relay's port", int),
    Setting("smtp_from", "AUTOMODEL_SMTP_FROM", "automodel@localhost", "the sender"),
    Setting("smtp_to", "AUTOMODEL_SMTP_TO", "", "the recipients, comma-separated"),
    Setting("smtp_username", "AUTOMODEL_SMTP_USERNAME", "", "login, when the relay needs one (never sent unencrypted)"),
    Setting("smtp_password", "AUTOMODEL_SMTP_PASSWORD", "", "password of that login", "secret"),
    Setting("smtp_starttls", "AUTOMODEL_SMTP_STARTTLS", False, "refuse a relay that offers no STARTTLS (it is used whenever offered)", bool),
    Setting("smtp_ca_file", "AUTOMODEL_SMTP_CA_FILE", "", "a private CA to trust for the relay"),
    # Tables larger than memory (automodel.large, docs/LARGE_TABLES.md).
    Setting("large_rows", "AUTOMODEL_LARGE_ROWS", 1_000_000, "a file with more rows goes out of core: DuckDB on disk, search on a sample, Dask refit on all rows", int),
    Setting("large_search_rows", "AUTOMODEL_LARGE_SEARCH_ROWS", 1_000_000, "rows of the stratified sample the model search runs on, out of core", int),
    Setting("large_chunk_rows", "AUTOMODEL_LARGE_CHUNK_ROWS", 250_000, "rows per chunk when cleaning, joining and scoring out of core", int),
    Setting("duckdb_memory_limit", "AUTOMODEL_DUCKDB_MEMORY_LIMIT", "2GB", "DuckDB's memory limit out of core; beyond it DuckDB spills under the home"),
    Setting("duckdb_threads", "AUTOMODEL_DUCKDB_THREADS", 2, "DuckDB worker threads out of core", int),
    Setting("dask_scheduler", "AUTOMODEL_DASK_SCHEDULER", "", "address of an existing Dask scheduler (host:port); empty: a LocalCluster for each refit"),
    Setting("dask_workers", "AUTOMODEL_DASK_WORKERS", 2, "worker processes of that LocalCluster", int),
    Setting("dask_worker_memory", "AUTOMODEL_DASK_WORKER_MEMORY", "4GB", "memory limit of each LocalCluster worker process"),
    # The HTTP API (service/, `automodel serve`).
    Setting("api_max_upload_mb", "AUTOMODEL_API_MAX_UPLOAD_MB", 1024.0, "HTTP API: a multipart upload is refused (413) past this many MB, streamed to disk until then", float),
    Setting("api_max_json_mb", "AUTOMODEL_API_MAX_JSON_MB", 16.0, "HTTP API: a JSON body (predict rows, ask) past this many MB is refused before it is read", float),
    Setting("api_rate_per_minute", "AUTOMODEL_API_RATE_PER_MINUTE", 600, "HTTP API: requests per token per minute (bursts up to a tenth of it); 0: no limit", int),
    Setting("api_predict_max_rows", "AUTOMODEL_API_PREDICT_MAX_ROWS", 5_000, "HTTP API: a predict batch with more rows becomes a scoring run (202 and a run id)", int),
    Setting("api_model_cache", "AUTOMODEL_API_MODEL_CACHE", 8, "HTTP API: models kept loaded for predict (least recently used leaves first)", int),
    # Trust model (automodel.trust).
    Setting("admin", "AUTOMODEL_ADMIN", False, "operators may read every user's runs", bool),
    Setting("user", "AUTOMODEL_USER", "", "a deployment fixes the identity the command line acts as"),
    Setting("private_home", "AUTOMODEL_PRIVATE_HOME", True, "the home is private to its OS user", bool),
    # Action recipes.
    Setting("recipes_enabled", "AUTOMODEL_RECIPES", "", "which action recipes run, comma-separated", shown_default="all"),
    Setting("recipes_disabled", "AUTOMODEL_RECIPES_DISABLED", "", "recipes that do not run, comma-separated", shown_default="none"),
    Setting("recipe_options", "AUTOMODEL_RECIPE_OPTIONS", "", 'JSON options per recipe, e.g. `{"reorder": {"threshold": 8}}`; `reorder` and '
            '`anomaly_alert` act only on trusted models unless given `"act_on_untrusted": true`'),
    # Quality thresholds and scalability limits (the original guide's names).
    Setting("min_r2", "MIN_R2", 0.5, "a regression below this held-out R² is not trusted", float),
    Setting("max_mape", "MAX_MAPE", 0.3, "a regression above this held-out MAPE is not trusted", float),
    Setting("max_rows_first_pass", "MAX_ROWS_FIRST_PASS", 25_000, "rows the model search compares candidates on", int),
    Setting("max_features_first_pass", "MAX_FEATURES_FIRST_PASS", 100, "features the first pass considers", int),
    Setting("max_rows_full", "MAX_ROWS_FULL", 1_000_000, "rows the chosen model is refitted on", int),
    Setting("profile_sample_rows", "PROFILE_SAMPLE_ROWS", 1_000, "rows sampled to profile column roles", int),
    Setting("min_rows", "AUTOMODEL_MIN_ROWS", 20, "fewest rows for a model, clusters, anomalies or a correlation; fewer get a descriptive analysis", int),
    # Model search.
    Setting("search_time_budget_s", "AUTOMODEL_SEARCH_BUDGET_S", 60.0, "model search time budget in seconds (a cap: small tables finish well before it)", float),
    Setting("search_backend", "AUTOMODEL_SEARCH_BACKEND", "automodel", "`automodel` (our search) or `pycaret` (PyCaret's `compare_models`)"),
    Setting("model_families", "AUTOMODEL_MODEL_FAMILIES", "", "model families the search tries, comma-separated (`linear`, `lightgbm`, `xgboost`, "
            "`catboost`, `random_forest`, `extra_trees`)", shown_default="all of them"),
    Setting("drop_outliers", "AUTOMODEL_DROP_OUTLIERS", False, "rows with outlying feature values (3×IQR fence, target spared) are left out of training", bool),
    Setting("interval_coverage", "AUTOMODEL_INTERVAL_COVERAGE", 0.9, "share of new rows a regression prediction interval should cover", float),
    # Quotas (automodel.quotas).
    Setting("max_requests_free", "MAX_REQUESTS_FREE", 20, "free tier: runs in 24 hours (drop-folder users and `--user` names)", int),
    Setting("max_gb_free", "MAX_GB_FREE", 1.0, "free tier: GB of uploads (a compressed upload counts at its inflated size)", float),
    Setting("quota_tiers", "AUTOMODEL_QUOTA_TIERS", "", 'more tiers as JSON: `{"tiers": {"pro": {"max_requests": 500, "max_gb": 50}}, "users": {"alice": "pro"}}`'),
    # Input bounds (automodel.ingest.archive).
    Setting("max_inflated_mb", "AUTOMODEL_MAX_INFLATED_MB", 2048.0, "compressed inputs are refused past this inflated size in MB", float),
    Setting("max_expansion_ratio", "AUTOMODEL_MAX_EXPANSION_RATIO", 100.0, "compressed inputs are refused past this expansion ratio (checked past 16 MB)", float),
    Setting("max_columns", "AUTOMODEL_MAX_COLUMNS", 2_000, "widest table accepted (0: no limit)", int),
    Setting("max_line_kb", "AUTOMODEL_MAX_LINE_KB", 8 * 1024, "longest line of delimited text in KB, checked before parsing", int),
    Setting("max_cell_kb", "AUTOMODEL_MAX_CELL_KB", 1024, "largest cell of a parsed table in KB", int),
    # Lake and roles.
    Setting("enrich_max_tables", "AUTOMODEL_ENRICH_MAX_TABLES", 3, "most lake tables one run keeps (forward selection)", int),
    Setting("drift_min_rows", "AUTOMODEL_DRIFT_MIN_ROWS", 50, "fewest values of a column in a scored batch for its drift to be judged", int),
    Setting("allow_missing_lake", "AUTOMODEL_ALLOW_MISSING_LAKE", False, "scoring may go on without a lake table the model joined that is gone (the loss is stated)", bool),
    Setting("index_workers", "AUTOMODEL_INDEX_WORKERS", 0, "processes that profile lake tables (0: chosen from the CPUs)", int),
    Setting("embed_roles", "AUTOMODEL_EMBED_ROLES", False, "ambiguous column headers get a MiniLM second opinion", bool),
    Setting("embed_threads", "AUTOMODEL_EMBED_THREADS", 1, "BLAS threads of the sentence embedder's matrix products", int),
    # Feature flags (the original guide's names).
    Setting("enable_llm_preprocessing", "ENABLE_LLM_PREPROCESSING", False, "ambiguous roles get the language model's opinion", bool),
    Setting("enable_shap_explanations", "ENABLE_SHAP_EXPLANATIONS", True, "the explanations asset computes SHAP values", bool),
    Setting("enable_semantic_merge", "ENABLE_SEMANTIC_MERGE", True, "runs are enriched from the lake", bool),
    Setting("enable_agent_actions", "ENABLE_AGENT_ACTIONS", True, "the action recipes run", bool),
)
FIELDS = {s.field: s for s in SETTINGS if s.field}


def read(environ=None) -> dict:
    """Every setting's value from the environment (``os.environ`` by default), typed, defaults filled in."""
    env = os.environ if environ is None else environ
    values = {s.field: s.parse(env.get(s.variable)) for s in FIELDS.values()}
    values["home"] = values["home"] or DEFAULT_HOME
    values["lake_dir"] = values["lake_dir"] or DEFAULT_LAKE
    values["celery_backend"] = values["celery_backend"] or values["celery_broker"]
    return values


class _Paths:
    """What both views derive from the values: the home's layout and the lake as a local folder."""

    @property
    def layout(self) -> Layout:
        return Layout.at(self.home)

    @property
    def lake_path(self) -> Path:
        """The lake as a local folder; an s3:// lake is mirrored under AUTOMODEL_HOME (re-listed at most every few seconds)."""
        return resolve_lake(self.lake_dir, self.home)


class Settings(_Paths, SimpleNamespace):
    """The settings as plain values (no Dagster), one attribute per field of ``SETTINGS``."""

    def __repr__(self) -> str:
        shown = {k: ("***" if FIELDS[k].kind == "secret" and v else v) for k, v in vars(self).items()}
        return f"Settings({shown})"


def current(**overrides) -> Settings:
    """The settings as the environment says now (read each call: the command line and tests change it)."""
    return Settings(**{**read(), **overrides})


def reveal(value) -> str:
    """The value of a setting that may be an unresolved ``dg.EnvVar`` (outside a Dagster run, e.g. the CLI)."""
    get_value = getattr(value, "get_value", None)
    return (get_value() or "") if get_value else value


def _resource_class():
    """The ConfigurableResource with one field per setting, built from ``SETTINGS`` so the two views cannot drift."""
    import dagster as dg  # deferred: the core imports this module for its settings and must not load Dagster

    def from_env(cls, **overrides):
        values = read()
        for name, setting in FIELDS.items():  # the UI shows a secret's variable name, never its value
            if setting.kind == "secret":
                values[name] = dg.EnvVar(setting.variable) if values[name] else ""
        return cls(**{**values, **overrides})

    kinds = {"secret": str}
    namespace = {
        "__module__": __name__, "__qualname__": "AutomodelSettings",
        "__doc__": "Paths, thresholds, quotas and feature flags (resources.settings.SETTINGS). Built from the environment by ``from_env``.",
        "__annotations__": {name: kinds.get(s.kind, s.kind) for name, s in FIELDS.items()},
        **{name: s.default for name, s in FIELDS.items()},
        "from_env": classmethod(from_env), "layout": _Paths.layout, "lake_path": _Paths.lake_path,
    }
    return type("AutomodelSettings", (dg.ConfigurableResource,), namespace)


def __getattr__(name: str):
    if name == "AutomodelSettings":
        globals()[name] = resource = _resource_class()
        return resource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def readme_table() -> str:
    """The README's configuration table (tests/test_settings_table.py fails when the README's copy differs)."""
    def shown(s: Setting) -> str:
        if s.shown_default is not None:
            return s.shown_default
        if s.kind is bool:
            return "on" if s.default else "off"
        if s.default in ("", None):
            return ""
        return f"`{s.default:g}`" if isinstance(s.default, float) else f"`{s.default}`"

    rows = [f"| `{s.variable}` | {shown(s)} | {s.meaning} |" for s in SETTINGS]
    return "\n".join(["| variable | default | meaning |", "|---|---|---|", *rows])


if __name__ == "__main__":
    print(readme_table())
