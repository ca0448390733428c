"""kiosk: QR entrance kiosk for Raspberry Pi."""

__version__ = "0.1.0"
