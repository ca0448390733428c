"""Hostile input: each class is refused with a clear error, and the inputs after it are still processed."""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import base45
import cv2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiosk import cardmaker, jws
from kiosk.cards import Card, Rejection, parse_card
from kiosk.cards.masking import mask_text
from kiosk.cli import main
from kiosk.errors import SignatureError
from kiosk.reasons import Reason
from kiosk.scenes import Scene, render
from kiosk.trustlist import TrustList

NOW = datetime(2021, 10, 1, 3, 0, tzinfo=UTC)
NATIONAL = cardmaker.national_payload()
CCCD = cardmaker.cccd_payload()
# Decimal digits of other scripts: Python's `\d` and int() take them, the card formats do not.
FOREIGN_DIGITS = st.characters(categories=["Nd"]).filter(lambda c: not c.isascii())
FUNCTION_SCOPED = [HealthCheck.function_scoped_fixture]


def _parse(payload: str | bytes) -> Card | Rejection:
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    return parse_card(data, trust=None, now=NOW)


@pytest.fixture
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KIOSK_CONFIG", raising=False)
    monkeypatch.setattr("kiosk.config.DEFAULT_CONFIG_PATH", tmp_path / "none.toml")


# ---------------------------------------------------------------- ASCII digits only


@given(st.sampled_from([NATIONAL, CCCD]), st.data())
def test_a_foreign_digit_anywhere_makes_a_payload_invalid(payload: str, data: st.DataObject) -> None:
    # Every digit of a number field (the CCCD address is free text, where any character may stand).
    address = payload.split("|")[5] if payload == CCCD else "\0"
    free = range(payload.find(address), payload.find(address) + len(address))
    positions = [i for i, c in enumerate(payload) if c.isdigit() and i not in free]
    i = data.draw(st.sampled_from(positions))
    mangled = payload[:i] + data.draw(FOREIGN_DIGITS) + payload[i + 1 :]
    assert isinstance(_parse(payload), Card)
    assert isinstance(_parse(mangled), Rejection)


def test_a_qid_in_arabic_indic_digits_is_not_a_qid() -> None:
    qid = "162979388586171100".translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    refused = _parse(cardmaker.national_payload(qid=qid))
    assert isinstance(refused, Rejection) and refused.reason is Reason.NATIONAL_INVALID
    assert "QID" in refused.detail


# ---------------------------------------------------------------- card check: bytes that are not UTF-8


@pytest.mark.usefixtures("no_config")
@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"\x00" not in b and b != b"--"))
@settings(suppress_health_check=FUNCTION_SCOPED, max_examples=40, deadline=None)
def test_card_check_reads_any_argument_bytes(capsys: pytest.CaptureFixture[str], raw: bytes) -> None:
    # argv holds bytes as the shell passed them; Python decodes them with surrogateescape.
    assert main(["card", "check", "--at", NOW.isoformat(), "--", os.fsdecode(raw), NATIONAL]) == 0
    first, last = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert first["verdict"] == "fail" or first["format"] in {"national", "cccd"}
    assert (last["verdict"], last["format"]) == ("pass", "national")


@pytest.mark.usefixtures("no_config")
def test_card_check_of_a_lone_ff_byte_is_unrecognised(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["card", "check", "--at", NOW.isoformat(), os.fsdecode(b"\xff"), NATIONAL]) == 0
    bad, good = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (bad["reason"], bad["detail"]) == ("unrecognised", "not UTF-8 text")
    assert good["verdict"] == "pass"


# ---------------------------------------------------------------- scan-image: decompression bombs


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(w: int, h: int) -> bytes:
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")


def _jpeg(w: int, h: int) -> bytes:
    frame = struct.pack(">BHHB", 8, h, w, 1) + bytes([1, 0x11, 0])
    return b"\xff\xd8\xff\xc0" + struct.pack(">H", len(frame) + 2) + frame + b"\xff\xd9"


def _gif(w: int, h: int) -> bytes:
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0)
    return b"GIF89a" + struct.pack("<HHBBB", w, h, 0, 0, 0) + image + b"\x02\x02\x44\x01\x00\x3b"


def _bmp(w: int, h: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 54) + info + b"\0" * 16


def _webp(w: int, h: int) -> bytes:
    canvas = bytes(4) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    body = b"WEBPVP8X" + struct.pack("<I", len(canvas)) + canvas
    return b"RIFF" + struct.pack("<I", len(body)) + body


BOMBS: dict[str, Callable[[int, int], bytes]] = {
    "png": _png, "jpg": _jpeg, "gif": _gif, "bmp": _bmp, "webp": _webp,
}  # fmt: skip


def _scan(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, list[dict], str]:
    code = main(["scan-image", *map(str, paths)])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


@pytest.mark.usefixtures("no_config")
def test_scan_image_refuses_every_60000_square_bomb_and_reads_on(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bombs = [tmp_path / f"bomb.{suffix}" for suffix in BOMBS]
    for path in bombs:
        path.write_bytes(BOMBS[path.suffix[1:]](60000, 60000))
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), render(NATIONAL, Scene()))
    code, records, err = _scan(capsys, *bombs, good)
    assert code == 2
    assert [r["file"] for r in records] == [str(good)]
    assert records[0]["symbols"][0]["text"] == mask_text(NATIONAL)
    for path in bombs:
        assert f"{path}: refused," in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("no_config")
@given(
    st.sampled_from(sorted(BOMBS)),
    st.integers(7072, 65535).flatmap(
        lambda w: st.tuples(st.just(w), st.integers(50_000_001 // w + 1, 65535))
    ),
)
@settings(suppress_health_check=FUNCTION_SCOPED, max_examples=25, deadline=None)
def test_scan_image_refuses_any_header_over_the_pixel_cap(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, suffix: str, size: tuple[int, int]
) -> None:
    path = tmp_path / f"big.{suffix}"
    path.write_bytes(BOMBS[suffix](*size))
    missing = tmp_path / "after.png"
    code, records, err = _scan(capsys, path, missing)
    assert code == 2 and records == []
    # Pillow reads a WebP header only with a decoder, which a header alone cannot feed.
    assert f"{path}: refused," in err or (suffix == "webp" and f"{path}: damaged" in err)
    assert f"{missing}: no such file" in err


# ---------------------------------------------------------------- config check: deep nesting


def _nested(kind: str, depth: int) -> str:
    if kind == "array":
        return "x = " + "[" * depth + "]" * depth + "\n"
    if kind == "array-lines":
        return "x = " + "[\n" * depth + "]\n" * depth
    if kind == "inline":
        return "x = " + "{a = " * depth + "1" + "}" * depth + "\n"
    if kind == "table":
        return "[" + ".".join(["a"] * depth) + "]\n"
    return ".".join(["a"] * depth) + " = 1\n"


NESTING = ["array", "array-lines", "inline", "table", "dotted"]


@pytest.mark.parametrize("kind", NESTING)
def test_config_check_refuses_100000_deep_nesting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(_nested(kind, 100_000))
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err and "Traceback" not in err
    assert "nested more than 16 deep" in err or "longer than 4096 characters" in err


@given(st.sampled_from(NESTING), st.integers(17, 2500))
@settings(suppress_health_check=FUNCTION_SCOPED, max_examples=30, deadline=None)
def test_config_check_refuses_any_nesting_past_16(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str, depth: int
) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(_nested(kind, depth))
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "nested more than 16 deep" in err or "longer than 4096 characters" in err


# ---------------------------------------------------------------- passports: one encoding only


@pytest.fixture(scope="module")
def signer() -> cardmaker.DccSigner:
    return cardmaker.make_dcc_signer(
        not_before=NOW - timedelta(days=300), not_after=NOW + timedelta(days=300)
    )


def _cose(signer: cardmaker.DccSigner) -> bytes:
    certificate = cardmaker.dcc_vaccination_complete(uvci="URN:UVCI:01:VN:HOSTILE")
    return cardmaker.sign1_message(
        certificate, signer=signer, issued_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=30)
    )


def _verdict(text: str, signer: cardmaker.DccSigner) -> Card | Rejection:
    return parse_card(text.encode("ascii"), trust=TrustList([signer.certificate]), now=NOW)


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=1, max_size=32))
def test_bytes_after_the_zlib_stream_are_refused(signer: cardmaker.DccSigner, tail: bytes) -> None:
    cose = _cose(signer)
    assert isinstance(_verdict(cardmaker.encode_hc1(cose), signer), Card)
    text = "HC1:" + base45.b45encode(zlib.compress(cose, 9) + tail).decode()
    refused = _verdict(text, signer)
    assert isinstance(refused, Rejection) and refused.reason is Reason.DCC_BAD_COMPRESSION
    assert "after the zlib stream" in refused.detail


@settings(max_examples=30, deadline=None)
@given(st.binary(min_size=1, max_size=32), st.booleans())
def test_bytes_after_the_cose_item_are_refused(
    signer: cardmaker.DccSigner, tail: bytes, compress: bool
) -> None:
    refused = _verdict(cardmaker.encode_hc1(_cose(signer) + tail, compress=compress), signer)
    assert isinstance(refused, Rejection) and refused.reason is Reason.DCC_BAD_COSE
    assert "after the COSE message" in refused.detail


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["a", "~", "\t", "=", "\u0660"]))
def test_a_character_outside_base45_is_refused(signer: cardmaker.DccSigner, at: int, char: str) -> None:
    text = cardmaker.encode_hc1(_cose(signer))
    i = 4 + at % (len(text) - 4)
    refused = parse_card(
        (text[:i] + char + text[i:]).encode(), trust=TrustList([signer.certificate]), now=NOW
    )
    assert isinstance(refused, Rejection) and refused.reason is Reason.DCC_BAD_BASE45


# ---------------------------------------------------------------- base64url: one spelling per value


@pytest.fixture(scope="module")
def authority() -> tuple[bytes, object]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    return jws.sign(b'{"event":"scan","n":1}' * 3, key, kid="k"), key.public_key()


@given(st.data())
def test_an_inserted_character_in_a_token_is_refused(
    authority: tuple[bytes, object], data: st.DataObject
) -> None:
    token, public = authority
    char = data.draw(st.sampled_from([b" ", b"\n", b"=", b"!", b"+", b"/", b"\xff", b"."]))
    i = data.draw(st.integers(0, len(token)))
    mangled = token[:i] + char + token[i:]
    if mangled.strip() == token:  # surrounding whitespace of the whole token is allowed
        return
    with pytest.raises(SignatureError):
        jws.verify(mangled, public)  # type: ignore[arg-type]


@given(st.binary(max_size=64))
def test_base64url_has_one_spelling(data: bytes) -> None:
    text = jws.b64url(data)
    assert jws.b64url_decode(text) == data
    standard = text.replace("-", "+").replace("_", "/")
    if standard != text:
        with pytest.raises(SignatureError, match="only A-Z"):
            jws.b64url_decode(standard)
    if len(text) % 4 in (2, 3):  # the last character carries unused bits: setting one is a second spelling
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        bumped = text[:-1] + alphabet[alphabet.index(text[-1]) ^ 1]
        with pytest.raises(SignatureError, match="not canonical"):
            jws.b64url_decode(bumped)
