"""What every page shares: the settings, the request's context, rendering, the session cookie."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from kiosk.central.reports import ReportSettings
from kiosk.central.store import Store
from kiosk.central.web import i18n
from kiosk.central.web.accounts import Accounts, LogEntry, Session
from kiosk.central.web.queries import Dashboard
from kiosk.central.web.snapshot import Snapshot, Snapshots

COOKIE = "kiosk_session"
LANG_COOKIE = "kiosk_lang"


@dataclass(frozen=True)
class WebSettings:
    """How the dashboard runs: its database, the report settings (places, hours), cookies, sessions."""

    db: str
    report: ReportSettings = field(default_factory=ReportSettings)
    identity_key: bytes | None = None  # lets a trace find hashed identities from a card number
    secure_cookie: bool = True  # False only for plain-HTTP tests on loopback
    idle_minutes: int = 30
    lifetime_hours: int = 12
    page_size: int = 25
    refresh_seconds: float = 60.0  # how often the venue lists' snapshot is rebuilt (web/snapshot.py)
    clock: Callable[[], float] = time.time


@dataclass
class Context:
    """What a page handler gets: the request, the database, the signed-in user, the words."""

    request: Request
    store: Store
    accounts: Accounts
    session: Session | None
    language: str
    settings: WebSettings
    now_ms: int
    snapshots: Snapshots

    @property
    def snapshot(self) -> Snapshot:
        """The province's venue lines as the last refresh left them (built now if none yet)."""
        return self.snapshots.current()

    @property
    def dashboard(self) -> Dashboard:
        """The read side, as of this request."""
        return Dashboard(self.store, self.settings.report, now_ms=self.now_ms)

    @property
    def address(self) -> str:
        """The client's address (the proxy's X-Forwarded-For when uvicorn trusts the proxy)."""
        return self.request.client.host if self.request.client else ""

    def log(self, action: str, detail: str = "", username: str | None = None) -> None:
        """Write one audit-log line for this request."""
        who = username if username is not None else (self.session.account.username if self.session else "")
        self.accounts.log(LogEntry(self.now_ms, who, action, detail, self.address))


def local_time(report: ReportSettings, ms: int | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A UTC ms time as local text."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, report.zone).strftime(fmt)


def render(ctx: Context, template: str, status: int = 200, **values: Any) -> Response:
    """A page from its template, with the words, the user and the navigation."""
    templates: Jinja2Templates = ctx.request.state.templates
    words = i18n.words(ctx.language)
    context = {"t": words, "session": ctx.session, "lang": ctx.language, "now_ms": ctx.now_ms,
               "province": ctx.settings.report.province, "path": _here(ctx.request), **values}  # fmt: skip
    return templates.TemplateResponse(ctx.request, template, context, status_code=status)


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def set_session_cookie(response: Response, token: str, settings: WebSettings) -> None:
    """The session cookie: unreadable by scripts, never sent cross-site, HTTPS-only in production."""
    response.set_cookie(COOKIE, token, max_age=settings.lifetime_hours * 3600, httponly=True,
                        secure=settings.secure_cookie, samesite="strict", path="/")  # fmt: skip
