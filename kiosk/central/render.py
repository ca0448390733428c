"""The daily report as text for people (table, HTML with inline SVG charts) and for programs (CSV, JSON).

Every form has the venues (with their inspection visits and refused inspector
cards) and then the street inspections, per handheld and in total.

The HTML page is one self-contained file: styles and charts are inline, nothing is
fetched, so it can be mailed or opened offline.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from kiosk.central.reports import DestinationReport, DeviceReport, Flag, Report, StreetCounts, Visit

FORMATS = ("table", "csv", "json", "html")
LANGUAGES = ("vi", "en")

# The words of the table and the HTML page; CSV and JSON keep their English keys for programs.
WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Report for {day} ({zone})", "page": "page {page} of {pages}, {venues} venues",
        "areas": "Visitor scans by {level}", "district": "district", "ward": "ward",
        "area": "  {area}: {venues} venues, {scans} scans, {fails} refused", "none": "(none)",
        "open": "open", "group": "group",
        "scans": "  scans {scans} (in {din}, out {dout}), people {people}, old posters {old}, no QR {no_qr}",
        "pass": "pass", "fail": "fail", "hourly": "hourly", "no flags": "no flags",
        "no visit": "no inspection visit", "refused cards": "refused inspector cards",
        "device": "  device {device} [{status}, {state}]: {events} events, uptime {uptime}, offline {offline}"
        " min, {missing} missing, last {last}",
        "visit": "inspection {time} on {device} by {who}: {scans} scans so far, {old} old posters;"
        " devices {states}; flags {flags}",
        "street": "Street inspections", "total": "total",
        "street line": "{checks} checks, {passed} passed, violations {violations}, not valid {invalid},"
        " no QR {no_qr}",
        "heading": "Scan report {day}", "times": "Times in {zone}.", "per hour": "Scans per hour",
        "devices": "Devices", "inspections": "Inspections",
        "no_device": "no active kiosk is installed",
        "device_offline": "{0} offline {1} min in opening hours",
        "below_usual": "{0} scans, usually {1}", "below_peers": "{0} scans, peers {1}",
        "silent": "{0} stretch(es) without scans, longest {1} min",
    },
    "vi": {
        "title": "Báo cáo ngày {day} ({zone})", "page": "trang {page}/{pages}, {venues} địa điểm",
        "areas": "Lượt quét của khách theo {level}", "district": "quận/huyện", "ward": "phường/xã",
        "area": "  {area}: {venues} địa điểm, {scans} lượt quét, {fails} bị từ chối", "none": "(không có)",
        "open": "mở cửa", "group": "nhóm",
        "scans": "  lượt quét {scans} (vào {din}, ra {dout}), số người {people}, mã điểm cũ {old},"
        " không có mã QR {no_qr}",
        "pass": "đạt", "fail": "không đạt", "hourly": "theo giờ", "no flags": "không có cảnh báo",
        "no visit": "không có lượt kiểm tra", "refused cards": "thẻ kiểm tra bị từ chối",
        "device": "  thiết bị {device} [{status}, {state}]: {events} sự kiện, hoạt động {uptime},"
        " mất kết nối {offline} phút, thiếu {missing}, cuối {last}",
        "visit": "kiểm tra {time} tại {device} bởi {who}: {scans} lượt quét đến lúc đó, {old} mã điểm cũ;"
        " thiết bị {states}; cảnh báo {flags}",
        "street": "Kiểm tra trên đường", "total": "tổng",
        "street line": "{checks} lượt kiểm tra, {passed} đạt, vi phạm {violations}, không hợp lệ {invalid},"
        " không có mã QR {no_qr}",
        "heading": "Báo cáo quét mã ngày {day}", "times": "Giờ theo {zone}.",
        "per hour": "Lượt quét theo giờ",
        "devices": "Thiết bị", "inspections": "Kiểm tra",
        "no_device": "chưa lắp kiosk nào đang hoạt động",
        "device_offline": "{0} mất kết nối {1} phút trong giờ mở cửa",
        "below_usual": "{0} lượt quét, thường {1}", "below_peers": "{0} lượt quét, nơi cùng nhóm {1}",
        "silent": "{0} khoảng không có lượt quét, dài nhất {1} phút",
    },
}  # fmt: skip


def _w(lang: str, key: str, **values: object) -> str:
    return WORDS[lang][key].format(**values)


def _flag_text(flag: Flag, lang: str) -> str:
    template = WORDS[lang].get(flag.code)
    if template is None or template.count("{") != len(flag.values):
        return flag.message
    return template.format(*flag.values)


def render(report: Report, fmt: str, *, lang: str = "en") -> str:
    """The report in one of FORMATS; the table and the HTML page in one of LANGUAGES."""
    renderers: dict[str, Callable[[Report], str]] = {
        "table": lambda r: as_table(r, lang=lang),
        "csv": as_csv,
        "json": as_json,
        "html": lambda r: as_html(r, lang=lang),
    }
    return renderers[fmt](report)


def as_json(report: Report) -> str:
    """Every figure, as JSON."""
    return json.dumps(dataclasses.asdict(report), indent=2, ensure_ascii=False) + "\n"


def _clock(ms: int | None, zone: ZoneInfo) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, zone).strftime("%H:%M")


def _rows(d: DestinationReport, zone: ZoneInfo) -> Iterator[tuple[str, str, object]]:
    """(section, key, value) of every figure of a destination."""
    summary = ("scans", "people", "old_poster", "no_qr", "usual", "peers")
    yield from (("summary", key, getattr(d, key)) for key in summary)
    yield from (("direction", key, n) for key, n in d.directions.items())
    yield from (("kind", key, n) for key, n in d.kinds.items())
    for verdict, reasons in d.verdicts.items():
        yield from ((verdict, reason, n) for reason, n in reasons.items())
    yield from (("hour", f"{hour:02d}", n) for hour, n in enumerate(d.hourly))
    for dev in d.devices:
        yield from _device_rows(dev, zone)
    yield from (("silence", _clock(a, zone), _clock(b, zone)) for a, b in d.silences)
    yield from (("flag", flag.code, flag.message) for flag in d.flags)
    for number, visit in enumerate(d.visits, 1):
        yield from _visit_rows(f"visit:{number}", visit, zone)
    yield from (("refused_inspector_card", reason, n) for reason, n in d.refused_inspector_cards.items())


def _visit_rows(section: str, visit: Visit, zone: ZoneInfo) -> Iterator[tuple[str, str, object]]:
    yield (section, "time", _clock(visit.ts, zone))
    yield (section, "device", visit.device)
    yield (section, "inspector", visit.inspector)
    yield (section, "scans", visit.scans)
    yield (section, "old_poster", visit.old_poster)
    yield from ((section, f"state:{device}", state) for device, state in visit.states.items())
    yield (section, "flags", " ".join(visit.flags))


def _street_rows(section: str, c: StreetCounts) -> Iterator[tuple[str, str, object]]:
    yield from ((section, key, getattr(c, key)) for key in ("checks", "passed"))
    yield from ((section, f"violation:{reason}", n) for reason, n in c.violations.items())
    yield from ((section, f"invalid:{reason}", n) for reason, n in c.invalid.items())
    yield (section, "no_qr", c.no_qr)


def _device_rows(dev: DeviceReport, zone: ZoneInfo) -> Iterator[tuple[str, str, object]]:
    yield (f"device:{dev.device}", "status", dev.status)
    yield (f"device:{dev.device}", "state", dev.state)
    yield (f"device:{dev.device}", "events", dev.events)
    yield (f"device:{dev.device}", "uptime", round(dev.uptime, 4))
    yield (f"device:{dev.device}", "offline_minutes", round(dev.offline_minutes, 1))
    yield (f"device:{dev.device}", "missing_seqs", dev.missing_seqs)
    yield (f"device:{dev.device}", "last_event", _clock(dev.last_event_ms, zone))


def as_csv(report: Report) -> str:
    """One row per figure: day, destination, section, key, value."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["day", "destination", "section", "key", "value"])
    zone = ZoneInfo(report.timezone)
    for d in report.destinations:
        for section, key, value in _rows(d, zone):
            writer.writerow([report.day, d.destination, section, key, "" if value is None else value])
    for h in report.street:
        for section, key, value in _street_rows(f"street:{h.device}", h.counts):
            writer.writerow([report.day, h.destination, section, key, value])
    for section, key, value in _street_rows("street_total", report.street_total):
        writer.writerow([report.day, "", section, key, value])
    for a in report.areas:
        area = f"{a.district}/{a.ward}" if a.ward else a.district
        for key in ("venues", "scans", "fails"):
            writer.writerow([report.day, "", "area", f"{area}:{key}", getattr(a, key)])
    return out.getvalue()


def as_table(report: Report, *, lang: str = "en") -> str:
    """A plain-text report for a terminal."""
    zone = ZoneInfo(report.timezone)
    lines = [_w(lang, "title", day=report.day, zone=report.timezone), *_area_lines(report, lang)]
    lines.append(_w(lang, "page", page=report.page, pages=report.pages, venues=report.venues))
    for d in report.destinations:
        lines += ["", *_table_destination(d, zone, lang)]
    lines += ["", _w(lang, "street"), f"  {_w(lang, 'total')}: {_street_line(report.street_total, lang)}"]
    lines += [
        f"  {h.device} ({h.destination}, {h.status}): {_street_line(h.counts, lang)}" for h in report.street
    ]
    return "\n".join(lines) + "\n"


def _area_lines(report: Report, lang: str) -> list[str]:
    if not report.areas:
        return []
    level = "ward" if any(a.ward for a in report.areas) else "district"
    return [_w(lang, "areas", level=_w(lang, level))] + [
        _w(lang, "area", area=(a.ward or a.district) or _w(lang, "none"), venues=a.venues, scans=a.scans,
           fails=a.fails)
        for a in report.areas
    ]  # fmt: skip


def _table_destination(d: DestinationReport, zone: ZoneInfo, lang: str) -> list[str]:
    lines = [_title(d, lang), *_summary_lines(d, lang)]
    lines += [f"  {_w(lang, 'hourly')}: {' '.join(str(n) for n in d.hourly)}"]
    for dev in d.devices:
        lines.append(_w(
            lang, "device", device=dev.device, status=dev.status, state=dev.state, events=dev.events,
            uptime=f"{dev.uptime:.0%}", offline=f"{dev.offline_minutes:.0f}", missing=dev.missing_seqs,
            last=_clock(dev.last_event_ms, zone),
        ))  # fmt: skip
    lines += [f"  FLAG {flag.code}: {_flag_text(flag, lang)}" for flag in d.flags] or [
        f"  {_w(lang, 'no flags')}"
    ]
    lines += [f"  {_visit_line(v, zone, lang)}" for v in d.visits] or [f"  {_w(lang, 'no visit')}"]
    if d.refused_inspector_cards:
        lines.append(f"  {_w(lang, 'refused cards')}: {_counts(d.refused_inspector_cards)}")
    return lines


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {n}" for key, n in counts.items()) or "-"


def _visit_line(v: Visit, zone: ZoneInfo, lang: str) -> str:
    states = ", ".join(f"{device} {state}" for device, state in v.states.items()) or "-"
    return _w(
        lang, "visit", time=_clock(v.ts, zone), device=v.device, who=v.inspector or "-", scans=v.scans,
        old=v.old_poster, states=states, flags=" ".join(v.flags) or "-",
    )  # fmt: skip


def _street_line(c: StreetCounts, lang: str) -> str:
    return _w(
        lang, "street line", checks=c.checks, passed=c.passed, violations=_counts(c.violations),
        invalid=_counts(c.invalid), no_qr=c.no_qr,
    )  # fmt: skip


def _title(d: DestinationReport, lang: str) -> str:
    group = d.group and f"{_w(lang, 'group')} {d.group}"
    extra = ", ".join(part for part in (d.name, d.ward, d.district, group) if part)
    return f"{d.destination}" + (f" ({extra})" if extra else "") + f", {_w(lang, 'open')} {d.opening_hours}"


def _summary_lines(d: DestinationReport, lang: str) -> list[str]:
    def reasons(verdict: str) -> str:
        return ", ".join(f"{reason} {n}" for reason, n in d.verdicts[verdict].items()) or "-"

    return [
        _w(lang, "scans", scans=d.scans, din=d.directions["in"], dout=d.directions["out"], people=d.people,
           old=d.old_poster, no_qr=d.no_qr),
        f"  {_w(lang, 'pass')} {sum(d.verdicts['pass'].values())}: {reasons('pass')}",
        f"  {_w(lang, 'fail')} {sum(d.verdicts['fail'].values())}: {reasons('fail')}",
    ]  # fmt: skip


STYLE = """
body{font-family:sans-serif;margin:2em;color:#222}
section{border-top:1px solid #ccc;padding:1em 0}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left;border-bottom:1px solid #eee}
.flag{color:#a00;font-weight:bold}.ok{color:#070}
"""


def as_html(report: Report, *, lang: str = "en") -> str:
    """One self-contained HTML page with inline SVG charts."""
    zone = ZoneInfo(report.timezone)
    areas = "".join(f"<p>{escape(line.strip())}</p>" for line in _area_lines(report, lang))
    page = _w(lang, "page", page=report.page, pages=report.pages, venues=report.venues)
    body = "".join(_html_destination(d, zone, lang) for d in report.destinations) + _html_street(report, lang)
    title = escape(_w(lang, "heading", day=report.day))
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{STYLE}</style></head><body><h1>{title}</h1>"
        f"<p>{escape(_w(lang, 'times', zone=report.timezone))}</p>{areas}<p>{escape(page)}</p>"
        f"{body}</body></html>\n"
    )


def _html_destination(d: DestinationReport, zone: ZoneInfo, lang: str) -> str:
    flags = "".join(f'<li class="flag">{escape(f.code)}: {escape(_flag_text(f, lang))}</li>' for f in d.flags)
    summary = "".join(f"<p>{escape(line.strip())}</p>" for line in _summary_lines(d, lang))
    ok = f"<li class=ok>{escape(_w(lang, 'no flags'))}</li>"
    return (
        f"<section><h2>{escape(_title(d, lang))}</h2>{summary}"
        f"<ul>{flags or ok}</ul>"
        f"<h3>{escape(_w(lang, 'per hour'))}</h3>{hourly_svg(d.hourly)}"
        f"<h3>{escape(_w(lang, 'devices'))}</h3>{_device_table(d.devices, zone)}"
        f"<h3>{escape(_w(lang, 'inspections'))}</h3>{_visit_table(d, zone)}</section>"
    )


def _cells(*values: object) -> str:
    return "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in values) + "</tr>"


def _visit_table(d: DestinationReport, zone: ZoneInfo) -> str:
    head = "<tr><th>time</th><th>device</th><th>inspector</th><th>scans so far</th>"
    head += "<th>old posters</th><th>devices</th><th>flags</th></tr>"
    rows = "".join(_visit_cells(v, zone) for v in d.visits)
    table = f"<table>{head}{rows}</table>" if d.visits else "<p>no inspection visit</p>"
    refused = d.refused_inspector_cards
    return table + (
        f"<p class=flag>refused inspector cards: {escape(_counts(refused))}</p>" if refused else ""
    )


def _visit_cells(v: Visit, zone: ZoneInfo) -> str:
    states = ", ".join(f"{dev} {state}" for dev, state in v.states.items()) or "-"
    flags = " ".join(v.flags) or "-"
    return _cells(_clock(v.ts, zone), v.device, v.inspector or "-", v.scans, v.old_poster, states, flags)


def _html_street(report: Report, lang: str) -> str:
    head = "<tr><th>handheld</th><th>team or area</th><th>checks</th><th>passed</th>"
    head += "<th>violations</th><th>not valid</th><th>no QR</th></tr>"
    rows = "".join(_street_cells(h.device, h.destination, h.counts) for h in report.street)
    total = _street_cells("total", "", report.street_total)
    heading = escape(_w(lang, "street"))
    return f"<section><h2>{heading}</h2><table>{head}{rows}{total}</table></section>"


def _street_cells(device: str, area: str, c: StreetCounts) -> str:
    return _cells(device, area, c.checks, c.passed, _counts(c.violations), _counts(c.invalid), c.no_qr)


def _device_table(devices: list[DeviceReport], zone: ZoneInfo) -> str:
    head = (
        "<tr><th>device</th><th>status</th><th>events</th><th>uptime</th><th>missing</th><th>last</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{escape(dev.device)}</td><td>{escape(dev.status)}, {escape(dev.state)}</td>"
        f"<td>{dev.events}</td><td>{uptime_svg(dev.uptime)} {dev.uptime:.0%}</td>"
        f"<td>{dev.missing_seqs}</td><td>{_clock(dev.last_event_ms, zone)}</td></tr>"
        for dev in devices
    )
    return f"<table>{head}{rows}</table>" if devices else "<p class=flag>no device</p>"


def hourly_svg(hourly: list[int], *, width: int = 480, height: int = 120) -> str:
    """A bar chart of 24 hourly counts as an inline SVG element."""
    top = max(hourly) or 1
    bar = width / len(hourly)
    plot = height - 16  # room for the hour labels
    bars = []
    for hour, n in enumerate(hourly):
        h = plot * n / top
        bars.append(
            f'<rect x="{hour * bar + 1:.1f}" y="{plot - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}"'
            f' fill="#2b7bb9"><title>{hour:02d}:00 {n}</title></rect>'
        )
        if hour % 3 == 0:
            bars.append(f'<text x="{hour * bar:.1f}" y="{height - 3}" font-size="10">{hour:02d}</text>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img"'
        f' aria-label="scans per hour">{"".join(bars)}</svg>'
    )


def uptime_svg(fraction: float, *, width: int = 100, height: int = 10) -> str:
    """A small horizontal bar showing an uptime fraction."""
    filled = width * max(0.0, min(1.0, fraction))
    colour = "#2a2" if fraction >= 0.95 else "#d80" if fraction >= 0.5 else "#c22"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<rect width="{width}" height="{height}" fill="#eee"/>'
        f'<rect width="{filled:.1f}" height="{height}" fill="{colour}"/></svg>'
    )
