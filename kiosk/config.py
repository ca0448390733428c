"""Configuration: one pydantic model per section, loaded from TOML.

Where the file comes from: `--config PATH`, else `$KIOSK_CONFIG`, else
`/etc/kiosk/kiosk.toml`; with no file at all, built-in defaults that run on a
laptop (replay camera, mock GPIO, off-screen display, local broker).

Relative paths in a file are relative to the file's own folder; the state
files in `[paths]` are relative to `paths.state_dir`. Secrets (passwords,
keys) are never written in the config: it names the files that hold them.
"""

from __future__ import annotations

import os
import reprlib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kiosk.errors import ConfigError
from kiosk.topics import ID_PATTERN

DEFAULT_CONFIG_PATH = Path("/etc/kiosk/kiosk.toml")
# Bounds on the file before it is parsed: a kiosk config is a few KiB, two tables deep.
MAX_CONFIG_BYTES = 1024 * 1024
MAX_CONFIG_LINE = 4096
MAX_CONFIG_DEPTH = 16
# Values in error messages are cut short, so a hostile value cannot flood the report.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict = 4, 120, 120, 20, 20
_TOO_DEEP = f"arrays or tables nested more than {MAX_CONFIG_DEPTH} deep; no kiosk key is"
ENV_CONFIG = "KIOSK_CONFIG"
# Status-list codes that refuse entry unless `policy.blocked_statuses` says otherwise.
DEFAULT_BLOCKED = frozenset({"F0", "F1", "quarantine"})
DccType = Literal["vaccination", "test", "recovery"]
AcceptedFormat = Literal["national", "cccd", "dcc"]


def _relative_to_config(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is None or path.is_absolute():
        return path.expanduser()
    return Path(base) / path.expanduser()


ConfigPath = Annotated[Path, AfterValidator(_relative_to_config)]


def _default_state_dir() -> Path:
    # systemd sets STATE_DIRECTORY for StateDirectory=kiosk; a laptop uses XDG.
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "kiosk"


class Section(BaseModel):
    """Base of every section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceConfig(Section):
    """This kiosk: its identity and what it is for."""

    id: str = Field(
        "laptop-kiosk",
        pattern=ID_PATTERN,
        description="Device id; the MQTT client id and username, and `kid` of its event signatures.",
    )
    mode: Literal["kiosk", "inspector"] = Field(
        "kiosk", description="`kiosk` at an entrance; `inspector` on a street inspector's handheld."
    )


class DestinationConfig(Section):
    """The venue this kiosk stands at, and how entries are counted."""

    id: str = Field(
        "demo-venue", pattern=ID_PATTERN, description="Destination (venue) id assigned by the authority."
    )
    venue_name: str = Field(
        "Demo venue", min_length=1, max_length=80, description="Name shown on the screen."
    )
    direction: Literal["in", "out", "auto"] = Field(
        "in", description="Whether a scan is an entry, an exit, or toggles per person."
    )
    presence_timeout_s: int = Field(
        4 * 3600,
        ge=60,
        le=7 * 86400,
        description="In auto mode, a person not seen leaving for this long is no longer counted present.",
    )
    capacity: int | None = Field(
        None,
        examples=[200],
        ge=1,
        le=100_000,
        description="Refuse entry when this many people are present (auto mode, or lanes sharing presence); none = no limit.",
    )
    share_presence: bool = Field(
        False,
        description="Share who is inside with the destination's other kiosks (lanes) through the broker; needs paths.peers_file.",
    )
    second_entry: Literal["allow", "refuse"] = Field(
        "allow",
        description="An entry of someone counted inside and not seen leaving: let in again (recorded as already_inside) or refuse.",
    )
    language: Literal["vi", "en"] = Field("vi", description="Language of the screen's messages.")

    @model_validator(mode="after")
    def _capacity_needs_auto(self) -> DestinationConfig:
        if self.capacity is not None and self.direction != "auto" and not self.share_presence:
            raise ValueError(
                'capacity needs direction = "auto" or share_presence = true (occupancy is only known'
                " when exits are scanned)"
            )
        return self


# systemd/kiosk.service's WatchdogSec. The loop pets the watchdog every half of it, so a read
# that blocks for the stall timeout right after a pet must end within the other half, with room
# for the close and the fault screen that follow (tests/test_systemd_unit.py keeps the two in step).
UNIT_WATCHDOG_S = 10.0
MAX_STALL_TIMEOUT_S = 4.0


class CameraConfig(Section):
    """Where frames come from and how the camera is tuned."""

    backend: Literal["replay", "picamera2", "v4l2"] = Field(
        "replay", description="Frame source: Pi camera module, USB webcam, or recorded images/video."
    )
    source: str = Field(
        "",
        description="replay: image file, folder, glob or video (empty = built-in demo scene); v4l2: device index or path.",
    )
    width: int = Field(1280, ge=160, le=4608, description="Frame width used for decoding, pixels.")
    height: int = Field(720, ge=120, le=2592, description="Frame height used for decoding, pixels.")
    fps: float = Field(
        30.0,
        gt=0,
        le=120,
        description="Frames per second; replay is paced at this rate unless `replay_realtime` is false.",
    )
    replay_realtime: bool = Field(
        True,
        description="replay: pace frames at `fps` (true) or deliver them as fast as they are read (false).",
    )
    replay_loop: bool = Field(
        False, description="replay: start again at the end instead of reporting end of stream."
    )
    autofocus: Literal["continuous", "manual", "none"] = Field(
        "continuous",
        description=(
            "picamera2: continuous macro autofocus, or a fixed lens position, where the camera has "
            "autofocus (Camera Module 3); a fixed-focus camera ignores it (logged at start)."
        ),
    )
    lens_position: float = Field(
        4.0,
        ge=0.0,
        le=32.0,
        description="picamera2: fixed lens position in dioptres when autofocus is `manual` (4 = 25 cm).",
    )
    max_exposure_us: int = Field(
        8000,
        ge=100,
        le=1_000_000,
        description="picamera2: longest exposure auto-exposure may choose (gain rises instead), against motion blur, microseconds.",
    )
    metering: Literal["centre", "spot", "matrix"] = Field(
        "spot", description="picamera2: AE metering; spot favours a bright phone screen in the middle."
    )
    stall_timeout_s: float = Field(
        3.0,
        gt=0,
        description="A camera that delivers no frame for this long is reported as stalled; at most "
        f"{MAX_STALL_TIMEOUT_S:g} s, so that one blocked read never outlasts the unit's WatchdogSec "
        f"({UNIT_WATCHDOG_S:g} s).",
    )

    @field_validator("stall_timeout_s")
    @classmethod
    def _within_the_watchdog(cls, value: float) -> float:
        if value > MAX_STALL_TIMEOUT_S:
            raise ValueError(
                f"at most {MAX_STALL_TIMEOUT_S:g} s: a read blocked longer outlasts the unit's "
                f"WatchdogSec={UNIT_WATCHDOG_S:g} and systemd restarts the kiosk"
            )
        return value


class DecoderConfig(Section):
    """QR decoding backend and its effort."""

    backend: Literal["zxingcpp", "pyzbar"] = Field(
        "zxingcpp",
        description="Decoding library; zxing-cpp is the fastest and reads the most codes (docs/performance.md).",
    )
    try_rotate: bool = Field(True, description="zxing-cpp: also try 90/180/270 degree rotations.")
    try_downscale: bool = Field(
        True,
        description="zxing-cpp: when the full-resolution pass reads nothing, try the kiosk's own half-resolution pass (helps large, close and motion-smeared codes; docs/performance.md).",
    )
    inverted: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Light-on-dark codes (phone dark mode): `auto` tries inversion only when the normal pass finds nothing.",
    )
    micro_qr: bool = Field(False, description="zxing-cpp: also read Micro QR codes.")
    all_codes: bool = Field(
        False,
        description="zxing-cpp: report every code in a frame; false stops at the first one read, which is faster (one person shows one code).",
    )


class DccRules(Section):
    """What a vaccine passport (EU DCC) must show to pass."""

    accepted_types: list[DccType] = Field(
        default_factory=lambda: list(get_args(DccType)),
        min_length=1,
        description="Which certificate types are accepted (others fail with dcc_type_not_accepted).",
    )
    require_verified: bool = Field(
        True,
        description="Refuse a passport whose signature was not checked (no trust list): dcc_not_verifiable.",
    )
    complete_vaccination: bool = Field(
        True, description="A vaccination must be the last dose of its series (dn >= sd)."
    )
    min_days_after_dose: int = Field(
        14, ge=0, le=365, description="Days after the last dose before a vaccination counts."
    )
    test_max_age_hours: int = Field(
        72, ge=1, le=720, description="A negative test counts for this many hours after sampling."
    )
    recovery_max_days: int = Field(
        180,
        ge=1,
        le=3650,
        description="A recovery certificate counts for this many days after the first positive test.",
    )


class PolicyConfig(Section):
    """The decision rules of this destination."""

    accepted_formats: list[AcceptedFormat] = Field(
        default_factory=lambda: list(get_args(AcceptedFormat)),
        min_length=1,
        description="Card formats this destination accepts.",
    )
    dcc: DccRules = Field(default_factory=DccRules, description="Vaccine passport rules.")
    repeat_window_s: int = Field(
        10,
        ge=0,
        le=3600,
        description="The same identity seen again within this many seconds is the same scan.",
    )
    trust_list: ConfigPath | None = Field(
        None,
        examples=["trust/"],
        description="PEM file or folder of document-signer certificates for vaccine passports; none = DCCs cannot be verified.",
    )
    authority_keys: ConfigPath | None = Field(
        None,
        examples=["authority.pem"],
        description="PEM file of the authority's Ed25519 public keys (status lists, inspector cards, commands).",
    )
    blocked_statuses: list[str] = Field(
        default_factory=lambda: sorted(DEFAULT_BLOCKED), description="Status-list codes that refuse entry."
    )


class FeedbackConfig(Section):
    """LEDs, buzzer, relay (BCM pin numbers) and the screen."""

    gpio: Literal["mock", "native"] = Field(
        "mock", description="`native` drives the Pi's pins (lgpio); `mock` uses gpiozero's MockFactory."
    )
    leds: Literal["pair", "rgb"] = Field(
        "pair", description="`pair`: a green and a red LED; `rgb`: one RGB LED (red, green and blue pins)."
    )
    leds_active_high: bool = Field(
        True, description="LEDs light on a high level (false for a common-anode RGB LED)."
    )
    green_pin: int | None = Field(17, ge=0, le=27, description="Green LED pin (or the RGB LED's green leg).")
    red_pin: int | None = Field(27, ge=0, le=27, description="Red LED pin (or the RGB LED's red leg).")
    blue_pin: int | None = Field(
        None, examples=[24], ge=0, le=27, description='The RGB LED\'s blue leg; needed when `leds = "rgb"`.'
    )
    buzzer_pin: int | None = Field(22, ge=0, le=27, description="Buzzer pin.")
    buzzer_kind: Literal["active", "passive"] = Field(
        "active", description="Active buzzers beep when powered; passive ones play tones (TonalBuzzer)."
    )
    relay_pin: int | None = Field(
        None, examples=[23], ge=0, le=27, description="Door or turnstile relay pin; none = no relay."
    )
    relay_pulse_s: float = Field(1.0, gt=0, le=30, description="How long the relay is held on a pass.")
    relay_active_high: bool = Field(True, description="Whether the relay board switches on a high level.")
    beep_s: float = Field(0.12, ge=0.02, le=1, description="Length of one short beep, seconds.")
    result_hold_s: float = Field(3.0, gt=0, le=30, description="How long a pass or fail stays on the screen.")
    hint_hold_s: float = Field(
        1.2, gt=0, le=10, description="How long a hint (come closer, hold still) stays on the screen."
    )
    street_hold_s: float = Field(
        8.0, gt=0, le=60, description="How long a street check's finding stays on the handheld's screen."
    )
    no_qr_pin: int | None = Field(
        None,
        examples=[6],
        ge=0,
        le=27,
        description="Push button (to GND) that records a person without a QR code; none = no button.",
    )
    screen: Literal["auto", "window", "fullscreen", "offscreen", "none"] = Field(
        "auto", description="Fullscreen on the Pi, a window on a desktop, off-screen without a display."
    )
    screen_width: int = Field(800, ge=320, le=3840, description="Screen width when not fullscreen, pixels.")
    screen_height: int = Field(480, ge=240, le=2160, description="Screen height when not fullscreen, pixels.")
    preview: bool = Field(False, description="Show a small live camera preview with found codes outlined.")
    sound: bool = Field(
        False, description="Play tones through a speaker (pygame.mixer) as well as the buzzer."
    )

    @model_validator(mode="after")
    def _pins_distinct(self) -> FeedbackConfig:
        used = (self.green_pin, self.red_pin, self.blue_pin, self.buzzer_pin, self.relay_pin, self.no_qr_pin)
        pins = [p for p in used if p is not None]
        if len(pins) != len(set(pins)):
            raise ValueError(f"two parts share a pin: {sorted(pins)}")
        return self

    @model_validator(mode="after")
    def _rgb_needs_three_pins(self) -> FeedbackConfig:
        if self.leds == "rgb" and None in (self.red_pin, self.green_pin, self.blue_pin):
            raise ValueError('leds = "rgb" needs red_pin, green_pin and blue_pin')
        return self


class TlsConfig(Section):
    """TLS files for the broker connection."""

    ca_file: ConfigPath | None = Field(
        None,
        examples=["ca.crt"],
        description="CA certificate that signed the broker's certificate; none = the system's CAs.",
    )
    cert_file: ConfigPath | None = Field(
        None, examples=["device.crt"], description="This device's client certificate."
    )
    key_file: ConfigPath | None = Field(
        None, examples=["device-tls.key"], description="This device's client certificate key (mode 0600)."
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class UplinkConfig(Section):
    """The MQTT connection to the authority's broker."""

    enabled: bool = Field(True, description="Publish events; false = spool only.")
    broker: str = Field(
        "mqtt://127.0.0.1:1883", description="Broker URL: mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)."
    )
    topic_prefix: str = Field(
        "kiosk/v1", pattern=r"^[A-Za-z0-9_/-]+[A-Za-z0-9_-]$", description="Prefix of every topic."
    )
    username: str | None = Field(
        None,
        examples=["kiosk-0001"],
        max_length=128,
        description="Broker username (default: the device id when a password file is given).",
    )
    password_file: ConfigPath | None = Field(
        None, examples=["broker.password"], description="File holding the broker password (mode 0600)."
    )
    tls: TlsConfig = Field(default_factory=TlsConfig, description="TLS files.")
    keepalive_s: int = Field(
        30, ge=5, le=600, description="MQTT keepalive; the broker publishes our will after 1.5 times this."
    )
    inflight: int = Field(
        32, ge=1, le=1000, description="Events published and not yet acknowledged by the broker, at most."
    )
    backoff_min_s: float = Field(1.0, gt=0, le=60, description="First reconnect delay.")
    backoff_max_s: float = Field(
        60.0, gt=0, le=3600, description="Longest reconnect delay (full jitter below it)."
    )
    state_interval_s: int = Field(
        60, ge=5, le=3600, description="How often the retained state (health) is refreshed."
    )
    resend_unacked_s: float = Field(
        120.0,
        gt=0,
        le=86400,
        description="An event the broker accepted but that central's newest ack does not cover this long after is sent again (brokers may lose accepted messages); checked on every ack and on a timer.",
    )
    resend_unacked_max_s: float = Field(
        1800.0,
        gt=0,
        le=86400,
        description="Longest wait between two timer checks for unacknowledged events: the wait starts at resend_unacked_s and doubles after each check that sent events again while no ack comes (central away); a check that finds nothing starts it over.",
    )
    max_statuslist_mb: float = Field(
        8.0, gt=0, le=64, description="A status list message larger than this is dropped and counted."
    )
    plain_identity: bool = Field(
        False,
        description="Privacy trade-off: events carry card identities as plain text (`plain:ID`) instead of sealed to the authority; only where the destination's rules demand it (central refuses them unless the destination is configured for them).",
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> UplinkConfig:
        if self.backoff_min_s > self.backoff_max_s:
            raise ValueError("backoff_min_s must not exceed backoff_max_s")
        return self

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must look like mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
        if parts.password is not None:
            raise ValueError("no password in the URL: put it in a file named by uplink.password_file")
        try:
            _ = parts.port
        except ValueError as e:
            raise ValueError(f"bad port: {e}") from e
        return value


class SpoolConfig(Section):
    """How long events are kept and how much disk they may use."""

    retention_days: int = Field(
        14, ge=1, le=3650, description="Acknowledged events are kept this many days, then deleted."
    )
    disk_budget_mb: int = Field(
        512,
        ge=1,
        le=1_000_000,
        description="The spool may grow to this size; an alarm is raised at `alarm_fraction` of it.",
    )
    alarm_fraction: float = Field(
        0.8,
        gt=0,
        lt=1,
        description="Fraction of the disk budget at which the screen and state topic raise an alarm.",
    )


class LogConfig(Section):
    """What the journal may hold about the people who scan."""

    decision_name: Literal["none", "masked"] = Field(
        "none",
        description="The decision log line's name: `none` (no personal datum), or `masked` as the screen shows it (NGUYEN V** A).",
    )


class PathsConfig(Section):
    """Where state lives; relative names are inside `state_dir`."""

    state_dir: ConfigPath = Field(
        default_factory=_default_state_dir,
        examples=["/var/lib/kiosk"],
        description="Folder of the kiosk's state (systemd: /var/lib/kiosk).",
    )
    key_file: Path = Field(Path("device.key"), description="Device Ed25519 private key (PEM, mode 0600).")
    identity_key_file: Path = Field(
        Path("identity.key"),
        description="No longer read (schema-v1 events hashed identities with it); delete the file after upgrading.",
    )
    destination_key_file: Path = Field(
        Path("destination.key"),
        description="This venue's key (32 bytes, 0600), shared only by its kiosks: repeats and presence.",
    )
    sealing_key_file: Path = Field(
        Path("authority-seal.pem"),
        description="The authority's X25519 public key (PEM) that card identities in events are sealed to.",
    )
    spool_file: Path = Field(Path("spool.sqlite3"), description="The durable event spool (SQLite).")
    statuslist_file: Path = Field(
        Path("statuslist.json"), description="The newest valid status list received."
    )
    peers_file: Path = Field(
        Path("peers.json"),
        description="The registration records of the destination's other kiosks (destination.share_presence).",
    )

    @model_validator(mode="after")
    def _inside_state_dir(self) -> PathsConfig:
        for name in (
            "key_file",
            "identity_key_file",
            "destination_key_file",
            "sealing_key_file",
            "spool_file",
            "statuslist_file",
            "peers_file",
        ):
            value: Path = getattr(self, name)
            if not value.is_absolute():
                object.__setattr__(self, name, self.state_dir / value)
        return self


class Settings(Section):
    """The whole configuration of one kiosk."""

    device: DeviceConfig = Field(default_factory=DeviceConfig)
    destination: DestinationConfig = Field(default_factory=DestinationConfig)
    camera: CameraConfig = Field(default_factory=CameraConfig)
    decoder: DecoderConfig = Field(default_factory=DecoderConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    uplink: UplinkConfig = Field(default_factory=UplinkConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)


def find_config(explicit: Path | None = None) -> Path | None:
    """The config file to use, or None for the built-in defaults."""
    if explicit is not None:
        return explicit
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def load_config(path: Path | None = None) -> Settings:
    """Load and validate the configuration; raise ConfigError listing every problem."""
    found = find_config(path)
    if found is None:
        return Settings()
    return parse_config(_read_toml(found), base_dir=found.resolve().parent)


def parse_config(data: dict[str, Any], *, base_dir: Path | None = None) -> Settings:
    """Validate a configuration mapping (as read from TOML)."""
    try:
        return Settings.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as e:
        problems = [_describe(err) for err in e.errors()]
        raise ConfigError(f"{len(problems)} problem(s) in the configuration", problems) from e


def _read_toml(path: Path) -> dict[str, Any]:
    text = _config_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    except RecursionError as e:  # tomllib recurses once per level of nested arrays and inline tables
        raise ConfigError(f"{path}: {_TOO_DEEP}") from e
    _check_depth(path, data)
    return data


def _config_text(path: Path) -> str:
    """The file as text, refused before parsing when it is too big for a config or has a huge line."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {path}") from e
    except (PermissionError, IsADirectoryError) as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from e
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; not a kiosk config file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text: {e}") from e
    # tomllib takes time quadratic in a dotted key's length; a line bound keeps any key short.
    longest = max(((len(line), n) for n, line in enumerate(text.splitlines(), 1)), default=(0, 0))
    if longest[0] > MAX_CONFIG_LINE:
        raise ConfigError(f"{path}: line {longest[1]} is longer than {MAX_CONFIG_LINE} characters")
    return text


def _check_depth(path: Path, data: dict[str, Any]) -> None:
    """Refuse nesting deeper than any kiosk key, walking without recursion."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{path}: {_TOO_DEEP}")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)


def _describe(err: Any) -> str:
    key = ".".join(str(part) for part in err["loc"]) or "(top level)"
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown key (misspelt? see provisioning/kiosk.toml.example)"
    if err["type"] == "missing":
        return f"{key}: {message}"
    return f"{key} = {_SHORT.repr(err['input'])}: {message}"


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data, with secret-bearing values hidden."""
    data = settings.model_dump(mode="json")
    if data["uplink"]["username"]:
        data["uplink"]["username"] = "***"
    return data
