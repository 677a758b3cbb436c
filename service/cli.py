"""``automodel serve`` and ``automodel token``: the HTTP API's two commands (wired into automodel_assets.cli).

``serve`` runs the API and the web page with uvicorn, on loopback unless ``--host`` says otherwise. Runs it
accepts wait in the Dagster run queue for the daemon; when no daemon has a fresh heartbeat on the instance,
``serve`` starts one beside itself (``make dev`` runs its own and passes ``--no-daemon``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from automodel.errors import AutomodelError


def add_service_parsers(sub) -> None:
    serve = sub.add_parser("serve", help="the HTTP API and the web page (loopback by default)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--no-daemon", action="store_true", help="never start a Dagster daemon (one runs already, e.g. under `make dev`)")

    token = sub.add_parser("token", help="bearer tokens for the HTTP API: create, list, revoke")
    actions = token.add_subparsers(dest="token_command", parser_class=type(token))
    create = actions.add_parser("create", help="make a token for a user; it is printed as the last line")
    create.add_argument("--user", dest="token_user", required=True, metavar="NAME", help="the user namespace the token acts for")
    create.add_argument("--admin", action="store_true", help="the token sees every user's runs")
    revoke = actions.add_parser("revoke", help="revoke a token (the token itself or its id)")
    revoke.add_argument("token", metavar="TOKEN_OR_ID", help="the token, or its id as `automodel token list` shows it")
    listing = actions.add_parser("list", help="list tokens (ids, users, roles; never the tokens)")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")


def _settings():
    from resources.settings import AutomodelSettings

    return AutomodelSettings.from_env()


def cmd_token(args) -> int:
    from service.tokens import TokenStore

    store = TokenStore(_settings().layout.home)
    if args.token_command == "create":
        token_id, token = store.create(args.token_user, "admin" if args.admin else "user")
        print(f"token {token_id} for user {args.token_user} ({'admin: every user' if args.admin else 'user'}); "
              "it is shown only now, keep it secret. Send it as `Authorization: Bearer <token>`:")
        print(token)
        return 0
    if args.token_command == "revoke":
        print(f"token {store.revoke(args.token)} revoked")
        return 0
    if args.token_command == "list":
        rows = store.list()
        if args.json:
            print(json.dumps({"tokens": rows}))
        for row in rows if not args.json else []:
            state = "revoked" if row["revoked_at"] else "active"
            print(f"{row['id']}  {row['user_id']:<20} {row['role']:<6} {state}")
        return 0
    raise AutomodelError("Give a token command: create --user NAME, list or revoke TOKEN_OR_ID; see `automodel token --help`.")


def _daemon_is_alive(instance, stale_s: float = 120.0) -> bool:
    try:
        beats = instance.get_daemon_heartbeats()
    except Exception:
        return False
    stamps = [beat.timestamp for beat in beats.values() if beat is not None]
    return bool(stamps) and time.time() - max(stamps) < stale_s


def _die_with_parent():
    """A function for the daemon's process to run before it starts (Linux): the kernel then sends it SIGTERM when
    `serve` dies, even by SIGKILL, so a killed service never leaves a daemon working an instance nobody serves.
    prctl is looked up here, in the parent: the child, forked from a threaded process, only calls it."""
    try:
        import ctypes

        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: serve's own shutdown still stops it
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _start_daemon() -> subprocess.Popen:
    from resources.settings import PROJECT_ROOT

    executable = Path(sys.executable).parent / "dagster-daemon"
    return subprocess.Popen([str(executable), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")], cwd=PROJECT_ROOT, env={**os.environ},
                            start_new_session=True, preexec_fn=_die_with_parent())  # noqa: PLW1509 (the child only calls prctl)


def cmd_serve(args) -> int:
    import uvicorn

    from automodel_assets.home import ensure_dagster_home, get_instance
    from service.app import create_app

    if not 0 < args.port < 65536:
        raise AutomodelError(f"--port {args.port} is not a port; give one between 1 and 65535.")
    settings = _settings()
    os.environ["AUTOMODEL_HOME"] = str(settings.layout.home)  # the daemon and its run workers see the same absolute home
    os.environ["DAGSTER_HOME"] = str(ensure_dagster_home(settings.layout))
    app = create_app(settings)
    daemon = None
    if not args.no_daemon and not _daemon_is_alive(get_instance(settings.layout)):
        daemon = _start_daemon()
        print(f"started a Dagster daemon for the run queue (none was running on this instance; daemon pid {daemon.pid})", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: tokens travel in clear text unless a TLS proxy is in front", flush=True)
    print(f"automodel API and page: http://{args.host}:{args.port}/  (API docs: http://{args.host}:{args.port}/docs)", flush=True)
    try:
        # Open keep-alive connections get 10 s to finish on SIGTERM, so a stop never waits on an idle client.
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, timeout_graceful_shutdown=10)
    finally:
        if daemon is not None and daemon.poll() is None:
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
    return 0
