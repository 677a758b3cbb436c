"""The HTTP API and the web page (``automodel serve``): the same runs as the command line, for people and services.

Endpoints (a contract, shared/DESIGN.md "HTTP"): ``GET /health``; ``POST /runs`` (a multipart ``file`` or an
``s3://`` URI in ``source``, with the command line's options as form fields) answers 202 with ``{"run_id": ...}``
and the run is submitted to the Dagster run queue, where the daemon launches it; ``GET /runs``,
``GET /runs/{id}``, ``POST /runs/{id}/rerun``, ``GET /runs/{id}/predictions``, ``GET /runs/{id}/dashboard``,
``POST /runs/{id}/ask``, ``POST /models/{id}/predict``. Every other endpoint needs ``Authorization: Bearer <token>``
(``automodel token create --user NAME``): 401 without; another user's run is 404, exactly like a missing one.
Every error is ``{"detail": "<one sentence>"}``, never a traceback.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import threading
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from automodel.errors import AutomodelError, QuotaExceededError
from automodel.sessions import SessionStore
from resources.settings import AutomodelSettings
from service import launch
from service.predict import ModelCache, PredictError, predictions_json, rows_frame, score
from service.ratelimit import RateLimiter
from service.status import STATUSES, newest_runs, run_state, summary_status
from service.submitter import Submitter
from service.tokens import Caller, TokenStore
from service.uploads import ParsedForm, UploadError, read_multipart

logger = logging.getLogger("automodel.service")
WEB = Path(__file__).resolve().parent / "web"
CHART_NAME = re.compile(r"[A-Za-z0-9._@-]+_ask_[0-9a-f]{10}\.html")
RECOVERY_INTERVAL_S = 5.0
TOUCH_INTERVAL_S = 60.0


class BodyTooLarge(Exception):
    pass


class ServiceState:
    """What the endpoints share: settings, tokens, the rate limiter, warm models, the submitter, one Dagster instance."""

    def __init__(self, settings: AutomodelSettings):
        self.settings = settings
        self.tokens = TokenStore(settings.layout.home)
        self.limiter = RateLimiter(settings.api_rate_per_minute)
        self.models = ModelCache(settings.api_model_cache)
        self.submitter = Submitter(settings, self.instance)
        self._instance = None
        self._instance_lock = threading.Lock()
        self._last_recovery = 0.0
        self._touched: dict[str, float] = {}

    def instance(self):
        with self._instance_lock:
            if self._instance is None:
                self._instance = launch.get_instance(self.settings.layout)
            return self._instance

    @property
    def store(self) -> SessionStore:
        return SessionStore(self.settings.layout.sessions_db)

    def recover_now_and_then(self) -> None:
        """A run whose process was killed is failed (and its slots freed) when someone looks at it, at most every few seconds."""
        now = time.monotonic()
        if now - self._last_recovery < RECOVERY_INTERVAL_S:
            return
        self._last_recovery = now
        try:
            launch.recover_dead_runs(self.settings, self.instance())
        except Exception:  # the daemon's dead_run_recovery sensor does the same; looking at a run must not fail for it
            logger.exception("recovering dead runs failed")

    def touch(self, caller: Caller) -> None:
        now = time.monotonic()
        if now - self._touched.get(caller.token_id, -TOUCH_INTERVAL_S) >= TOUCH_INTERVAL_S:
            self._touched[caller.token_id] = now
            self.tokens.touch(caller.token_id)


# ---- errors: one sentence, never a traceback ---------------------------------------------------------------------------

def _error(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _validation_sentence(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "The request is not valid; see /docs for what each endpoint takes."
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    message = str(first.get("msg", "is not valid")).rstrip(".")
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON; send a JSON object, e.g. {\"rows\": [...]}."
    return f"{where or 'The request'}: {message[0].lower() + message[1:] if message else 'not valid'}; see /docs for what this endpoint takes."


def not_found(run_id: str) -> HTTPException:
    return HTTPException(404, f"Run {run_id} is not known; list your runs with GET /runs.")


def user_error(exc: Exception) -> HTTPException:
    status = 429 if isinstance(exc, QuotaExceededError) else 400
    return HTTPException(status, str(exc))


class BodyLimit:
    """Refuses a body past the limits before it is read: multipart uploads up to AUTOMODEL_API_MAX_UPLOAD_MB (counted again
    as they stream), every other body up to AUTOMODEL_API_MAX_JSON_MB, whether it declares its length or not."""

    def __init__(self, app, settings: AutomodelSettings):
        self.app = app
        self.upload_limit = int(settings.api_max_upload_mb * 1024**2)
        self.json_limit = int(settings.api_max_json_mb * 1024**2)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        multipart = headers.get(b"content-type", b"").lower().startswith(b"multipart/")
        limit = self.upload_limit if multipart else self.json_limit
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            what = "upload" if multipart else "request body"
            setting = "AUTOMODEL_API_MAX_UPLOAD_MB" if multipart else "AUTOMODEL_API_MAX_JSON_MB"
            response = _error(413, f"The {what} is larger than the service's limit of {limit / 1024**2:,.0f} MB ({setting}); "
                                   "send less, or put a large file on S3 and give its s3:// URI.")
            return await response(scope, receive, send)
        if multipart:
            return await self.app(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        return await self.app(scope, counted, send)


# ---- the request bodies, for OpenAPI -------------------------------------------------------------------------------------

class PredictRows(BaseModel):
    rows: list[dict] = Field(..., description="One object per row: {column: value}, columns as the training file named them.")


class Question(BaseModel):
    question: str = Field(..., min_length=1, max_length=1000, description="A question about the run's data, e.g. \"what drives species\".")


class Rerun(BaseModel):
    from_: str | None = Field(None, alias="from", description="Rematerialize this asset and everything of the run downstream of it.")


UPLOAD_FORM = {
    "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "properties": {
            "file": {"type": "string", "format": "binary", "description": "The table (CSV/TSV, Parquet, Excel, JSON, JSON Lines; .gz/.zip)."},
            "source": {"type": "string", "description": "Instead of a file: an s3:// URI the service can read."},
            "target": {"type": "string", "description": "The column to predict (guessed when absent), as `--target`."},
            "label": {"type": "array", "items": {"type": "string"}, "description": "COLUMN=ROLE, repeatable, as `--label`."},
            "keep": {"type": "array", "items": {"type": "string"}, "description": "Columns the leakage guard keeps, as `--keep`."},
            "drop": {"type": "array", "items": {"type": "string"}, "description": "Columns left out of the model, as `--drop`."},
            "validate": {"type": "string", "description": "random, time:COLUMN or group:COLUMN, as `--validate`."},
            "budget": {"type": "number", "description": "The model search's budget in seconds (at most 3600)."},
            "model": {"type": "string", "description": "Score the file with this run's model instead of training (`automodel score`)."},
        }}}}},
}

RERUN_FORM = {
    "requestBody": {"required": False, "content": {
        "application/json": {"schema": {"type": "object", "properties": {"from": {"type": "string"}}}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "from": {"type": "string", "description": "Rematerialize this asset and everything downstream of it."},
            "file": {"type": "string", "format": "binary", "description": "A new file: a new run with this run's options."},
            "source": {"type": "string", "description": "A new s3:// URI: a new run with this run's options."}}}}}},
}

PREDICT_BODY = {
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"type": "object", "required": ["rows"], "properties": {
            "rows": {"type": "array", "items": {"type": "object"}, "description": "One object per row: {column: value}."}}}},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "string", "format": "binary", "description": "A table to score, read as `automodel score` reads it."}}}}}},
}


def _iso(stamp) -> str | None:
    return datetime.fromtimestamp(float(stamp), UTC).isoformat(timespec="seconds") if stamp else None


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def create_app(settings: AutomodelSettings | None = None) -> FastAPI:
    settings = settings or AutomodelSettings.from_env()
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state.submitter.start()
        yield
        state.submitter.stop()

    app = FastAPI(
        title="automodel", version="0.1.0", lifespan=lifespan,
        description="Upload a table, follow its run, score new rows with its model, ask about its data. The same runs as "
                    "`automodel run`: each is a run of the Dagster job `automodel_run`. Authenticate with `Authorization: Bearer <token>` "
                    "(`automodel token create --user NAME`).",
    )
    app.state.service = state
    bearer = HTTPBearer(auto_error=False, description="A token from `automodel token create --user NAME`.")
    upload_limit = int(settings.api_max_upload_mb * 1024**2)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "The request could not be served."
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"There is no endpoint {request.url.path}; see /docs for the API."
        elif exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs for the API."
        return _error(exc.status_code, detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        return _error(422, _validation_sentence(exc))

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, exc: BodyTooLarge):
        return _error(413, f"The request body is larger than the service's limit of {settings.api_max_json_mb:,.0f} MB "
                           "(AUTOMODEL_API_MAX_JSON_MB); send fewer rows, or a file.")

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError):
        return _error(exc.status, exc.message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # the traceback goes to the service's log, one sentence to the caller
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, f"The service failed unexpectedly ({type(exc).__name__}); the details are in its log. Try again, or report it.")

    app.add_middleware(BodyLimit, settings=settings)

    def caller(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Caller:
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise HTTPException(401, "This endpoint needs a bearer token: send `Authorization: Bearer <token>` "
                                     "(make one with `automodel token create --user NAME`).", headers={"WWW-Authenticate": "Bearer"})
        who = state.tokens.caller(credentials.credentials)
        if who is None:
            raise HTTPException(401, "The bearer token is not known or was revoked; ask for a new one "
                                     "(`automodel token create --user NAME`).", headers={"WWW-Authenticate": "Bearer"})
        wait = state.limiter.allow(who.token_id)
        if wait:
            raise HTTPException(429, f"Too many requests with this token (AUTOMODEL_API_RATE_PER_MINUTE is {settings.api_rate_per_minute}); "
                                     f"wait {math.ceil(wait)} s and try again.", headers={"Retry-After": str(math.ceil(wait))})
        state.touch(who)
        return who

    def own_row(run_id: str, who: Caller) -> dict:
        row = state.store.get(run_id)
        if row is None or not (who.admin or row["user_id"] == who.user_id):
            raise not_found(run_id)  # another user's run reads exactly like a missing one
        return row

    def links(run_id: str, row: dict) -> dict:
        out = {"self": f"/runs/{run_id}", "rerun": f"/runs/{run_id}/rerun", "predictions": f"/runs/{run_id}/predictions",
               "dashboard": f"/runs/{run_id}/dashboard", "ask": f"/runs/{run_id}/ask"}
        if row.get("model_path"):
            out["predict"] = f"/models/{run_id}/predict"
        return out

    def summary(row: dict, status: str) -> dict:
        return {"run_id": row["run_id"], "status": status, "user": row["user_id"], "file": row.get("file_name"), "target": row.get("target"),
                "task": row.get("task"), "analyzer": row.get("analyzer"), "metrics": _jsonable(row.get("metrics") or {}),
                "model_run_id": row.get("model_run_id"), "error": row.get("error") if status == "failed" else None,
                "created_at": _iso(row.get("created_at")), "updated_at": _iso(row.get("updated_at")), "links": links(row["run_id"], row)}

    def status_of(row: dict, dagster_run) -> str:
        return "queued" if state.submitter.is_waiting(row["run_id"]) else summary_status(row, dagster_run)

    # ---- the page and health -------------------------------------------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def page():
        return HTMLResponse((WEB / "index.html").read_text(encoding="utf-8"), headers={"Cache-Control": "no-cache"})

    app.mount("/web", StaticFiles(directory=str(WEB)), name="web")

    @app.get("/health", summary="The instance, the daemon's heartbeat, storage and the lake index's age", tags=["service"])
    def health():
        from service.health import health_report

        report = health_report(settings, state.instance)
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    # ---- runs ------------------------------------------------------------------------------------------------------------

    def _accept_run(who: Caller, form, *, target, labels, options, model_run_id=None) -> str:
        source = form.first("source") if form is not None else None
        if form is not None and form.file_path is not None:
            if source:
                raise HTTPException(400, "Send either a file or an s3:// URI in 'source', not both.")
            source = str(form.file_path)
        elif not source:
            raise HTTPException(400, "Send the table as a multipart part named 'file', or its s3:// URI in the field 'source'.")
        elif not source.startswith("s3://"):
            raise HTTPException(400, f"'source' must be an s3:// URI (got {source[:80]!r}); send a local file as the part 'file'.")
        try:
            run_id = launch.create_run(settings, state.instance(), source, user_id=who.user_id, target=target, labels=labels,
                                       options=options, model_run_id=model_run_id)
        except AutomodelError as exc:
            raise user_error(exc) from exc
        state.submitter.submit(run_id)
        return run_id

    async def _read_form(request: Request) -> ParsedForm:
        """A multipart form (its file streamed to disk), or a plain urlencoded form (an s3:// URI and options, no file)."""
        if request.headers.get("content-type", "").lower().startswith("application/x-www-form-urlencoded"):
            body = (await request.body()).decode("utf-8", "replace")
            return ParsedForm(fields=parse_qs(body, keep_blank_values=False, max_num_fields=200))
        return await read_multipart(request, launch.upload_folder(settings), upload_limit)

    def _accepted(run_id: str) -> JSONResponse:
        return JSONResponse({"run_id": run_id, "status": "queued", "links": links(run_id, {})}, status_code=202,
                            headers={"Location": f"/runs/{run_id}"})

    @app.post("/runs", status_code=202, summary="Upload a table (or name an s3:// URI) and start a run", tags=["runs"],
              openapi_extra=UPLOAD_FORM)
    async def post_run(request: Request, who: Caller = Depends(caller)):
        form = await _read_form(request)
        try:
            try:
                labels = launch.parse_labels(form.fields.get("label"))
                options = launch.run_options(form.fields.get("keep") or [], form.fields.get("drop") or [], form.first("validate"),
                                             form.first("budget"))
            except AutomodelError as exc:
                raise user_error(exc) from exc
            unknown = sorted(set(form.fields) - {"source", "target", "label", "keep", "drop", "validate", "budget", "model"})
            if unknown:
                raise HTTPException(400, f"Unknown field {unknown[0]!r}; use target, label, keep, drop, validate, budget, model or source.")
            model_run_id = form.first("model") or None
            if model_run_id:
                own_row(model_run_id, who)
            run_id = await run_in_threadpool(_accept_run, who, form, target=form.first("target") or None, labels=labels, options=options,
                                             model_run_id=model_run_id)
        finally:
            form.cleanup()
        return _accepted(run_id)

    @app.get("/runs", summary="The caller's runs, newest first (every user's for an admin token)", tags=["runs"])
    def list_runs(who: Caller = Depends(caller), status: str | None = Query(None, description="queued, running, success or failed"),
                  file: str | None = Query(None, description="Runs whose file name contains this text"),
                  target: str | None = Query(None, description="Runs with this target column"),
                  limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0)):
        if status is not None and status not in STATUSES:
            raise HTTPException(422, f"status must be one of {', '.join(STATUSES)}.")
        rows = state.store.list(10**9, user_id=None if who.admin else who.user_id)
        if file:
            rows = [r for r in rows if file.lower() in (r.get("file_name") or "").lower()]
        if target:
            rows = [r for r in rows if r.get("target") == target]
        instance = state.instance()
        if status is not None:
            newest = newest_runs(instance, [r["run_id"] for r in rows])
            rows = [r for r in rows if status_of(r, newest.get(r["run_id"])) == status]
            page_rows = rows[offset:offset + limit]
        else:
            page_rows = rows[offset:offset + limit]
            newest = newest_runs(instance, [r["run_id"] for r in page_rows])
        return {"runs": [summary(r, status_of(r, newest.get(r["run_id"]))) for r in page_rows], "total": len(rows), "limit": limit,
                "offset": offset}

    @app.get("/runs/{run_id}", summary="A run: status, current stage, metrics, verdict, enrichment, links (the `--json` fields)", tags=["runs"])
    def get_run(run_id: str, who: Caller = Depends(caller)):
        row = own_row(run_id, who)
        instance = state.instance()
        dagster_run = newest_runs(instance, [run_id]).get(run_id)
        if summary_status(row, dagster_run) in ("queued", "running") and dagster_run is not None:
            state.recover_now_and_then()  # a killed run is reported failed, not running for ever
            row = state.store.get(run_id) or row
            dagster_run = newest_runs(instance, [run_id]).get(run_id)
        names = launch.run_asset_names()
        run = run_state(instance, row, names, dagster_run)
        if state.submitter.is_waiting(run_id):
            run.status = "queued"
        out = launch.run_json(settings, run_id, run.error if run.status == "failed" else None)
        out.update({"status": run.status, "stage": run.stage, "stages": run.stages, "dagster_run_id": run.dagster_run_id,
                    "user": row["user_id"], "file": row.get("file_name"), "model_run_id": row.get("model_run_id"),
                    "created_at": _iso(row.get("created_at")), "updated_at": _iso(row.get("updated_at")), "links": links(run_id, row)})
        if run.status != "failed":
            out["error"] = None
        return JSONResponse(_jsonable(out))

    @app.post("/runs/{run_id}/rerun", status_code=202, summary="Run again, from an asset, or on a new file with the same options",
              tags=["runs"], openapi_extra=RERUN_FORM)
    async def rerun(run_id: str, request: Request, who: Caller = Depends(caller)):
        row = own_row(run_id, who)
        content_type = request.headers.get("content-type", "")
        form = None
        from_asset = None
        if content_type.lower().startswith(("multipart/", "application/x-www-form-urlencoded")):
            form = await _read_form(request)
            from_asset = form.first("from") or None
        else:
            body = await request.body()
            if body.strip():
                try:
                    parsed = json.loads(body)
                except ValueError:
                    raise HTTPException(400, "The request body is not valid JSON; send {\"from\": \"ASSET\"} or nothing.") from None
                if not isinstance(parsed, dict) or set(parsed) - {"from"} or not isinstance(parsed.get("from", ""), (str, type(None))):
                    raise HTTPException(400, "Send {\"from\": \"ASSET\"} (optional), or a multipart form with a new 'file'.")
                from_asset = parsed.get("from") or None
        try:
            if form is not None and (form.file_path is not None or form.first("source")):
                if from_asset:
                    raise HTTPException(400, "A rerun on a new file runs every stage; leave out 'from'.")
                manifest = state.store.manifest(run_id)
                new_id = await run_in_threadpool(_accept_run, who, form, target=row.get("target") if not row.get("model_run_id") else None,
                                                 labels=manifest.labels, options=manifest.options, model_run_id=row.get("model_run_id"))
                return _accepted(new_id)
        finally:
            if form is not None:
                form.cleanup()
        dagster_run = newest_runs(state.instance(), [run_id]).get(run_id)
        if status_of(row, dagster_run) in ("queued", "running"):
            raise HTTPException(409, f"Run {run_id} is still {status_of(row, dagster_run)}; rerun it once it has finished.")
        try:
            await run_in_threadpool(launch.asset_keys_from, from_asset)
        except AutomodelError as exc:
            raise user_error(exc) from exc
        state.store.update(run_id, status="created", error=None)
        state.submitter.submit(run_id, from_asset)
        return _accepted(run_id)

    def _finished_file(run_id: str, who: Caller, key: str, what: str) -> Path:
        row = own_row(run_id, who)
        path = row.get(key)
        if not path or not Path(path).exists():
            status = status_of(row, newest_runs(state.instance(), [run_id]).get(run_id))
            if status in ("queued", "running"):
                raise HTTPException(409, f"Run {run_id} is {status}; its {what} is ready once it has succeeded.")
            raise HTTPException(409, f"Run {run_id} has no {what} ({status}); see GET /runs/{run_id} for why, or rerun it.")
        return Path(path)

    @app.get("/runs/{run_id}/predictions", summary="The run's predictions, one row per input row (CSV or JSON, streamed)", tags=["runs"])
    def get_predictions(run_id: str, who: Caller = Depends(caller), format: str = Query("csv", pattern="^(csv|json)$")):
        path = _finished_file(run_id, who, "predictions_path", "predictions")
        if format == "csv":
            return FileResponse(path, media_type="text/csv; charset=utf-8", filename=f"{run_id}_predictions.csv")
        task = (state.store.get(run_id) or {}).get("task")
        return StreamingResponse(_predictions_as_json(run_id, path, task), media_type="application/json")

    @app.get("/runs/{run_id}/dashboard", summary="The run's dashboard (self-contained HTML)", tags=["runs"], response_class=HTMLResponse)
    def get_dashboard(run_id: str, who: Caller = Depends(caller)):
        path = _finished_file(run_id, who, "dashboard_path", "dashboard")
        return FileResponse(path, media_type="text/html; charset=utf-8")

    @app.get("/runs/{run_id}/charts/{name}", summary="A chart drawn by POST /runs/{id}/ask", tags=["runs"], response_class=HTMLResponse)
    def get_chart(run_id: str, name: str, who: Caller = Depends(caller)):
        own_row(run_id, who)
        path = settings.layout.dashboard_path(run_id).with_name(name)
        if not CHART_NAME.fullmatch(name) or not name.startswith(f"{run_id}_ask_") or not path.exists():
            raise HTTPException(404, f"Run {run_id} has no chart {name!r}; ask a question with POST /runs/{run_id}/ask.")
        return FileResponse(path, media_type="text/html; charset=utf-8")

    @app.post("/runs/{run_id}/ask", summary="Ask about the run's data: the answer and, when there is one, a chart", tags=["runs"])
    def ask(run_id: str, body: Question, who: Caller = Depends(caller)):
        own_row(run_id, who)
        try:
            out = launch.ask(settings, run_id, who.user_id, body.question, admin=who.admin)
        except AutomodelError as exc:
            raise user_error(exc) from exc
        if out.get("chart_path"):
            out["chart_url"] = f"/runs/{run_id}/charts/{Path(out['chart_path']).name}"
        return JSONResponse(_jsonable(out))

    # ---- predict ----------------------------------------------------------------------------------------------------------

    def _score_inline(run_id: str, row: dict, raw) -> dict:
        try:
            warm = state.models.get(run_id, Path(row["model_path"]))
            predictions, report = score(warm, raw, settings.lake_path, settings.layout.catalog_db)
        except AutomodelError as exc:
            raise user_error(exc) from exc
        return {"model": run_id, "rows": len(predictions), "predictions": predictions_json(predictions), "scoring": _jsonable(report)}

    def _batch_run(who: Caller, run_id: str, source: Path) -> str:
        try:
            new_id = launch.create_run(settings, state.instance(), str(source), user_id=who.user_id, model_run_id=run_id)
        except AutomodelError as exc:
            raise user_error(exc) from exc
        state.submitter.submit(new_id)
        return new_id

    @app.post("/models/{run_id}/predict", summary="Score rows with a run's model, in the training file's labels", tags=["models"],
              openapi_extra=PREDICT_BODY)
    async def predict(run_id: str, request: Request, who: Caller = Depends(caller)):
        row = own_row(run_id, who)
        if not row.get("model_path"):
            raise HTTPException(409, f"Run {run_id} has no saved predictive model; predict with a run that trained a regression or "
                                     "classification model.")
        limit = settings.api_predict_max_rows
        if request.headers.get("content-type", "").lower().startswith("multipart/"):
            form = await read_multipart(request, launch.upload_folder(settings), upload_limit)
            try:
                if form.file_path is None:
                    raise HTTPException(400, "Send the rows to score as a multipart part named 'file', or as JSON {\"rows\": [...]}.")
                raw = await run_in_threadpool(_load_table, settings, form.file_path)
                if len(raw) > limit:
                    new_id = await run_in_threadpool(_batch_run, who, run_id, form.file_path)
                    return _accepted(new_id)
                return JSONResponse(await run_in_threadpool(_score_inline, run_id, row, raw))
            finally:
                form.cleanup()
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise HTTPException(400, "The request body is not valid JSON; send {\"rows\": [{column: value, ...}]}.") from None
        if not isinstance(body, dict) or "rows" not in body:
            raise HTTPException(400, "Send {\"rows\": [{column: value, ...}]}, or a file as the multipart part 'file'.")
        try:
            raw = rows_frame(body["rows"])
        except PredictError as exc:
            raise user_error(exc) from exc
        if len(raw) > limit:  # a large batch runs as a scoring run (the queue, the dashboard, the drift report)
            new_id = await run_in_threadpool(_rows_to_run, who, run_id, raw)
            return _accepted(new_id)
        return JSONResponse(await run_in_threadpool(_score_inline, run_id, row, raw))

    def _rows_to_run(who: Caller, run_id: str, raw) -> str:
        import secrets

        folder = launch.upload_folder(settings) / secrets.token_hex(8)
        folder.mkdir(mode=0o700)
        try:
            path = folder / f"{run_id}-rows.csv"
            raw.to_csv(path, index=False)
            return _batch_run(who, run_id, path)
        finally:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)

    return app


def _load_table(settings: AutomodelSettings, path: Path):
    """A file to score, read as `automodel score` reads one (the same loader and input bounds)."""
    from automodel import stages
    from automodel.quotas import input_limits

    try:
        raw, _ = stages.load_raw(path.name, path.read_bytes(), path.name, limits=input_limits(settings))
    except AutomodelError as exc:
        raise user_error(exc) from exc
    return raw


def _predictions_as_json(run_id: str, path: Path, task: str | None, chunk_rows: int = 20_000):
    """``{"run_id": ..., "predictions": [...]}`` written as the CSV is read, a block of rows at a time."""
    import pandas as pd

    yield f'{{"run_id": {json.dumps(run_id)}, "predictions": ['
    first = True
    for block in pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=chunk_rows):
        for column in block.columns:
            numeric = column.startswith("proba_") or column in ("prediction_lower", "prediction_upper") or (column == "prediction" and task == "regression")
            if numeric:
                block[column] = pd.to_numeric(block[column], errors="coerce")
        records = predictions_json(block.replace({"": None}) if not block.empty else block)
        buffer = io.StringIO()
        for record in records:
            buffer.write(("" if first else ",") + json.dumps(record))
            first = False
        yield buffer.getvalue()
    yield "]}"

