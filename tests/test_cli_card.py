"""`kiosk card check` and `kiosk card make` run in-process, with real keys, lists and images."""

from __future__ import annotations

import io
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image

from kiosk import cardmaker
from kiosk import statuslist as sl
from kiosk.cli import main
from kiosk.keys import generate_device_key, public_pem

AT = "2021-10-01T10:00:00+07:00"
QID = "162979388586171100"
NATIONAL = cardmaker.national_payload()


def _check(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict]:
    assert main(["card", "check", "--at", AT, *argv]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.fixture
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KIOSK_CONFIG", raising=False)
    monkeypatch.setattr("kiosk.config.DEFAULT_CONFIG_PATH", tmp_path / "none.toml")


@pytest.fixture
def signer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    key, cert = tmp_path / "dsc.key", tmp_path / "dsc.pem"
    paths = ["--out-key", str(key), "--out-cert", str(cert)]
    assert main(["card", "make", "dcc-signer", *paths, "--valid-from", "2021-01-01T00:00:00+00:00"]) == 0
    assert "kid" in capsys.readouterr().out
    return key, cert


def _make(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    if argv[0] == "dcc":
        argv = (*argv, "--issued-at", "2021-09-30T00:00:00+07:00")
    assert main(["card", "make", *argv]) == 0
    return capsys.readouterr().out.strip()


@pytest.mark.usefixtures("no_config")
def test_check_prints_one_json_line_per_payload(capsys: pytest.CaptureFixture[str]) -> None:
    national, poster = _check(capsys, NATIONAL, "https://example.com/qr/venue-1")
    assert national["format"] == "national" and national["identity"] == QID
    assert (national["verdict"], national["reason"]) == ("pass", "ok")
    assert national["message"].startswith("Mời vào")
    assert national["fields"]["id_number"] == "*********317"
    assert "0123232422" not in json.dumps(national)  # no phone number
    assert (poster["verdict"], poster["reason"], poster["fields"]) == ("fail", "old_venue_qr", {})


@pytest.mark.usefixtures("no_config")
def test_check_reads_stdin_and_decides_each_payload_on_its_own(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(f"{NATIONAL}\r\n\n{NATIONAL}\nhello\n".encode()))
    monkeypatch.setattr("sys.stdin", stdin)
    results = _check(capsys, "--lang", "en")
    assert [r["reason"] for r in results] == ["ok", "ok", "unrecognised"]
    assert results[0]["message"].startswith("Welcome")


@pytest.mark.usefixtures("no_config")
def test_check_enforces_a_signed_status_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = generate_device_key(tmp_path / "authority.key")
    (tmp_path / "authority.pem").write_text(public_pem(key.public_key()))
    rows = [sl.Entry(QID, sl.Status("F0"))]
    token = sl.sign_payload(sl.build_payload(rows, version=1, issued=datetime.now(UTC)), key)
    (tmp_path / "list.jws").write_bytes(token)
    args = ["--statuslist", str(tmp_path / "list.jws"), "--keys", str(tmp_path / "authority.pem"), NATIONAL]
    (result,) = _check(capsys, *args)
    assert (result["verdict"], result["reason"], result["status"]) == ("fail", "status_blocked", "F0")


def test_check_uses_the_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text('[policy]\naccepted_formats = ["cccd"]\n[destination]\nlanguage = "en"\n')
    (result,) = _check(capsys, "--config", str(config), NATIONAL)
    assert result["reason"] == "format_not_accepted"
    assert result["message"].startswith("This kind of code")


@pytest.mark.usefixtures("no_config")
def test_dcc_made_with_a_signer_passes_against_its_trust_list(
    signer: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    key, cert = signer
    payload = _make(capsys, "dcc", "--key", str(key), "--cert", str(cert), "--date", "2021-09-01")
    assert payload.startswith("HC1:")
    (trusted,) = _check(capsys, "--trust", str(cert), payload)
    assert (trusted["verdict"], trusted["fields"]["kind"], trusted["fields"]["dose"]) == ("pass", "v", "2/2")
    (untrusted,) = _check(capsys, payload)
    assert untrusted["reason"] == "dcc_not_verifiable"


@pytest.mark.usefixtures("no_config")
@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--type", "test", "--date", "2021-10-01T08:00:00+07:00"], "ok"),
        (["--type", "test", "--date", "2021-10-01T08:00:00+07:00", "--positive"], "dcc_test_positive"),
        (["--type", "recovery", "--date", "2021-08-01"], "ok"),
        (["--dose", "1", "--of", "2", "--date", "2021-08-01"], "dcc_vaccination_incomplete"),
    ],
)
def test_dcc_kinds(
    signer: tuple[Path, Path], capsys: pytest.CaptureFixture[str], options: list[str], reason: str
) -> None:
    key, cert = signer
    payload = _make(capsys, "dcc", "--key", str(key), "--cert", str(cert), *options)
    (result,) = _check(capsys, "--trust", str(cert), payload)
    assert result["reason"] == reason


def test_signer_key_is_private(signer: tuple[Path, Path]) -> None:
    assert stat.S_IMODE(signer[0].stat().st_mode) == 0o600
    assert signer[1].read_text().startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.usefixtures("no_config")
@pytest.mark.parametrize(
    ("argv", "format_"),
    [
        (["national", "--qid", "123456789012345678"], "national"),
        (["cccd", "--name", "Trần Thị Bình", "--gender", "Nữ", "--birth-date", "1990-05-06"], "cccd"),
    ],
)
def test_made_cards_decode_from_their_png_and_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], format_: str
) -> None:
    png = tmp_path / "card.png"
    payload = _make(capsys, *argv, "--png", str(png))
    (decoded,) = zxingcpp.read_barcodes(Image.open(png).convert("L"))
    assert decoded.bytes.decode("utf-8") == payload
    (result,) = _check(capsys, payload)
    assert (result["format"], result["verdict"]) == (format_, "pass")


@pytest.mark.usefixtures("no_config")
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["card", "check", "--trust", "missing-trust.pem", "x"], "missing-trust.pem"),
        (["card", "check", "--statuslist", "list.jws", "x"], "--keys"),
        (["card", "check", "--statuslist", "missing.jws", "--keys", "missing.pem", "x"], "missing.jws"),
        (["card", "check", "--config", "missing.toml", "x"], "not found"),
        (["card", "make", "dcc", "--key", "missing.key", "--cert", "missing.pem"], "missing.key"),
        (["card", "make", "national", "--png", "no/such/folder/x.png"], "cannot write the QR image"),
    ],
)
def test_bad_files_exit_2_with_a_message(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    fragment: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert fragment in capsys.readouterr().err


@pytest.mark.usefixtures("no_config")
def test_a_tampered_status_list_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = generate_device_key(tmp_path / "authority.key")
    (tmp_path / "authority.pem").write_text(public_pem(key.public_key()))
    (tmp_path / "list.jws").write_bytes(b"eyJ.not.valid")
    args = [
        "card",
        "check",
        "--statuslist",
        str(tmp_path / "list.jws"),
        "--keys",
        str(tmp_path / "authority.pem"),
    ]
    assert main([*args, NATIONAL]) == 2
    assert "status list refused" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["card", "check", "--at", "2021-10-01T10:00:00", "x"],
        ["card", "check", "--at", "soon", "x"],
        ["card", "check", "--lang", "fr", "x"],
        ["card", "make", "cccd", "--gender", "X"],
        ["card", "make", "cccd", "--birth-date", "18/01/1993"],
        ["card", "make", "dcc-signer", "--out-key", "k", "--out-cert", "c", "--alg", "RS1"],
        ["card", "make", "dcc-signer", "--out-key", "k", "--out-cert", "c", "--days", "0"],
    ],
)
def test_bad_options_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "error" in capsys.readouterr().err
