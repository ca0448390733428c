"""Dates and moments in words for the screens, as read in Vietnam, in Vietnamese and English."""

from __future__ import annotations

from datetime import date, datetime

from kiosk.statuslist import VIETNAM
from kiosk.text import Lang

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def date_vi(day: date) -> str:
    """A day as Vietnamese write it: 18/01/1987."""
    return f"{day.day:02d}/{day.month:02d}/{day.year}"


def date_en(day: date) -> str:
    """A day in English: 18 Jan 1987."""
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def moment_words(moment: datetime, lang: Lang) -> str:
    """A time of day and its date in Vietnam."""
    local = moment.astimezone(VIETNAM)
    if lang == "vi":
        return f"{local:%H:%M} ngày {date_vi(local.date())}"
    return f"{local:%H:%M} on {date_en(local.date())}"
