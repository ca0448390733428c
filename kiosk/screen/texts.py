"""The screen's own words (titles, labels, named hints and faults), each in Vietnamese and English."""

from __future__ import annotations

from kiosk.text import Text

INSPECTION_TITLE = "KIỂM TRA / INSPECTION"

LABELS: dict[str, Text] = {
    "prompt": Text("Vui lòng quét mã QR", "Please show your QR code"),
    "welcome": Text("MỜI VÀO", "WELCOME"),
    "goodbye": Text("TẠM BIỆT", "GOODBYE"),
    "refused": Text("KHÔNG ĐƯỢC VÀO", "NOT ADMITTED"),
    "fault": Text("THIẾT BỊ GẶP SỰ CỐ", "KIOSK FAULT"),
    "in": Text("Vào", "In"),
    "out": Text("Ra", "Out"),
    "today": Text("Hôm nay", "Today"),
    "inside": Text("Bên trong", "Inside"),
    "online": Text("Đã kết nối", "Online"),
    "offline": Text("Mất kết nối", "Offline"),
    "backlog": Text("chờ gửi", "waiting to send"),
    "staff": Text("Nhân viên:", "Staff:"),
    "today_by_hour": Text("Hôm nay, theo giờ", "Today, by hour"),
    "week_by_hour": Text("7 ngày, theo giờ", "7 days, by hour"),
    "scans": Text("lượt", "scans"),
    "peak": Text("cao nhất", "peak"),
    "violation": Text("VI PHẠM", "VIOLATION"),
    "no_violation": Text("KHÔNG VI PHẠM", "NO VIOLATION"),
    "not_valid": Text("MÃ KHÔNG HỢP LỆ", "CODE NOT VALID"),
}

# Hints the daemon can name instead of writing text.
HINTS: dict[str, Text] = {
    "closer": Text("Đưa mã lại gần hơn", "Bring the code closer"),
    "still": Text("Giữ yên mã QR", "Hold the code still"),
    "glare": Text("Nghiêng điện thoại cho đỡ lóa", "Tilt the phone to avoid glare"),
}
# Faults the daemon can name: (what is wrong, what staff should do).
FAULTS: dict[str, tuple[Text, Text]] = {
    "camera": (
        Text("Không nhận được hình từ camera", "No picture from the camera"),
        Text(
            "Kiểm tra cáp camera rồi khởi động lại kiosk. Nếu vẫn lỗi, gọi kỹ thuật.",
            "Check the camera cable, then restart the kiosk. If it persists, call the technician.",
        ),
    ),
    "broker": (
        Text("Mất kết nối máy chủ đã lâu", "Server unreachable for a long time"),
        Text(
            "Kiosk vẫn quét và lưu lại. Kiểm tra mạng (Wi-Fi, cáp) hoặc gọi kỹ thuật.",
            "Scans are still recorded. Check the network (Wi-Fi, cable) or call the technician.",
        ),
    ),
    "screen": (
        Text("Màn hình không hiển thị", "The screen is not working"),
        Text(
            "Kiosk vẫn quét; đèn và còi báo kết quả. Kiểm tra cáp màn hình hoặc gọi kỹ thuật.",
            "Scans go on with the lights and buzzer. Check the display cable or call the technician.",
        ),
    ),
    "spool": (
        Text("Bộ nhớ sự kiện sắp đầy", "Event storage almost full"),
        Text(
            "Kiểm tra mạng để dữ liệu được gửi đi, hoặc gọi kỹ thuật.",
            "Check the network so events can be sent, or call the technician.",
        ),
    ),
}
# An inspector card recorded whose inspection figures could not be gathered: (what happened, what next).
INSPECTION_UNAVAILABLE: tuple[Text, Text] = (
    Text("Đã ghi nhận lượt kiểm tra", "Inspection visit recorded"),
    Text(
        "Không hiển thị được số liệu kiểm tra; lỗi được ghi trong nhật ký kiosk.",
        "The inspection figures could not be shown; the error is in the kiosk's log.",
    ),
)
