"""The automodel command line (a contract: README.md, "Command line"). Errors are one sentence and a non-zero exit.

``run``, ``score`` and ``rerun`` start the real ``automodel_run`` job (automodel_assets.runs.execute_run_job), tagged
with the user, the file and the target, so each shows in the Dagster UI like a sensor's or the UI's own run and
can be re-executed there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1


class CliError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one sentence, exit 2, no usage wall
        raise CliError(f"{message[0].upper()}{message[1:]}; see `automodel {self.prog.split()[-1]} --help`." if " " in self.prog else f"{message}; see `automodel --help`.")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="automodel", description="Turn a tabular file into cleaned, profiled, enriched, modelled and summarised Dagster assets.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    run = sub.add_parser("run", help="run every stage on a file (local path or s3:// URI)")
    run.add_argument("source")
    run.add_argument("--target")
    run.add_argument("--user", help="the user namespace to act in (default: default; AUTOMODEL_USER fixes it)")
    run.add_argument("--label", action="append", default=[], metavar="COL=ROLE")
    run.add_argument("--keep", action="append", default=[], metavar="COL", help="keep COL in the model even if the leakage guard suspects it")
    run.add_argument("--drop", action="append", default=[], metavar="COL", help="leave COL out of the model")
    run.add_argument("--lake")
    run.add_argument("--json", action="store_true")

    score = sub.add_parser("score", help="score a file with another run's model, without retraining")
    score.add_argument("source")
    score.add_argument("--model", required=True, metavar="RUN_ID")
    score.add_argument("--user", help="the user namespace to act in (default: default; AUTOMODEL_USER fixes it)")
    score.add_argument("--json", action="store_true")

    rerun = sub.add_parser("rerun", help="rematerialize a run's partition")
    rerun.add_argument("run_id")
    rerun.add_argument("--from", dest="from_asset", metavar="ASSET")
    rerun.add_argument("--user", help="the user namespace to act in (default: default; AUTOMODEL_USER fixes it)")
    rerun.add_argument("--json", action="store_true")

    sessions = sub.add_parser("sessions", help="list runs, newest first")
    sessions.add_argument("--limit", type=int, default=20)
    sessions.add_argument("--user", help="whose runs to list (each user sees only their own)")
    sessions.add_argument("--all-users", action="store_true", help="operators (AUTOMODEL_ADMIN=1): list every user's runs")
    sessions.add_argument("--json", action="store_true")

    index = sub.add_parser("index", help="build the lake's semantic index")
    index.add_argument("--rebuild", action="store_true")
    index.add_argument("--lake")
    index.add_argument("--json", action="store_true")

    inspect = sub.add_parser("inspect", help="load and profile a file only")
    inspect.add_argument("source")
    inspect.add_argument("--json", action="store_true")
    inspect.add_argument("--export", metavar="OUT.csv")

    ask = sub.add_parser("ask", help="ask a question about a run's data: writes a chart and prints the answer")
    ask.add_argument("run_id")
    ask.add_argument("question")
    ask.add_argument("--user", help="the user namespace to act in (default: default; AUTOMODEL_USER fixes it)")
    ask.add_argument("--json", action="store_true")
    return parser


def _settings(args):
    from resources.settings import AutomodelSettings

    overrides = {}
    if getattr(args, "lake", None):
        if args.lake.startswith("s3://"):
            overrides["lake_dir"] = args.lake  # mirrored locally by settings.lake_path
        else:
            lake = Path(args.lake).expanduser()
            if not lake.is_dir():
                raise CliError(f"{args.lake} is not a folder; point --lake at a folder or an s3:// prefix of table files (csv, parquet, json, xlsx).")
            overrides["lake_dir"] = str(lake.resolve())
        os.environ["AUTOMODEL_LAKE"] = overrides["lake_dir"]  # step processes of out-of-process executors read it too
    return AutomodelSettings.from_env(**overrides)


def _result(store, run_id: str, error: str | None = None, layout=None) -> dict:
    from automodel.outputs.facts import read_facts

    row = store.get(run_id) or {}
    enrichment = row.get("enrichment") or {}
    facts = (read_facts(layout.facts_path(run_id)) if layout is not None and not error else None) or {}
    return {
        "run_id": run_id, "status": "failed" if error else row.get("status", "unknown"), "error": error,
        "analyzer": row.get("analyzer"), "task": row.get("task"), "target": row.get("target"), "metrics": row.get("metrics") or {},
        "model_path": row.get("model_path"), "predictions_path": row.get("predictions_path"), "summary": row.get("summary"),
        "dashboard_path": row.get("dashboard_path"),
        "enrichment": {**{k: enrichment.get(k) for k in ("table", "keys", "strategy", "coverage", "kept", "lift")},
                       "tables": [{k: t.get(k) for k in ("table", "keys", "strategy", "grain", "aggregation", "coverage", "kept", "lift")}
                                  for t in enrichment.get("tables") or []],
                       "candidates": [{k: c.get(k) for k in ("table", "score", "containment", "user_columns", "lake_columns", "strategy",
                                                             "coverage", "lift", "refused") if k in c}
                                      for c in enrichment.get("candidates") or []]},
        "actions": row.get("actions") or [],
        # From the run's facts, like the summary and the dashboard (automodel.outputs.facts).
        "holdout_basis": facts.get("holdout_basis"), "trusted": facts.get("trusted"), "trust_reason": facts.get("trust_reason"),
        "caveats": facts.get("caveats") or [], "baseline_reason": (facts.get("fallback") or {}).get("reason"),
        "baseline": facts.get("baseline"),
        "facts_path": str(layout.facts_path(run_id)) if facts else None,
        "scoring": row.get("scoring"),
        # Which path the table took and which rows trained what (automodel.large: search_rows, final_rows, the refit's gain).
        "training": row.get("training"),  # scoring runs: what replaying the training schema did (missing, unseen, extra columns)
        # How sure the predictions are: the regression interval's coverage and half-width, the classifier's calibration.
        "interval": facts.get("interval"), "calibration": facts.get("calibration"),
        # Scoring runs: the columns whose values moved away from the training rows (automodel.drift).
        # Scoring runs with the target present: labels the model never learned (counted as errors in the metrics).
        "unlearned_target_labels": facts.get("unlearned_target_labels"),
        "drift": {k: (facts.get("drift") or {}).get(k) for k in ("moved", "max_psi", "threshold", "columns")} if facts.get("drift") else None,
    }


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
    print(f"  model:       {result['model_path']}")
    print(f"  predictions: {result['predictions_path']}")
    print(f"  dashboard:   {result['dashboard_path']}")
    triggered = [a["recipe"] for a in result["actions"] if a.get("triggered")]
    held = [a["recipe"] for a in result["actions"] if a.get("held_back")]
    print(f"  actions:     {', '.join(triggered) if triggered else 'none triggered'}"
          + (f" ({', '.join(held)} held back: the model is not trusted)" if held else ""))
    print(f"  summary:     {result['summary']}")


def _materialize_new(settings, instance, store, created, as_json: bool) -> int:
    from automodel_assets.runs import clear_run_outputs, materialize_run

    outcome = materialize_run(settings, instance, created.run_id)
    if not outcome.success:
        clear_run_outputs(settings, created.run_id)
        store.update(created.run_id, status="failed", error=outcome.error)
    result = _result(store, created.run_id, outcome.error, settings.layout)
    _print_result(result, as_json)
    if outcome.error:
        raise CliError(outcome.error)
    return 0


def _load_definitions() -> None:
    """Load the definitions (extension modules included) before a run is recorded: a broken one is refused up front."""
    from automodel_assets.definitions import current_definitions

    current_definitions()


def cmd_run(args) -> int:
    from automodel.sessions import SessionStore
    from automodel_assets.runs import create_run, get_instance, parse_labels

    settings = _settings(args)
    _load_definitions()
    instance = get_instance(settings.layout)
    from automodel.drop_options import column_choices

    options = column_choices("--keep/--drop", args.keep, args.drop)
    created = create_run(settings, instance, args.source, user_id=args.user, target=args.target, labels=parse_labels(args.label),
                         options=options)
    return _materialize_new(settings, instance, SessionStore(settings.layout.sessions_db), created, args.json)


def cmd_score(args) -> int:
    from automodel.sessions import SessionStore
    from automodel_assets.runs import create_run, get_instance

    settings = _settings(args)
    _load_definitions()
    instance = get_instance(settings.layout)
    created = create_run(settings, instance, args.source, user_id=args.user, model_run_id=args.model)
    return _materialize_new(settings, instance, SessionStore(settings.layout.sessions_db), created, args.json)


def cmd_rerun(args) -> int:
    from automodel.safety import safe_user_id
    from automodel.sessions import SessionStore
    from automodel.trust import may_read
    from automodel_assets.runs import get_instance, materialize_run

    settings = _settings(args)
    store = SessionStore(settings.layout.sessions_db)
    row = store.get(args.run_id)
    if row is None or not may_read(row["user_id"], safe_user_id(args.user), settings.admin):  # another user's run: exactly like a missing one
        raise CliError(f"Run {args.run_id} is not known for user {args.user!r}; list runs with `automodel sessions --user {args.user}`.")
    instance = get_instance(settings.layout)
    if not instance.has_dynamic_partition("run_id", args.run_id):
        instance.add_dynamic_partitions("run_id", [args.run_id])
    outcome = materialize_run(settings, instance, args.run_id, args.from_asset)
    if not outcome.success:
        store.update(args.run_id, status="failed", error=outcome.error)
    _print_result(_result(store, args.run_id, outcome.error, settings.layout), args.json)
    if outcome.error:
        raise CliError(outcome.error)
    return 0


def cmd_sessions(args) -> int:
    from automodel.safety import safe_user_id
    from automodel.sessions import SessionStore

    settings = _settings(args)
    if args.limit < 1:
        raise CliError("--limit must be at least 1.")
    if args.all_users:
        from automodel.trust import require_admin

        require_admin(settings.admin, "--all-users")
    from automodel_assets.recovery import recover_before_listing

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
    from automodel.lake.catalog import build_index, catalog_summary
    from automodel_assets.runs import get_instance, record_index_build

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
    from automodel import stages
    from automodel.atomic import write_with_atomic
    from automodel_assets.runs import input_limits, validate_source
    from resources.storage import get_backend

    name, _ = validate_source(args.source, allow_empty=True)
    raw, info = stages.load_raw(name, get_backend(args.source).read_bytes(args.source), args.source, limits=input_limits(_settings(args)),
                                allow_empty=True)
    loading = {"dialect": info.dialect, "header_rows": info.header_rows if info.has_header else 0, "header_cells": info.header_cells,
               "preamble_lines_skipped": info.skipped_preamble_rows, "tables_found": info.tables_found, "other_tables": info.other_tables,
               "rows_repaired": info.repaired_rows, "literal_quote_lines": info.literal_quote_lines, "reader": info.reader}
    if args.export:
        if not args.source.startswith("s3://") and Path(args.export).resolve() == Path(args.source).resolve():
            raise CliError("--export must name a new file, not the file being inspected; the input is never overwritten.")
        from automodel.export import write_protected_csv

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
    import hashlib

    import dagster as dg
    import pandas as pd

    from automodel import stages
    from automodel.errors import AutomodelError
    from automodel.outputs.ask import answer, write_answer_chart
    from automodel.safety import safe_user_id
    from automodel.sessions import SessionStore
    from automodel.trust import may_read
    from automodel_assets.assets import ALL_ASSETS
    from automodel_assets.definitions import build_resources
    from automodel_assets.runs import get_instance

    settings = _settings(args)
    row = SessionStore(settings.layout.sessions_db).get(args.run_id)
    if row is None or not may_read(row["user_id"], safe_user_id(args.user), settings.admin):  # another user's run: exactly like a missing one
        raise CliError(f"Run {args.run_id} is not known for user {args.user!r}; list runs with `automodel sessions --user {args.user}`.")
    resources = build_resources(settings)
    instance = get_instance(settings.layout)
    try:
        frame = dg.Definitions(assets=ALL_ASSETS, resources=resources).load_asset_value("enriched_frame", partition_key=args.run_id, instance=instance)
    except Exception as exc:  # the partition or its stored output is gone
        raise CliError(f"Run {args.run_id} has no stored data to ask about ({type(exc).__name__}); rerun it with `automodel rerun {args.run_id}`.") from exc
    predictions = pd.read_csv(row["predictions_path"]) if row.get("predictions_path") and Path(row["predictions_path"]).exists() else None
    explanation_path = settings.layout.explanation_path(args.run_id)
    importance = pd.read_csv(explanation_path).to_dict(orient="records") if explanation_path.exists() else None
    fitted = stages.load_model_bundle(Path(row["model_path"]))["fitted"] if row.get("model_path") else None
    try:
        provider = resources["llm"].get_provider()
    except AutomodelError:  # heuristics answer most questions; a provider that cannot start only loses the fallback
        provider = None
    result = answer(args.question, frame, target=row.get("target"), task=row.get("task"), predictions=predictions, importance=importance,
                    fitted=fitted, provider=provider)
    digest = hashlib.sha256(args.question.strip().lower().encode()).hexdigest()[:10]
    write_answer_chart(result, settings.layout.dashboard_path(args.run_id).with_name(f"{args.run_id}_ask_{digest}.html"))
    out = {"run_id": args.run_id, **result.to_dict()}
    if result.chart_path:  # the chart is linked from the run's dashboard asset in the UI, like the dashboard itself
        from automodel.safety import redact_pii
        from automodel_assets.links import dashboard_link

        out["chart_url"] = dashboard_link(settings, Path(result.chart_path))
        question = redact_pii(args.question)
        instance.report_runless_asset_event(dg.AssetObservation(
            "dashboard", partition=args.run_id, description=f"automodel ask: {question}"[:500],
            metadata={"question": question, "chart": dg.MetadataValue.url(out["chart_url"]),
                      "chart_path": dg.MetadataValue.path(str(result.chart_path))}))
    if args.json:
        print(json.dumps(out, default=str))
    else:
        print(result.text)
        if result.chart_path:
            print(f"chart ({result.chart}): {result.chart_path}")
    return 0


COMMANDS = {"run": cmd_run, "score": cmd_score, "rerun": cmd_rerun, "sessions": cmd_sessions, "index": cmd_index, "inspect": cmd_inspect,
            "ask": cmd_ask}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("dagster").setLevel(logging.ERROR)
    from automodel.safety import install_log_redaction, redact_pii

    install_log_redaction("", "dagster")
    from automodel.errors import AutomodelError

    try:
        args = build_parser().parse_args(argv)
        if not args.command:
            raise CliError("Give a command: run, score, rerun, sessions, index, inspect or ask; see `automodel --help`.")
        if hasattr(args, "user"):  # --user is a namespace; a deployment may fix it (automodel.trust)
            from automodel.trust import acting_user

            args.user = acting_user(args.user, os.environ.get("AUTOMODEL_USER", ""))
        if args.command != "inspect":  # inspect writes nothing under the home
            from automodel.layout import Layout, private_home_wanted, secure_home

            secure_home(Layout.at(os.environ.get("AUTOMODEL_HOME", "./local_data")), private=private_home_wanted())
        return COMMANDS[args.command](args)
    except (CliError, AutomodelError) as exc:
        print(f"error: {redact_pii(str(exc))}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # the last guard: one sentence instead of a traceback wall
        if os.environ.get("AUTOMODEL_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: unexpected {type(exc).__name__}: {redact_pii(first)} (set AUTOMODEL_DEBUG=1 for the traceback).", file=sys.stderr)
        return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
