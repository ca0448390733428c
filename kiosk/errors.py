"""The one exception hierarchy of kiosk.

Every class also subclasses the matching built-in, so callers that only know
the built-ins still catch them. Messages tell the operator what to do.
"""


class KioskError(Exception):
    """Base of every error kiosk raises on purpose."""


class ConfigError(KioskError, ValueError):
    """The configuration is invalid; `problems` lists every one of them."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


class CameraError(KioskError, RuntimeError):
    """The camera is missing, stalled or delivered something unusable."""


class DecoderError(KioskError, RuntimeError):
    """A decoder backend is unavailable or misconfigured."""


class ImageError(KioskError, ValueError):
    """An image file could not be read or decoded."""


class TrustListError(KioskError, ValueError):
    """A trust list (document-signer certificates) could not be loaded."""


class StatusListError(KioskError, ValueError):
    """A status list is unsigned, badly signed, older than ours, or malformed."""


class SignatureError(KioskError, ValueError):
    """A signature did not verify, or a signed object is malformed."""


class DeviceKeyError(KioskError, OSError):
    """A device or authority key is missing, unreadable or has unsafe permissions."""


class SpoolError(KioskError, OSError):
    """The event spool could not be opened or written."""


class UplinkError(KioskError, ConnectionError):
    """The MQTT broker refused us or could not be reached."""


class BrokerMessageError(KioskError, ValueError):
    """A message from the broker was refused; `reason` is its code in the uplink's `rejected` counts."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class FeedbackError(KioskError, RuntimeError):
    """The LEDs, buzzer, relay or screen could not be driven."""


class ProvisionError(KioskError, ValueError):
    """Provisioning was asked for something it cannot do safely."""


class CameraEnded(CameraError):  # noqa: N818 - the end of a replay, not a fault
    """A replay source reached the end of its images or video (and is not looping)."""


class StateError(KioskError, ValueError):
    """A device state message breaks a bound, or its signed payload is not a valid state."""


class EventError(SignatureError):
    """A correctly signed token whose payload is not a valid schema-v1 scan event."""

    def __init__(self, detail: str, *, signed: tuple[str, int, int] | None = None) -> None:
        super().__init__(detail)
        # (signer, epoch, seq) the payload still names in bounds: the signer vouches for that place.
        self.signed = signed


class StoreError(KioskError, OSError):
    """The central database could not be opened, created or written."""


class RegistryError(KioskError, ValueError):
    """A device registration record is malformed, or names an unknown device."""


class SignerKeyError(KioskError, ValueError):
    """A vaccine-passport signer key or certificate (for example cards) is unreadable or mismatched."""


class InspectorCardError(KioskError, ValueError):
    """An inspector card cannot be made as asked (bad id, name or validity period)."""


class UnsafeJSONError(KioskError, ValueError):
    """A JSON text from outside is malformed, too large, too deep, not UTF-8 or has a repeated key."""
