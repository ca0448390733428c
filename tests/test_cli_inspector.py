"""`kiosk inspector keygen|make|verify` run in-process, with real key files and a real QR image."""

from __future__ import annotations

import io
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kiosk.camera import read_image
from kiosk.cards.inspector import PREFIX, InspectorCard, parse_inspector_card
from kiosk.cli import main
from kiosk.config import DecoderConfig
from kiosk.decoder import open_decoder
from kiosk.keys import load_public_keys

VALID_FROM = "2021-09-01T08:00:00+07:00"


@pytest.fixture
def authority(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    key, pub = tmp_path / "authority.key", tmp_path / "authority.pem"
    assert main(["inspector", "keygen", "--out-key", str(key), "--out-pub", str(pub)]) == 0
    capsys.readouterr()
    return key, pub


def _make(key: Path, *extra: str) -> list[str]:
    return ["inspector", "make", "--key", str(key), "--inspector", "INS-0042", *extra]


def test_keygen_writes_a_private_key_only_its_owner_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "a.key"
    assert main(["inspector", "keygen", "--out-key", str(key)]) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "a.key.pub.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    kid = capsys.readouterr().out.split()[1].rstrip(":")
    assert list(load_public_keys(tmp_path / "a.key.pub.pem")) == [kid]
    assert main(["inspector", "keygen", "--out-key", str(key)]) == 2
    assert "--force" in capsys.readouterr().err


def test_make_then_verify_round_trip(
    authority: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, pub = authority
    assert main([*_make(key, "--name", "Lê Văn Tám", "--valid-from", VALID_FROM, "--days", "10")]) == 0
    made = capsys.readouterr()
    payload = made.out.strip()
    assert payload.startswith(PREFIX) and "\n" not in payload
    assert "inspector INS-0042: valid 2021-09-01T08:00:00+07:00 to 2021-09-11T08:00:00+07:00" in made.err
    assert (
        main(["inspector", "verify", payload, "--keys", str(pub), "--at", "2021-09-05T12:00:00+07:00"]) == 0
    )
    assert json.loads(capsys.readouterr().out) == {
        "valid": True,
        "inspector": "INS-0042",
        "name": "Lê Văn Tám",
        "valid_from": "2021-09-01T01:00:00+00:00",
        "valid_until": "2021-09-11T01:00:00+00:00",
        "kid": next(iter(load_public_keys(pub))),
    }


def test_verify_reads_stdin_and_refuses_an_expired_card(
    authority: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key, pub = authority
    until = "2021-09-02T08:00:00+07:00"
    assert main([*_make(key, "--valid-from", VALID_FROM, "--valid-until", until)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(capsys.readouterr().out))
    assert main(["inspector", "verify", "-", "--keys", str(pub), "--at", until]) == 1
    refused = json.loads(capsys.readouterr().out)
    assert (refused["valid"], refused["reason"]) == (False, "inspector_card_expired")
    assert refused["message_vi"] == "Thẻ kiểm tra đã hết hạn"
    assert refused["message_en"] == "Inspector card expired"


def test_a_card_of_another_authority_is_an_unknown_key(
    tmp_path: Path, authority: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.key"
    assert main(["inspector", "keygen", "--out-key", str(other)]) == 0
    capsys.readouterr()
    assert main(_make(other)) == 0
    payload = capsys.readouterr().out.strip()
    assert main(["inspector", "verify", payload, "--keys", str(authority[1])]) == 1
    assert json.loads(capsys.readouterr().out)["reason"] == "inspector_card_unknown_key"


def test_the_png_is_read_back_by_the_kiosk_decoder(tmp_path: Path, authority: tuple[Path, Path]) -> None:
    key, pub = authority
    png = tmp_path / "card.png"
    assert main([*_make(key, "--name", "Trần Thị Bích Ngọc", "--png", str(png))]) == 0
    symbols = open_decoder(DecoderConfig()).decode(read_image(png)).symbols
    assert len(symbols) == 1
    card = parse_inspector_card(symbols[0].raw, keys=load_public_keys(pub), now=datetime.now(UTC))
    assert isinstance(card, InspectorCard) and card.name == "Trần Thị Bích Ngọc"


def test_the_default_validity_starts_now_and_lasts_thirty_days(
    authority: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    assert main(_make(authority[0])) == 0
    payload = capsys.readouterr().out.strip().encode()
    card = parse_inspector_card(payload, keys=load_public_keys(authority[1]), now=datetime.now(UTC))
    assert isinstance(card, InspectorCard)
    assert before <= card.valid_from <= datetime.now(UTC)
    assert (card.valid_until - card.valid_from).days == 30


@pytest.mark.parametrize(
    "extra",
    [
        ["--days", "3", "--valid-until", "2021-10-01T00:00:00+07:00"],
        ["--valid-from", "2021-09-01T08:00:00"],
        ["--days", "0"],
    ],
)
def test_contradictory_or_zoneless_options_are_usage_errors(
    authority: tuple[Path, Path], extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*_make(authority[0]), *extra])
    assert exited.value.code == 2
    assert capsys.readouterr().err


def test_a_card_the_kiosk_could_not_read_is_refused_with_what_to_fix(
    authority: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad_id = ["inspector", "make", "--key", str(authority[0]), "--inspector", "INS 42"]
    assert main(bad_id) == 2
    assert "letters, digits" in capsys.readouterr().err
    backwards = ["--valid-from", VALID_FROM, "--valid-until", "2021-08-01T00:00:00+07:00"]
    assert main([*_make(authority[0]), *backwards]) == 2
    assert "before it starts" in capsys.readouterr().err
    assert main(["inspector", "make", "--key", str(authority[1]), "--inspector", "I1"]) == 2
    assert "readable by others" in capsys.readouterr().err  # the public key, given by mistake
