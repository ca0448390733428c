"""The screen's own words (titles, labels, named hints and faults) in Vietnamese and English."""

from __future__ import annotations

from kiosk.reasons import Lang

INSPECTION_TITLE = "KIỂM TRA / INSPECTION"

LABELS: dict[Lang, dict[str, str]] = {
    "vi": {
        "prompt": "Vui lòng quét mã QR",
        "welcome": "MỜI VÀO",
        "goodbye": "TẠM BIỆT",
        "refused": "KHÔNG ĐƯỢC VÀO",
        "fault": "THIẾT BỊ GẶP SỰ CỐ",
        "in": "Vào",
        "out": "Ra",
        "today": "Hôm nay",
        "online": "Đã kết nối",
        "offline": "Mất kết nối",
        "backlog": "chờ gửi",
        "staff": "Nhân viên:",
        "today_by_hour": "Hôm nay, theo giờ",
        "week_by_hour": "7 ngày, theo giờ",
        "scans": "lượt",
        "peak": "cao nhất",
        "violation": "VI PHẠM",
        "no_violation": "KHÔNG VI PHẠM",
        "not_valid": "MÃ KHÔNG HỢP LỆ",
    },
    "en": {
        "prompt": "Please show your QR code",
        "welcome": "WELCOME",
        "goodbye": "GOODBYE",
        "refused": "NOT ADMITTED",
        "fault": "KIOSK FAULT",
        "in": "In",
        "out": "Out",
        "today": "Today",
        "online": "Online",
        "offline": "Offline",
        "backlog": "waiting to send",
        "staff": "Staff:",
        "today_by_hour": "Today, by hour",
        "week_by_hour": "7 days, by hour",
        "scans": "scans",
        "peak": "peak",
        "violation": "VIOLATION",
        "no_violation": "NO VIOLATION",
        "not_valid": "CODE NOT VALID",
    },
}


# Hints the daemon can name instead of writing text: (Vietnamese, English).
HINTS: dict[str, tuple[str, str]] = {
    "closer": ("Đưa mã lại gần hơn", "Bring the code closer"),
    "still": ("Giữ yên mã QR", "Hold the code still"),
    "glare": ("Nghiêng điện thoại cho đỡ lóa", "Tilt the phone to avoid glare"),
}
# Faults the daemon can name: (problem, what staff should do) in Vietnamese, then English.
FAULTS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "camera": (
        (
            "Không nhận được hình từ camera",
            "Kiểm tra cáp camera rồi khởi động lại kiosk. Nếu vẫn lỗi, gọi kỹ thuật.",
        ),
        (
            "No picture from the camera",
            "Check the camera cable, then restart the kiosk. If it persists, call the technician.",
        ),
    ),
    "broker": (
        (
            "Mất kết nối máy chủ đã lâu",
            "Kiosk vẫn quét và lưu lại. Kiểm tra mạng (Wi-Fi, cáp) hoặc gọi kỹ thuật.",
        ),
        (
            "Server unreachable for a long time",
            "Scans are still recorded. Check the network (Wi-Fi, cable) or call the technician.",
        ),
    ),
    "spool": (
        ("Bộ nhớ sự kiện sắp đầy", "Kiểm tra mạng để dữ liệu được gửi đi, hoặc gọi kỹ thuật."),
        ("Event storage almost full", "Check the network so events can be sent, or call the technician."),
    ),
}
