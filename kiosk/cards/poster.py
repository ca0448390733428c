"""Venue posters of the abolished check-in scheme, recognised only to be refused.

What counts as a poster: any URL (`http://`, `https://`, or a bare `www.` host),
and a venue check-in code of the old scheme, modelled as `KBYT` (khai báo y tế)
or `QRDD` (QR địa điểm) followed by `:` or `-` and 4 to 64 letters, digits, `_`
or `-`, e.g. `QRDD-HN0123456`. Letter case does not matter.
"""

from __future__ import annotations

import re

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_VENUE_CODE = re.compile(r"(?:KBYT|QRDD)[:-][A-Z0-9_-]{4,64}", re.IGNORECASE)


def is_venue_poster(text: str) -> bool:
    """Whether `text` is a venue poster of the old scheme (a URL or a venue code)."""
    stripped = text.strip()
    return bool(_URL.fullmatch(stripped) or _VENUE_CODE.fullmatch(stripped))
