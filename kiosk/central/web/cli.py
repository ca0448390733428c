"""`kiosk-central serve`, `accounts` and `screenshots`: the dashboard's commands.

The web libraries are imported inside the commands, so the rest of `kiosk-central`
works on an install without the `dashboard` extra.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path

from kiosk import keys
from kiosk.central.reports import load_report_settings
from kiosk.central.store import open_store
from kiosk.errors import ConfigError

DASHBOARD_MISSING = "the dashboard needs the `dashboard` extra: pip install 'kiosk[central,dashboard]'"


def register(commands: argparse._SubParsersAction) -> None:
    """Add the dashboard's commands."""
    serve = commands.add_parser("serve", help="the authority's dashboard (HTTP; put a TLS proxy in front)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default: 8080)")
    serve.add_argument("--destinations", type=Path, help="destinations file: names, districts, wards (TOML)")
    serve.add_argument("--identity-key", type=Path, help="identity HMAC key: trace by card number")
    serve.add_argument(
        "--proxy", default="127.0.0.1", help="address(es) of the TLS proxy trusted for X-Forwarded-*"
    )
    serve.add_argument(
        "--insecure-cookie", action="store_true", help="send the session cookie over plain HTTP"
    )
    serve.add_argument("--session-minutes", type=int, default=30, help="idle time that ends a session")
    serve.add_argument("--refresh-seconds", type=int, default=60,
                       help="how often the venue lists' figures are read again (default: 60)")  # fmt: skip
    serve.set_defaults(func=serve_command)
    accounts = commands.add_parser("accounts", help="the dashboard's accounts")
    actions = accounts.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create an account or set its role and password")
    add.add_argument("username")
    add.add_argument("--role", choices=("authority", "inspector"), required=True)
    add.add_argument("--password-file", type=Path, help="file holding the password (else asked twice)")
    add.set_defaults(func=accounts_add)
    actions.add_parser("list", help="accounts and roles").set_defaults(func=accounts_list)
    disable = actions.add_parser("disable", help="disable an account and end its sessions")
    disable.add_argument("username")
    disable.set_defaults(func=accounts_disable)
    shots = commands.add_parser("screenshots", help="PNGs of the dashboard on a sample province (chromium)")
    shots.add_argument(
        "-o", "--output", type=Path, default=Path("docs/img"), help="folder (default: docs/img)"
    )
    shots.set_defaults(func=screenshots_command)


def _web() -> None:
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise ConfigError(DASHBOARD_MISSING) from e


def serve_command(args: argparse.Namespace) -> int:
    """Serve the dashboard until stopped."""
    _web()
    import uvicorn

    from kiosk.central.web.app import create_app
    from kiosk.central.web.context import WebSettings

    if args.session_minutes < 1:
        raise ConfigError("--session-minutes must be at least 1")
    if not 5 <= args.refresh_seconds <= 3600:
        raise ConfigError("--refresh-seconds must be between 5 and 3600")
    settings = WebSettings(
        db=args.db, report=load_report_settings(args.destinations),
        identity_key=keys.load_identity_key(args.identity_key) if args.identity_key else None,
        secure_cookie=not args.insecure_cookie, idle_minutes=args.session_minutes,
        refresh_seconds=args.refresh_seconds,
    )  # fmt: skip
    open_store(args.db).close()  # a wrong database is an error now, not at the first request
    uvicorn.run(create_app(settings), host=args.host, port=args.port, proxy_headers=True,
                forwarded_allow_ips=args.proxy, server_header=False, log_level="info")  # fmt: skip
    return 0


def _password(path: Path | None) -> str:
    if path is not None:
        try:
            return path.read_text().strip()
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to ask the password on: use --password-file")
    first, second = getpass.getpass("password: "), getpass.getpass("again: ")
    if first != second:
        raise ConfigError("the two passwords differ")
    return first


def accounts_add(args: argparse.Namespace) -> int:
    """Create or update an account."""
    _web()
    from kiosk.central.web.accounts import Accounts

    password = _password(args.password_file)
    with open_store(args.db) as store:
        Accounts(store).add(args.username, args.role, password, now_ms=int(time.time() * 1000))
    print(f"account {args.username}: {args.role}")
    return 0


def accounts_list(args: argparse.Namespace) -> int:
    """Print the accounts."""
    _web()
    from kiosk.central.web.accounts import Accounts

    with open_store(args.db) as store:
        for username, role, disabled in Accounts(store).accounts():
            print(f"{username:<24} {role:<10} {'disabled' if disabled else 'enabled'}")
    return 0


def accounts_disable(args: argparse.Namespace) -> int:
    """Disable an account."""
    _web()
    from kiosk.central.web.accounts import Accounts

    with open_store(args.db) as store:
        if not Accounts(store).disable(args.username):
            raise ConfigError(f"no account {args.username!r}")
    print(f"account {args.username} disabled; its sessions have ended")
    return 0


def screenshots_command(args: argparse.Namespace) -> int:
    """Build a sample province, serve it, and save the main views as PNGs."""
    _web()
    from kiosk.central.web import screenshots

    for path in screenshots.take(args.output):
        print(f"wrote {path}")
    return 0
