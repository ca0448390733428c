"""The dashboard's pages: each reads through `queries.Dashboard` and renders one template."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from starlette.responses import RedirectResponse, Response

from kiosk.central import trace as tracing
from kiosk.central.web import i18n
from kiosk.central.web.accounts import AUTHORITY
from kiosk.central.web.charts import bar_chart
from kiosk.central.web.context import COOKIE, LANG_COOKIE, Context, local_time, render, set_session_cookie
from kiosk.central.web.queries import FLAGS, VenueFilter, page
from kiosk.central.web.snapshot import Snapshot

FLAG_CODES = FLAGS
IDENTITY_MAX = 128
TRACE_MAX_DAYS = 31


def error(ctx: Context, status: int, key: str, detail: str = "") -> Response:
    """An error page in the user's language."""
    message = i18n.words(ctx.language)[key].format(detail=detail)
    return render(ctx, "error.html", status=status, message=message)


def _number(ctx: Context, name: str) -> int:
    text = ctx.request.query_params.get(name, "1")
    return int(text) if text.isascii() and text.isdigit() and len(text) < 7 else 1


def _local_path(target: str | None) -> str:
    """Only a path on this site: never another host (an open redirect)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/places"


# Sign-in.


def home(ctx: Context) -> Response:
    """The start page is the venues."""
    return RedirectResponse("/places", status_code=303)


def login_form(ctx: Context) -> Response:
    """The sign-in form."""
    return render(ctx, "login.html", next=_local_path(ctx.request.query_params.get("next")), failed=False)


async def _form(ctx: Context) -> dict[str, str]:
    form = await ctx.request.form(max_files=0, max_fields=10)
    return {k: v for k, v in form.items() if isinstance(v, str)}


def form(ctx: Context) -> dict[str, str]:
    """The posted form's text fields (files refused)."""
    import anyio.from_thread

    return anyio.from_thread.run(_form, ctx)


def login(ctx: Context) -> Response:
    """Check the password, log the attempt, open a session."""
    fields = form(ctx)
    username, password = fields.get("username", "")[:64], fields.get("password", "")[:1024]
    target = _local_path(fields.get("next"))
    refused = ctx.accounts.throttled(username, ctx.address, now_ms=ctx.now_ms)
    if refused is not None:  # the password is not even checked: guessing on gains nothing
        ctx.log("login_throttled", refused, username=username)
        return render(ctx, "login.html", status=429, next=target, failed=False, throttled=True)
    account = ctx.accounts.authenticate(username, password)
    if account is None:
        ctx.log("login_failed", username=username)
        return render(ctx, "login.html", status=401, next=target, failed=True)
    ctx.log("login", username=account.username)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, ctx.accounts.open_session(account, now_ms=ctx.now_ms), ctx.settings)
    return response


def logout(ctx: Context) -> Response:
    """End the session (the form carries the session's CSRF token)."""
    if ctx.session is None or form(ctx).get("csrf") != ctx.session.csrf:
        return error(ctx, 400, "bad_request", "csrf")
    ctx.accounts.close_session(ctx.request.cookies.get(COOKIE, ""), now_ms=ctx.now_ms)
    ctx.log("logout")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def language(ctx: Context) -> Response:
    """Switch language, back to the same page."""
    code = ctx.request.path_params["code"]
    response = RedirectResponse(_local_path(ctx.request.query_params.get("next")), status_code=303)
    if code in i18n.LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=365 * 86400, samesite="lax", path="/")
    return response


# Venues.


def places(ctx: Context) -> Response:
    """Province → district → ward → venue: the areas at the chosen level, and the venues (filtered, paged)."""
    q = ctx.request.query_params
    flag = q.get("flag", "")
    chosen = VenueFilter(district=q.get("district", "")[:80], ward=q.get("ward", "")[:80],
                         flag=flag if flag in FLAGS else "", text=q.get("q", "")[:80])  # fmt: skip
    snapshot = ctx.snapshot
    in_place, in_areas = snapshot.province.place(chosen.district, chosen.ward)
    rest = VenueFilter(flag=chosen.flag, text=chosen.text)
    venues = [v for v in in_place if rest(v)] if rest != VenueFilter() else in_place
    return render(
        ctx, "places.html", chosen=chosen, level="ward" if chosen.district else "district", areas=in_areas,
        venues=page(venues, _number(ctx, "page"), ctx.settings.page_size),
        **_as_of(ctx, snapshot),
    )  # fmt: skip


def venue(ctx: Context) -> Response:
    """One venue: hourly and daily charts, its devices and their health, its inspections."""
    board = ctx.dashboard
    destination = ctx.request.path_params["destination"]
    found = board.venue(destination)
    if found is None:
        return error(ctx, 404, "not_found")
    words = i18n.words(ctx.language)
    hourly = board.hourly(destination)
    daily = board.daily(destination)
    return render(
        ctx, "venue.html", venue=found, devices=board.devices(destination),
        inspections=board.inspections(destination),
        hourly=bar_chart(hourly, [f"{h}" for h in range(24)], title=words["hourly"]),
        daily=bar_chart([n for _, n in daily], [d.strftime("%d/%m") for d, _ in daily], title=words["daily"]),
    )  # fmt: skip


def devices(ctx: Context) -> Response:
    """The fleet: offline, backlogged or faulty first."""
    found = ctx.dashboard.device_page(_number(ctx, "page"), ctx.settings.page_size)
    return render(ctx, "devices.html", devices=found)


def to_visit(ctx: Context) -> Response:
    """Venues ranked for an inspector's visit, with the evidence."""
    snapshot = ctx.snapshot
    found = ctx.dashboard.visit_page(_number(ctx, "page"), ctx.settings.page_size, province=snapshot.province)
    return render(ctx, "visit.html", candidates=found, **_as_of(ctx, snapshot))


def _as_of(ctx: Context, snapshot: Snapshot) -> dict[str, Any]:
    """What `_as_of.html` says: the snapshot's time (its day too when not today) and a failed refresh."""
    today = local_time(ctx.settings.report, ctx.now_ms, "%Y-%m-%d")

    def when(ms: int | None) -> str:
        text = local_time(ctx.settings.report, ms)
        return text.removeprefix(f"{today} ") if ms is not None else ""

    return {"snapshot": snapshot, "refresh_seconds": f"{ctx.settings.refresh_seconds:g}",
            "as_of": when(snapshot.province.as_of_ms), "failed_at": when(snapshot.failed_ms)}  # fmt: skip


def street(ctx: Context) -> Response:
    """Street inspections of a day by outcome."""
    board = ctx.dashboard
    text = ctx.request.query_params.get("day", "")
    try:
        day = date.fromisoformat(text) if text else board.clock.today
    except ValueError:
        return error(ctx, 400, "bad_request", "day")
    result = board.street(day)
    words = i18n.words(ctx.language)
    total = result.total
    outcomes = [(words["passed"], total.passed), (words["violations"], sum(total.violations.values())),
                (words["invalid"], sum(total.invalid.values())), (words["no_qr"], total.no_qr)]  # fmt: skip
    chart = bar_chart([n for _, n in outcomes], [label for label, _ in outcomes], title=words["outcomes"])
    return render(ctx, "street.html", day=day, street=result, chart=chart,
                  previous=day - timedelta(days=1), next=day + timedelta(days=1))  # fmt: skip


# Contact tracing (authority only; every query logged).


def trace_form(ctx: Context) -> Response:
    """The tracing form."""
    return render(ctx, "trace.html", result=None, values={}, problem="")


def trace(ctx: Context) -> Response:
    """Run a trace: logged before it runs, with who asked, whom, and the window."""
    assert ctx.session is not None and ctx.session.account.role == AUTHORITY  # the route's rule
    fields = form(ctx)
    if fields.get("csrf") != ctx.session.csrf:
        return error(ctx, 400, "bad_request", "csrf")
    try:
        identity, start, end = _trace_query(ctx, fields)
    except ValueError as e:
        return render(ctx, "trace.html", status=400, result=None, values=fields, problem=str(e))
    ctx.log("trace", json.dumps({"identity": identity, "from": start.isoformat(), "to": end.isoformat()},
                                ensure_ascii=False))  # fmt: skip
    who = tracing.identities_for(
        identity, identity_key=ctx.settings.identity_key, formats=tracing.TRACE_FORMATS
    )
    result = tracing.trace(ctx.store, who, int(start.timestamp() * 1000), int(end.timestamp() * 1000))
    return render(ctx, "trace.html", result=result, values=fields, problem="")


def _trace_query(ctx: Context, fields: dict[str, str]) -> tuple[str, datetime, datetime]:
    identity = fields.get("identity", "").strip()
    if not identity or len(identity) > IDENTITY_MAX or not identity.isprintable():
        raise ValueError(f"identity: 1 to {IDENTITY_MAX} printable characters")
    zone = ctx.settings.report.zone
    try:
        start, end = (
            datetime.fromisoformat(fields.get(k, "")).replace(tzinfo=zone) for k in ("start", "end")
        )
    except ValueError:
        raise ValueError("from/to: a time like 2021-09-01T08:00") from None
    if not timedelta(0) < end - start <= timedelta(days=TRACE_MAX_DAYS):
        raise ValueError(f"to must be after from, at most {TRACE_MAX_DAYS} days later")
    return identity, start, end


def audit_log(ctx: Context) -> Response:
    """The audit log (authority only), newest first."""
    size = ctx.settings.page_size * 2
    number = _number(ctx, "page")
    rows = ctx.accounts.entries(limit=size + 1, offset=(number - 1) * size)
    return render(ctx, "log.html", entries=rows[:size], number=number, more=len(rows) > size)


# Path, handler, who may open it (None: any signed-in user), methods.
ROUTES = [
    ("/", home, None, ["GET"]),
    ("/login", login_form, "public", ["GET"]),
    ("/login", login, "public", ["POST"]),
    ("/logout", logout, None, ["POST"]),
    ("/lang/{code}", language, "public", ["GET"]),
    ("/places", places, None, ["GET"]),
    ("/venue/{destination}", venue, None, ["GET"]),
    ("/devices", devices, None, ["GET"]),
    ("/visit", to_visit, None, ["GET"]),
    ("/street", street, None, ["GET"]),
    ("/trace", trace_form, AUTHORITY, ["GET"]),
    ("/trace", trace, AUTHORITY, ["POST"]),
    ("/log", audit_log, AUTHORITY, ["GET"]),
]
