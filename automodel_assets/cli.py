"""The automodel command line (a contract: README.md, "Command line"). Errors are one sentence and a non-zero exit.

``run``, ``score`` and ``rerun`` start the real ``automodel_run`` job through the launcher (automodel_assets.runs:
``submit_run``, ``launch_run``), tagged with the user, the file and the target, so each shows in the Dagster UI like a
sensor's or the UI's own run and can be re-executed there.

Start-up time: ``automodel --help`` and a mistyped command answer at once because the modules that load Dagster or
the model stack (the wiring, ``automodel.stages``, the lake catalog, pandas) are imported by the commands that use
them, each import marked "deferred".
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from analyzers.validation import parse_validate
from automodel.atomic import write_with_atomic
from automodel.drift import drift_line
from automodel.drop_options import column_choices
from automodel.errors import AutomodelError
from automodel.export import write_protected_csv
from automodel.lake.remembered import rerun_lake
from automodel.layout import Layout, secure_home
from automodel.quotas import input_limits
from automodel.safety import install_log_redaction, redact_pii, safe_user_id
from automodel.sessions import SessionStore
from automodel.trust import acting_user, may_read, require_admin
from automodel_assets.run_views import ask_run, run_result
from resources.settings import current
from service.cli import add_service_parsers, cmd_serve, cmd_token

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1


class CliError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one sentence, exit 2, no usage wall
        raise CliError(f"{message[0].upper()}{message[1:]}; see `automodel {self.prog.split()[-1]} --help`." if " " in self.prog else f"{message}; see `automodel --help`.")


_USER_HELP = "the user namespace to act in (default: default; AUTOMODEL_USER fixes it)"
_JSON_HELP = "print one JSON object on stdout instead of text"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="automodel", description="Turn a tabular file into cleaned, profiled, enriched, modelled and summarised Dagster assets.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    run = sub.add_parser("run", help="run every stage on a file (local path or s3:// URI)",
                         description="Run every stage (load, clean, profile, enrich, model, predict, explain, summarise, act, dashboard) on a file.")
    run.add_argument("source", metavar="PATH_OR_S3_URI", help="the table: CSV/TSV, Parquet, Excel or JSON (optionally .gz or .zip), local or s3://")
    run.add_argument("--target", metavar="COL", help="the column to predict (default: guessed from the columns, with the reason)")
    run.add_argument("--user", help=_USER_HELP)
    run.add_argument("--label", action="append", default=[], metavar="COL=ROLE",
                     help="say a column's role instead of letting it be guessed (repeatable), e.g. --label zip=zip_code")
    run.add_argument("--keep", action="append", default=[], metavar="COL", help="keep COL in the model even if the leakage guard suspects it")
    run.add_argument("--drop", action="append", default=[], metavar="COL", help="leave COL out of the model")
    run.add_argument("--lake", metavar="DIR", help="enrich from this lake (a folder or s3:// prefix of tables) instead of AUTOMODEL_LAKE")
    run.add_argument("--validate", metavar="random|time:COL|group:COL",
                     help="how the run measures itself: random folds, forward in time on COL, or grouped by the entity COL (default: chosen from the data)")
    run.add_argument("--lags", action="store_true", help="the target's past is known when scoring: add its lag features (score replays them from the file's history)")
    run.add_argument("--json", action="store_true", help=_JSON_HELP)

    score = sub.add_parser("score", help="score a file with another run's model, without retraining",
                           description="Score a file with the model of an earlier run: its cleaning replayed, no retraining.")
    score.add_argument("source", metavar="PATH", help="the rows to score (the same columns as the training file; the target may be absent)")
    score.add_argument("--model", required=True, metavar="RUN_ID", help="the run whose model scores the file (see `automodel sessions`)")
    score.add_argument("--user", help=_USER_HELP)
    score.add_argument("--lake", help="join the model's lake tables from this folder or s3:// prefix (default: the lake it was trained with)")
    score.add_argument("--allow-missing-lake", action="store_true",
                       help="score even if a lake table the model joined is gone (its columns left empty; the loss is stated)")
    score.add_argument("--json", action="store_true", help=_JSON_HELP)

    rerun = sub.add_parser("rerun", help="rematerialize a run's partition",
                           description="Rematerialize a run's partition: every asset, or one asset and everything downstream of it.")
    rerun.add_argument("run_id", metavar="RUN_ID", help="the run to rematerialize (see `automodel sessions`)")
    rerun.add_argument("--from", dest="from_asset", metavar="ASSET",
                       help="rebuild only ASSET and the run's assets downstream of it; the others are read from storage")
    rerun.add_argument("--user", help=_USER_HELP)
    rerun.add_argument("--lake", help="read this lake instead of the one the run read before")
    rerun.add_argument("--allow-missing-lake", action="store_true", help="a scoring run: go on without a joined lake table that is gone")
    rerun.add_argument("--json", action="store_true", help=_JSON_HELP)

    sessions = sub.add_parser("sessions", help="list runs, newest first", description="List runs, newest first.")
    sessions.add_argument("--limit", type=int, default=20, metavar="N", help="how many runs to list (default 20)")
    sessions.add_argument("--user", help="whose runs to list (each user sees only their own)")
    sessions.add_argument("--all-users", action="store_true", help="operators (AUTOMODEL_ADMIN=1): list every user's runs")
    sessions.add_argument("--json", action="store_true", help=_JSON_HELP)

    index = sub.add_parser("index", help="build the lake's semantic index",
                           description="Profile, embed and sketch every lake table into the catalog; unchanged tables are skipped.")
    index.add_argument("--rebuild", action="store_true", help="profile every table again, changed or not")
    index.add_argument("--lake", metavar="DIR", help="index this lake (a folder or s3:// prefix of tables) instead of AUTOMODEL_LAKE")
    index.add_argument("--json", action="store_true", help=_JSON_HELP)

    inspect = sub.add_parser("inspect", help="load and profile a file only",
                             description="Load and profile a file only: how it was read, its columns' roles, the target guess and problems.")
    inspect.add_argument("source", metavar="PATH_OR_S3_URI", help="the table to inspect, local or s3://")
    inspect.add_argument("--json", action="store_true", help=_JSON_HELP)
    inspect.add_argument("--export", metavar="OUT.csv", help="also write the table exactly as parsed to this new CSV file")

    ask = sub.add_parser("ask", help="ask a question about a run's data: writes a chart and prints the answer",
                         description="Ask a question about a run's data; prints the answer and writes a chart beside the dashboard.")
    ask.add_argument("run_id", metavar="RUN_ID", help="the run whose data to ask about")
    ask.add_argument("question", metavar="QUESTION", help='e.g. "average body mass by species" or "what drives species"')
    ask.add_argument("--user", help=_USER_HELP)
    ask.add_argument("--json", action="store_true", help=_JSON_HELP)

    add_service_parsers(sub)  # `serve` and `token` (the HTTP API, service/)
    return parser


def _lake_location(value: str) -> str:
    if value.startswith("s3://"):
        return value  # mirrored locally by settings.lake_path
    lake = Path(value).expanduser()
    if not lake.is_dir():
        raise CliError(f"{value} is not a folder; point --lake at a folder or an s3:// prefix of table files (csv, parquet, json, xlsx).")
    return str(lake.resolve())


def _settings(args):
    from resources.settings import AutomodelSettings  # deferred: the resource class is built with Dagster

    overrides = {}
    if getattr(args, "lake", None):
        overrides["lake_dir"] = _lake_location(args.lake)
        os.environ["AUTOMODEL_LAKE"] = overrides["lake_dir"]  # step processes of out-of-process executors read it too
    return AutomodelSettings.from_env(**overrides)


def _lake_options(args) -> dict:
    """``score``: the lake to join instead of the one the model was trained with, and leave to score without a gone table."""
    return {**({"lake": _lake_location(args.lake)} if args.lake else {}), **({"allow_missing_lake": True} if args.allow_missing_lake else {})}


def _print_result(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, default=str))
        return
    if result["error"]:
        return
    print(f"run {result['run_id']}: {result['status']}")
    print(f"  analyzer:    {result['analyzer']} ({result['task']}), target {result['target']!r}")
    metrics = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in result["metrics"].items())
    print(f"  metrics:     {metrics or 'none'}")
    if result.get("holdout_basis"):
        print(f"  measured on: {result['holdout_basis']}")
    if (result.get("metric_interval") or {}).get("text"):
        print(f"  interval:    {result['metric_interval']['text']}")
    if (result.get("validation") or {}).get("scheme"):
        plan = result["validation"]
        print(f"  validation:  {plan['scheme']}{' on ' + repr(plan['column']) if plan.get('column') else ''}: {plan['reason']}")
    if result.get("baseline"):
        print(f"  baseline:    {result['baseline']['text']}")
    if result.get("trust_reason"):
        print(f"  verdict:     {result['trust_reason']}")
    enrichment = result["enrichment"]
    if enrichment.get("kept"):
        lift = f", lift {enrichment['lift']:+.3f}" if isinstance(enrichment.get("lift"), (int, float)) else ""
        print(f"  enrichment:  {enrichment['table']} on {' = '.join(enrichment['keys'] or [])} (coverage {enrichment['coverage']:.0%}{lift})")
    else:
        print("  enrichment:  none")
    for note in (result.get("lake") or {}).get("notes") or []:
        print(f"  lake:        {note}")
    if drift_line(result.get("drift")):
        print(f"  drift:       {drift_line(result['drift'])}")
    print(f"  model:       {result['model_path']}")
    print(f"  predictions: {result['predictions_path']}")
    print(f"  dashboard:   {result['dashboard_path']}")
    triggered = [a["recipe"] for a in result["actions"] if a.get("triggered")]
    held = [a["recipe"] for a in result["actions"] if a.get("held_back")]
    print(f"  actions:     {', '.join(triggered) if triggered else 'none triggered'}"
          + (f" ({', '.join(held)} held back: the model is not trusted)" if held else ""))
    print(f"  summary:     {result['summary']}")


def _report(settings, run_id: str, error: str | None, as_json: bool) -> int:
    """Print the run as the session store holds it; a failed run's sentence becomes the command's error."""
    _print_result(run_result(SessionStore(settings.layout.sessions_db), run_id, error, settings.layout), as_json)
    if error:
        raise CliError(error)
    return 0


def cmd_run(args) -> int:
    # deferred: the wiring loads Dagster and the definitions (seconds)
    from automodel_assets.definitions import current_definitions
    from automodel_assets.intake import parse_labels
    from automodel_assets.runs import get_instance, submit_run

    settings = _settings(args)
    current_definitions()  # extension modules included: a broken one is refused before a run is recorded
    options = column_choices("--keep/--drop", args.keep, args.drop)
    if args.validate is not None:
        try:
            parse_validate(args.validate)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        options["validate"] = args.validate.strip()
    if args.lags:
        options["lags"] = True
    submitted = submit_run(settings, get_instance(settings.layout), args.source, user_id=args.user, target=args.target,
                           labels=parse_labels(args.label), options=options)
    return _report(settings, submitted.run_id, submitted.outcome.error, args.json)


def cmd_score(args) -> int:
    # deferred: the wiring loads Dagster and the definitions (seconds)
    from automodel_assets.definitions import current_definitions
    from automodel_assets.runs import get_instance, submit_run

    options = _lake_options(args)
    settings = _settings(argparse.Namespace())  # the configured lake stays the indexed one; --lake is this run's option
    current_definitions()  # extension modules included: a broken one is refused before a run is recorded
    submitted = submit_run(settings, get_instance(settings.layout), args.source, user_id=args.user, model_run_id=args.model, options=options)
    return _report(settings, submitted.run_id, submitted.outcome.error, args.json)


def cmd_rerun(args) -> int:
    from automodel_assets.runs import get_instance, launch_run  # deferred: the wiring loads Dagster and the definitions (seconds)

    settings = _settings(argparse.Namespace())
    store = SessionStore(settings.layout.sessions_db)
    row = store.get(args.run_id)
    if row is None or not may_read(row["user_id"], safe_user_id(args.user), settings.admin):  # another user's run: exactly like a missing one
        raise CliError(f"Run {args.run_id} is not known for user {args.user!r}; list runs with `automodel sessions --user {args.user}`.")
    location = rerun_lake(store, row, _lake_options(args))  # a training run reads the lake it read before, unless told
    settings = _settings(argparse.Namespace(lake=location)) if location else settings
    outcome = launch_run(settings, get_instance(settings.layout), args.run_id, args.from_asset)
    if not outcome.success:
        store.update(args.run_id, status="failed", error=outcome.error)
    return _report(settings, args.run_id, outcome.error, args.json)


def cmd_sessions(args) -> int:
    from automodel_assets.recovery import recover_before_listing  # deferred: recovery loads Dagster, needed only when a run is unfinished

    settings = _settings(args)
    if args.limit < 1:
        raise CliError("--limit must be at least 1.")
    if args.all_users:
        require_admin(settings.admin, "--all-users")
    recover_before_listing(settings)  # a run whose process died is listed as failed, not running for ever
    rows = SessionStore(settings.layout.sessions_db).list(args.limit, user_id=None if args.all_users else safe_user_id(args.user))
    if args.json:
        print(json.dumps({"sessions": rows}, default=str))
        return 0
    for row in rows:
        metrics = row.get("metrics") or {}
        key = next((k for k in ("r2", "f1", "silhouette") if k in metrics), None)
        shown = f"{key}={metrics[key]:.3f}" if key else ""
        print(f"{row['run_id']}  {row['status']:<8} {row['user_id']:<12} {row.get('file_name') or '':<28} {row.get('analyzer') or '':<24} {shown}")
    return 0


def cmd_index(args) -> int:
    # deferred: the catalog loads DuckDB and the embedder; the wiring loads Dagster
    from automodel.lake.catalog import build_index, catalog_summary
    from automodel_assets.home import get_instance
    from automodel_assets.lake_state import record_index_build

    settings = _settings(args)
    report = build_index(settings.lake_path, settings.layout.catalog_db, rebuild=args.rebuild)
    catalog = catalog_summary(settings.layout.catalog_db)
    record_index_build(settings, get_instance(settings.layout), report)
    out = {"tables": report.tables, "profiled": report.profiled, "unchanged": report.unchanged, "removed": report.removed,
           "seconds": round(report.seconds, 3), "catalog": str(settings.layout.catalog_db), "columns": catalog["columns"],
           "keys_by_kind": catalog["keys_by_kind"], "key_values": catalog["key_values"], "skipped": report.skipped}
    keys = ", ".join(f"{count} {kind}" for kind, count in catalog["keys_by_kind"].items()) or "no"
    print(json.dumps(out) if args.json else f"indexed {report.tables} lake tables ({len(report.profiled)} profiled, {len(report.unchanged)} unchanged) "
                                             f"in {report.seconds:.2f}s: {catalog['columns']} columns embedded, join keys {keys}"
                                             + "".join(f"\n  skipped {name}: {why}" for name, why in report.skipped.items()))
    return 0


def cmd_inspect(args) -> int:
    # deferred: the stages load the model stack (scikit-learn, LightGBM); intake and storage load Dagster
    from automodel import stages
    from automodel_assets.intake import validate_source
    from resources.storage import get_backend

    name, _ = validate_source(args.source, allow_empty=True)
    raw, info = stages.load_raw(name, get_backend(args.source).read_bytes(args.source), args.source, limits=input_limits(current()),
                                allow_empty=True)
    loading = {"dialect": info.dialect, "header_rows": info.header_rows if info.has_header else 0, "header_cells": info.header_cells,
               "preamble_lines_skipped": info.skipped_preamble_rows, "tables_found": info.tables_found, "other_tables": info.other_tables,
               "rows_repaired": info.repaired_rows, "literal_quote_lines": info.literal_quote_lines, "reader": info.reader}
    if args.export:
        if not args.source.startswith("s3://") and Path(args.export).resolve() == Path(args.source).resolve():
            raise CliError("--export must name a new file, not the file being inspected; the input is never overwritten.")
        write_with_atomic(Path(args.export), lambda tmp: write_protected_csv(raw, tmp))  # formula cells protected, as in every export
    if len(raw) == 0:  # an empty or header-only file: described, not profiled
        out = {"source": args.source, "format": info.format, "encoding": info.encoding, "delimiter": info.delimiter,
               "quotechar": info.quotechar, "escapechar": info.escapechar, "has_header": info.has_header, "size_bytes": info.size_bytes,
               "sha256": info.sha256, "compression": info.compression, "skipped_preamble_rows": info.skipped_preamble_rows, "rows": 0,
               "columns": info.columns, "column_names": [str(c) for c in raw.columns], "loading": loading, "cleaning": None,
               "column_roles": [], "target_guess": None, "target_reason": "no data rows", "tags": [], "problems": list(info.problems)}
        if args.json:
            print(json.dumps(out, default=str))
        else:
            columns = ", ".join(out["column_names"]) or "none"
            print(f"{name}: 0 rows x {info.columns} columns ({columns}); nothing to train on until it has data rows")
            for problem in info.problems:
                print(f"  problem: {problem}")
        return 0
    frame, report = stages.clean_frame(raw, None)
    profile = stages.profile_frame(frame, raw, None, None)
    problems = list(info.problems) + [f"column {c!r} dropped: {why}" for c, why in report.dropped_columns.items()]
    if report.duplicate_rows:
        problems.append(f"{report.duplicate_rows} duplicate rows")
    problems += [f"column {c!r} mixes types: {n} values that are not like the rest became missing"
                 for c, n in report.steps.get("mixed_type_to_missing", {}).items()]
    out = {
        "source": args.source, "format": info.format, "encoding": info.encoding, "encoding_confidence": info.encoding_confidence, "delimiter": info.delimiter, "quotechar": info.quotechar,
        "escapechar": info.escapechar, "has_header": info.has_header, "size_bytes": info.size_bytes, "sha256": info.sha256,
        "compression": info.compression, "skipped_preamble_rows": info.skipped_preamble_rows, "rows": info.rows, "columns": info.columns,
        "loading": loading, "cleaning": report.to_dict(),
        "column_roles": [{"name": m.name, "role": m.role, "confidence": m.confidence, "dtype": m.dtype, "missing": m.missing_count, "unique": m.unique_count} for m in profile.metas],
        "target_guess": profile.target, "target_reason": profile.target_reason, "tags": profile.tags, "problems": problems,
    }
    if args.json:
        print(json.dumps(out, default=str))
    else:
        print(f"{name}: {info.rows} rows x {info.columns} columns, {info.format}, encoding {info.encoding}"
              + (f", {info.dialect}" if info.dialect else ""))
        if info.format == "delimited":
            header = (f"{info.header_rows} header rows merged" if info.header_rows > 1 else "1 header row") if info.has_header else "no header row"
            print(f"  read: {header}, {info.skipped_preamble_rows} lines before the table skipped, {info.tables_found} table(s) found, "
                  f"{len(info.repaired_rows)} row(s) repaired")
        for col in out["column_roles"]:
            print(f"  {col['name']:<30} {col['role']:<12} {col['confidence']:.2f}  missing {col['missing']}")
        print(f"  target guess: {profile.target} ({profile.target_reason})")
        for problem in problems:
            print(f"  problem: {problem}")
    return 0


def cmd_ask(args) -> int:
    out = ask_run(_settings(args), args.run_id, args.question, user_id=safe_user_id(args.user))
    if args.json:
        print(json.dumps(out, default=str))
    else:
        print(out["answer"])
        if out.get("chart_path"):
            print(f"chart ({out['chart']}): {out['chart_path']}")
    return 0


COMMANDS = {"run": cmd_run, "score": cmd_score, "rerun": cmd_rerun, "sessions": cmd_sessions, "index": cmd_index, "inspect": cmd_inspect,
            "ask": cmd_ask, "serve": cmd_serve, "token": cmd_token}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    warnings.filterwarnings("ignore")
    logging.getLogger("dagster").setLevel(logging.ERROR)
    install_log_redaction("", "dagster")
    settings = current()
    try:
        args = build_parser().parse_args(argv)
        if not args.command:
            raise CliError("Give a command: run, score, rerun, sessions, index, inspect, ask, serve or token; see `automodel --help`.")
        if hasattr(args, "user"):  # --user is a namespace; a deployment may fix it (automodel.trust)
            args.user = acting_user(args.user, settings.user)
        if args.command != "inspect":  # inspect writes nothing under the home
            secure_home(Layout.at(settings.home), private=settings.private_home)
        return COMMANDS[args.command](args)
    except (CliError, AutomodelError) as exc:
        print(f"error: {redact_pii(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # the last guard: one sentence instead of a traceback wall
        if settings.debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: unexpected {type(exc).__name__}: {redact_pii(first)} (set AUTOMODEL_DEBUG=1 for the traceback).", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
