"""`kiosk statuslist keygen|make|sign|verify` run in-process, with real key files."""

from __future__ import annotations

import io
import json
import stat
from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.statuslist import StatusListStore

CSV = (
    "identity,status,until\n001093029317,F0\n"
    "038200001234,quarantine,2021-09-15\n# a comment\n079300000001,F2\n"
)


@pytest.fixture
def authority(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    key, pub = tmp_path / "authority.key", tmp_path / "authority.pem"
    assert main(["statuslist", "keygen", "--out-key", str(key), "--out-pub", str(pub)]) == 0
    capsys.readouterr()
    return key, pub


def _make_and_sign(tmp_path: Path, key: Path, version: int = 3) -> Path:
    (tmp_path / "list.csv").write_text(CSV)
    payload, token = tmp_path / "list.bin", tmp_path / f"list-{version}.jws"
    issued = "2021-09-01T15:00:00+07:00"
    make = ["statuslist", "make", str(tmp_path / "list.csv"), "-o", str(payload), "--version", str(version)]
    assert main([*make, "--issued", issued]) == 0
    assert main(["statuslist", "sign", str(payload), "--key", str(key), "-o", str(token)]) == 0
    return token


def test_keygen_writes_a_private_key_only_its_owner_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "a.key"
    assert main(["statuslist", "keygen", "--out-key", str(key)]) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "a.key.pub.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert "kid " in capsys.readouterr().out
    assert main(["statuslist", "keygen", "--out-key", str(key)]) == 2
    assert "--force" in capsys.readouterr().err


def test_make_sign_verify_round_trip(
    tmp_path: Path, authority: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    token = _make_and_sign(tmp_path, authority[0])
    capsys.readouterr()
    lookups = ["--lookup", "038200001234", "--lookup", "999999999999"]
    assert main(["statuslist", "verify", str(token), "--keys", str(authority[1]), *lookups]) == 0
    summary, listed, unlisted = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (summary["version"], summary["count"]) == (3, 3)
    assert summary["issued"] == "2021-09-01T08:00:00+00:00"
    assert {g["status"] for g in summary["groups"]} == {"F0", "F2", "quarantine"}
    assert listed == {
        "identity": "038200001234",
        "status": "quarantine",
        "until": "2021-09-15T17:00:00+00:00",
    }
    assert unlisted["status"] is None


def test_a_signed_list_is_what_the_kiosk_store_accepts(tmp_path: Path, authority: tuple[Path, Path]) -> None:
    store = StatusListStore.from_config(authority[1], tmp_path / "state" / "statuslist.jws")
    assert store.offer(_make_and_sign(tmp_path, authority[0]).read_bytes()) is True
    assert store.lookup("079300000001") is not None


def test_make_reads_stdin_and_defaults_the_version_to_the_issue_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(CSV))
    out = tmp_path / "p.bin"
    assert main(["statuslist", "make", "-", "-o", str(out), "--issued", "2021-09-01T00:00:00+00:00"]) == 0
    assert "version 1630454400: 3 entries" in capsys.readouterr().err


def test_verify_with_the_wrong_key_exits_2(
    tmp_path: Path, authority: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    token = _make_and_sign(tmp_path, authority[0])
    other = tmp_path / "other.key"
    main(["statuslist", "keygen", "--out-key", str(other)])
    capsys.readouterr()
    assert main(["statuslist", "verify", str(token), "--keys", str(tmp_path / "other.key.pub.pem")]) == 2
    assert "unknown key id" in capsys.readouterr().err


def test_verify_a_tampered_file_exits_2(
    tmp_path: Path, authority: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    token = _make_and_sign(tmp_path, authority[0])
    text = bytearray(token.read_bytes())
    text[200] = ord("A") if text[200] != ord("A") else ord("B")
    token.write_bytes(bytes(text))
    assert main(["statuslist", "verify", str(token), "--keys", str(authority[1])]) == 2
    assert "refused" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("csv_text", "fragment"),
    [
        ("001093029317\n", "line 1: expected identity,status"),
        ("001093029317,F0,someday\n", "not YYYY-MM-DD"),
        (b"\xff\xfe0,F0\n", "not UTF-8"),
    ],
)
def test_make_refuses_bad_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], csv_text: str | bytes, fragment: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(csv_text.encode() if isinstance(csv_text, str) else csv_text)
    assert main(["statuslist", "make", str(path), "-o", str(tmp_path / "o.bin")]) == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "o.bin").exists()


def test_sign_refuses_a_file_that_is_not_a_payload(
    tmp_path: Path, authority: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a list")
    assert main(["statuslist", "sign", str(junk), "--key", str(authority[0]), "-o", str(tmp_path / "x")]) == 2
    assert "no metadata line" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["statuslist", "make", "missing.csv", "-o", "x.bin"],
        ["statuslist", "sign", "missing.bin", "--key", "missing.key", "-o", "x"],
        ["statuslist", "verify", "missing.jws", "--keys", "missing.pem"],
    ],
)
def test_missing_files_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert "missing" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra", [["--version", "x"], ["--issued", "2021-09-01T00:00:00"], ["--issued", "yesterday"]]
)
def test_bad_options_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["statuslist", "make", "l.csv", "-o", str(tmp_path / "o"), *extra])
    assert caught.value.code == 2
    assert "error" in capsys.readouterr().err


def test_verify_a_deeply_nested_header_exits_2(
    tmp_path: Path, authority: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # 100,000 nested `[` in the header once raised RecursionError before any key was needed.
    from kiosk.jws import b64url

    token = tmp_path / "deep.jws"
    token.write_text(f"{b64url(b'[' * 100_000)}.{b64url(b'x')}.{b64url(bytes(64))}")
    assert main(["statuslist", "verify", str(token), "--keys", str(authority[1])]) == 2
    err = capsys.readouterr().err
    assert "header" in err and "Traceback" not in err
