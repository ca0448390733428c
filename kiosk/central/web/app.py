"""The dashboard as a Starlette application: sign-in, roles, the pages, and the headers they share.

Each request gets a database connection (kiosk.central.web.connections: on PostgreSQL
one kept from an earlier request while the application runs), checks the session
cookie, runs one page and gives the connection back (handlers are plain functions:
Starlette runs them in its thread pool). Pages
are read-only; the only writes are accounts' sessions and the audit log. The venue
lists and /visit read the province's snapshot (kiosk.central.web.snapshot), which a
thread started with the application rebuilds every `refresh_seconds`. A database
that cannot be reached gives a page that says so (503), not a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kiosk.central.store import open_store
from kiosk.central.web import i18n, views
from kiosk.central.web.accounts import Accounts
from kiosk.central.web.connections import Connections
from kiosk.central.web.context import COOKIE, LANG_COOKIE, Context, WebSettings, local_time
from kiosk.central.web.snapshot import Snapshots
from kiosk.errors import StoreError

HERE = Path(__file__).parent
HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


Handler = Callable[[Context], Response]


class SecurityHeaders:
    """Adds the same protective headers to every response (no caching of pages with personal data)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if not scope["path"].startswith("/static/"):
                    headers["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: WebSettings) -> Starlette:
    """The dashboard application."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["local"] = functools.partial(local_time, settings.report)
    templates.env.globals["FLAGS"] = views.FLAG_CODES
    snapshots = Snapshots(settings.db, settings.report, clock=settings.clock,
                          every_s=settings.refresh_seconds)  # fmt: skip
    state = _AppState(settings, templates, snapshots, Connections(settings.db))
    with open_store(settings.db) as store:  # central's tables and the dashboard's, once
        Accounts(store)
    routes: list[BaseRoute] = [Route(path, _endpoint(state, handler, role), methods=methods)
              for path, handler, role, methods in views.ROUTES]  # fmt: skip
    routes.append(Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"))
    app = Starlette(routes=routes, lifespan=_lifespan(state),
                    exception_handlers={StoreError: functools.partial(_unavailable, state)})  # fmt: skip
    app.add_middleware(SecurityHeaders)
    app.state.web = state
    return app


@dataclass
class _AppState:
    settings: WebSettings
    templates: Jinja2Templates
    snapshots: Snapshots
    connections: Connections


def _lifespan(state: _AppState) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """While the application runs: the snapshot's thread (its first build starts at once), and
    the requests' PostgreSQL connections kept between them."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.snapshots.start()
        state.connections.start()
        try:
            yield
        finally:
            state.snapshots.close()
            state.connections.close()

    return lifespan


def _unavailable(state: _AppState, request: Request, exc: Exception) -> Response:
    """The database cannot be reached or read: a page in the user's language that says so."""
    language = request.cookies.get(LANG_COOKIE, i18n.DEFAULT)
    words = i18n.words(language if language in i18n.LANGUAGES else i18n.DEFAULT)
    context = {"t": words, "session": None, "lang": language, "now_ms": int(state.settings.clock() * 1000),
               "province": state.settings.report.province, "path": request.url.path,
               "message": words["unavailable"]}  # fmt: skip
    return state.templates.TemplateResponse(request, "error.html", context, status_code=503)


def _endpoint(state: _AppState, handler: Handler, role: str | None) -> Callable[[Request], Response]:
    """A Starlette endpoint around a page: database, session, the role rule, then the page."""

    def endpoint(request: Request) -> Response:
        with _context(request, state) as ctx:
            ctx.request.state.templates = state.templates
            if role == "public":
                return handler(ctx)
            if ctx.session is None:
                return _to_login(request)
            if role is not None and ctx.session.account.role != role:
                return views.error(ctx, 403, "forbidden")
            return handler(ctx)

    return endpoint


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


@contextmanager
def _context(request: Request, state: _AppState) -> Iterator[Context]:
    settings, snapshots = state.settings, state.snapshots
    now_ms = int(settings.clock() * 1000)
    with state.connections.store() as store:
        accounts = Accounts(store, idle_ms=settings.idle_minutes * 60_000,
                            lifetime_ms=settings.lifetime_hours * 3_600_000, schema=False)  # fmt: skip
        token = request.cookies.get(COOKIE)
        session = accounts.session(token, now_ms=now_ms) if token else None
        language = request.cookies.get(LANG_COOKIE, i18n.DEFAULT)
        language = language if language in i18n.LANGUAGES else i18n.DEFAULT
        yield Context(request, store, accounts, session, language, settings, now_ms, snapshots)
