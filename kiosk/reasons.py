"""Every reason code of the product, and the short message the screen shows for it.

A decision or a rejection always carries one `Reason`. Messages are read at a
distance, so they are short and say what to do. Vietnamese (with full
diacritics) is the default language; English is available.

A message template may hold optional parts in square brackets, e.g.
`"Không được vào[ ({status})]"`: the part is shown only when every detail it
names was given to `message()`, so callers may pass details or not.
"""

from __future__ import annotations

import re
import string
from enum import StrEnum
from typing import TYPE_CHECKING

from kiosk.text import Text

if TYPE_CHECKING:
    from kiosk.text import Lang


class Reason(StrEnum):
    """A reason code: why a QR was accepted or refused (stable, goes into events)."""

    OK = "ok"
    # What the card parsers say about the bytes read.
    TOO_LONG = "too_long"
    UNRECOGNISED = "unrecognised"
    OLD_VENUE_QR = "old_venue_qr"
    NATIONAL_INVALID = "national_invalid"
    CCCD_INVALID = "cccd_invalid"
    CCCD_INCONSISTENT = "cccd_inconsistent"
    DCC_BAD_PREFIX = "dcc_bad_prefix"
    DCC_BAD_BASE45 = "dcc_bad_base45"
    DCC_BAD_COMPRESSION = "dcc_bad_compression"
    DCC_BAD_COSE = "dcc_bad_cose"
    DCC_UNKNOWN_KID = "dcc_unknown_kid"
    DCC_BAD_SIGNATURE = "dcc_bad_signature"
    DCC_SIGNER_NOT_VALID = "dcc_signer_not_valid"
    DCC_KEY_USAGE_MISMATCH = "dcc_key_usage_mismatch"
    DCC_EXPIRED = "dcc_expired"
    DCC_NOT_YET_VALID = "dcc_not_yet_valid"
    DCC_SCHEMA_VIOLATION = "dcc_schema_violation"
    INTERNAL_ERROR = "internal_error"
    # What the decision rules say about a card that was read.
    FORMAT_NOT_ACCEPTED = "format_not_accepted"
    STATUS_BLOCKED = "status_blocked"
    DCC_TYPE_NOT_ACCEPTED = "dcc_type_not_accepted"
    DCC_VACCINATION_INCOMPLETE = "dcc_vaccination_incomplete"
    DCC_VACCINATION_TOO_RECENT = "dcc_vaccination_too_recent"
    DCC_TEST_TOO_OLD = "dcc_test_too_old"
    DCC_TEST_POSITIVE = "dcc_test_positive"
    DCC_RECOVERY_EXPIRED = "dcc_recovery_expired"
    DCC_NOT_VERIFIABLE = "dcc_not_verifiable"
    CAPACITY_FULL = "capacity_full"
    # Lanes of one venue: an entry of someone counted inside, an exit of someone no lane saw enter.
    ALREADY_INSIDE = "already_inside"
    EXIT_UNSEEN = "exit_unseen"
    # A street inspector's handheld reading an inspector card.
    INSPECTOR_CARD_OK = "inspector_card_ok"
    INSPECTOR_CARD_INVALID = "inspector_card_invalid"
    INSPECTOR_CARD_EXPIRED = "inspector_card_expired"
    INSPECTOR_CARD_UNKNOWN_KEY = "inspector_card_unknown_key"
    # A street inspector met a person who has no QR code at all (recorded with one button press).
    NO_QR = "no_qr"


_SHOW_PERSONAL_VI = "Vui lòng xuất trình mã QR cá nhân"
_SHOW_PERSONAL_EN = "Please show your personal QR code"
_DCC_INVALID_VI = "Hộ chiếu vắc xin không hợp lệ"
_DCC_INVALID_EN = "Vaccine passport not valid"

# Every reason's message template.
_MESSAGES: dict[Reason, Text] = {
    Reason.OK: Text("Mời vào[ {name}]", "Welcome[ {name}]"),
    Reason.TOO_LONG: Text(f"Mã QR quá dài. {_SHOW_PERSONAL_VI}", f"QR code too long. {_SHOW_PERSONAL_EN}"),
    Reason.UNRECOGNISED: Text(
        f"Không nhận ra mã QR. {_SHOW_PERSONAL_VI}",
        f"QR code not recognised. {_SHOW_PERSONAL_EN}",
    ),
    Reason.OLD_VENUE_QR: Text(
        f"Mã QR địa điểm không còn dùng. {_SHOW_PERSONAL_VI}",
        f"Venue QR codes are no longer used. {_SHOW_PERSONAL_EN}",
    ),
    Reason.NATIONAL_INVALID: Text(
        "Mã QR cá nhân không hợp lệ. Vui lòng cập nhật mã QR trong ứng dụng",
        "Personal QR code not valid. Please refresh it in your app",
    ),
    Reason.CCCD_INVALID: Text(
        f"Mã QR căn cước không đọc được. {_SHOW_PERSONAL_VI}",
        f"ID card QR code unreadable. {_SHOW_PERSONAL_EN}",
    ),
    Reason.CCCD_INCONSISTENT: Text(
        "Thẻ căn cước không hợp lệ. Vui lòng gặp nhân viên",
        "ID card not valid. Please see the staff",
    ),
    Reason.DCC_BAD_PREFIX: Text(
        f"{_DCC_INVALID_VI}. Vui lòng tải lại",
        f"{_DCC_INVALID_EN}. Please download it again",
    ),
    Reason.DCC_BAD_BASE45: Text(
        f"{_DCC_INVALID_VI}. Vui lòng tải lại",
        f"{_DCC_INVALID_EN}. Please download it again",
    ),
    Reason.DCC_BAD_COMPRESSION: Text(
        f"{_DCC_INVALID_VI}. Vui lòng tải lại",
        f"{_DCC_INVALID_EN}. Please download it again",
    ),
    Reason.DCC_BAD_COSE: Text(
        f"{_DCC_INVALID_VI}. Vui lòng tải lại",
        f"{_DCC_INVALID_EN}. Please download it again",
    ),
    Reason.DCC_UNKNOWN_KID: Text(
        "Không xác minh được nơi cấp hộ chiếu vắc xin. Vui lòng gặp nhân viên",
        "Vaccine passport issuer unknown. Please see the staff",
    ),
    Reason.DCC_BAD_SIGNATURE: Text(
        f"{_DCC_INVALID_VI}: sai chữ ký. Vui lòng gặp nhân viên",
        f"{_DCC_INVALID_EN}: bad signature. Please see the staff",
    ),
    Reason.DCC_SIGNER_NOT_VALID: Text(
        "Chữ ký hộ chiếu vắc xin đã hết hiệu lực. Vui lòng gặp nhân viên",
        "Vaccine passport signer no longer valid. Please see the staff",
    ),
    Reason.DCC_KEY_USAGE_MISMATCH: Text(
        f"{_DCC_INVALID_VI}: nơi cấp không được phép. Vui lòng gặp nhân viên",
        f"{_DCC_INVALID_EN}: issuer not allowed. Please see the staff",
    ),
    Reason.DCC_EXPIRED: Text(
        "Hộ chiếu vắc xin đã hết hạn. Vui lòng tải bản mới",
        "Vaccine passport expired. Please download a new one",
    ),
    Reason.DCC_NOT_YET_VALID: Text(
        "Hộ chiếu vắc xin chưa có hiệu lực. Vui lòng gặp nhân viên",
        "Vaccine passport not yet valid. Please see the staff",
    ),
    Reason.DCC_SCHEMA_VIOLATION: Text(
        f"{_DCC_INVALID_VI}. Vui lòng tải lại",
        f"{_DCC_INVALID_EN}. Please download it again",
    ),
    Reason.INTERNAL_ERROR: Text(
        "Lỗi đọc mã. Vui lòng quét lại",
        "Could not read the code. Please scan again",
    ),
    Reason.FORMAT_NOT_ACCEPTED: Text(
        f"Loại mã này không được chấp nhận tại đây. {_SHOW_PERSONAL_VI}",
        f"This kind of code is not accepted here. {_SHOW_PERSONAL_EN}",
    ),
    Reason.STATUS_BLOCKED: Text(
        "Không được vào[ ({status})]. Vui lòng gặp nhân viên",
        "Entry refused[ ({status})]. Please see the staff",
    ),
    Reason.DCC_TYPE_NOT_ACCEPTED: Text(
        "Loại chứng nhận này không được chấp nhận tại đây",
        "This kind of certificate is not accepted here",
    ),
    Reason.DCC_VACCINATION_INCOMPLETE: Text(
        "Chưa tiêm đủ liều vắc xin[ ({dose}/{series})]",
        "Vaccination not complete[ ({dose}/{series})]",
    ),
    Reason.DCC_VACCINATION_TOO_RECENT: Text(
        "Mũi tiêm cuối chưa đủ ngày[: còn {days} ngày]",
        "Last dose too recent[: {days} more days]",
    ),
    Reason.DCC_TEST_TOO_OLD: Text(
        "Kết quả xét nghiệm đã quá hạn[ (lấy mẫu {hours} giờ trước)]",
        "Test result too old[ (sampled {hours} hours ago)]",
    ),
    Reason.DCC_TEST_POSITIVE: Text(
        "Kết quả xét nghiệm dương tính. Vui lòng gặp nhân viên",
        "Test result positive. Please see the staff",
    ),
    Reason.DCC_RECOVERY_EXPIRED: Text(
        "Chứng nhận khỏi bệnh đã hết hạn",
        "Recovery certificate expired",
    ),
    Reason.DCC_NOT_VERIFIABLE: Text(
        f"Không thể xác minh hộ chiếu vắc xin tại đây. {_SHOW_PERSONAL_VI}",
        f"Vaccine passports cannot be checked here. {_SHOW_PERSONAL_EN}",
    ),
    Reason.CAPACITY_FULL: Text(
        "Đã đủ người[ ({occupancy}/{limit})]. Vui lòng chờ",
        "Venue full[ ({occupancy}/{limit})]. Please wait",
    ),
    Reason.INSPECTOR_CARD_OK: Text("Thẻ kiểm tra hợp lệ", "Inspector card valid"),
    Reason.INSPECTOR_CARD_INVALID: Text("Thẻ kiểm tra không hợp lệ", "Inspector card not valid"),
    Reason.INSPECTOR_CARD_EXPIRED: Text("Thẻ kiểm tra đã hết hạn", "Inspector card expired"),
    Reason.INSPECTOR_CARD_UNKNOWN_KEY: Text(
        "Thẻ kiểm tra không rõ nơi cấp",
        "Inspector card from an unknown issuer",
    ),
    Reason.ALREADY_INSIDE: Text("Đã vào rồi[ {name}]", "Already inside[ {name}]"),
    Reason.EXIT_UNSEEN: Text("Tạm biệt[ {name}]", "Goodbye[ {name}]"),
    Reason.NO_QR: Text("Đã ghi nhận: người không có mã QR", "Recorded: a person without a QR code"),
}

_OPTIONAL_PART = re.compile(r"\[([^\[\]]*)\]")


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _render(template: str, details: dict[str, object]) -> str:
    def optional(match: re.Match[str]) -> str:
        part = match.group(1)
        return part if _fields(part) <= details.keys() else ""

    return _OPTIONAL_PART.sub(optional, template).format_map(details)


def message(reason: Reason | str, lang: Lang = "vi", **details: object) -> str:
    """The screen message for `reason` in `lang`; optional details fill bracketed parts."""
    return _render(_MESSAGES[Reason(reason)].of(lang), details)


def template(reason: Reason | str, lang: Lang = "vi") -> str:
    """The raw message template (with its `[...{detail}...]` parts) for documentation."""
    return _MESSAGES[Reason(reason)].of(lang)


def markdown_table() -> str:
    """A Markdown table of every reason code with its message in both languages."""
    rows = ["| Code | Tiếng Việt | English |", "|---|---|---|"]
    for reason in Reason:
        vi, en = (template(reason, lang) for lang in ("vi", "en"))
        rows.append(f"| `{reason}` | {vi} | {en} |")
    return "\n".join(rows) + "\n"
