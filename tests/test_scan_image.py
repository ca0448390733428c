"""`kiosk scan-image`: files and folders in, one JSON line per image out, exit codes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import pytest

from kiosk.cards.masking import mask_text
from kiosk.cli import main
from kiosk.cli.scan import scan_file, symbol_record
from kiosk.config import DecoderConfig
from kiosk.decoder import open_decoder
from kiosk.scenes import Scene, empty_frame, render

CCCD = "001093029317|012345678|Nguyễn Văn Ánh|18011987|Nam|Số 1 Phố Huế, Hà Nội|01012021"
NATIONAL = "001093029317|NGUYEN VAN A|1987-01-18|0|162979388586171100|<1<00<0123232422"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict], str]:
    code = main(["scan-image", *args])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = tmp_path / "shots"
    folder.mkdir()
    cv2.imwrite(str(folder / "b-cccd.png"), render(CCCD, Scene(rotation_deg=20)))
    cv2.imwrite(str(folder / "a-national.jpg"), render(NATIONAL, Scene(inverted=True, phone=True)))
    cv2.imwrite(str(folder / "c-empty.webp"), empty_frame(Scene()))
    (folder / "readme.txt").write_text("not an image")
    return folder


def test_folder_gives_one_line_per_image_sorted(capsys: pytest.CaptureFixture[str], shots: Path) -> None:
    code, records, err = run(capsys, str(shots))
    assert code == 0 and err == ""
    assert [Path(r["file"]).name for r in records] == ["a-national.jpg", "b-cccd.png", "c-empty.webp"]
    national, cccd, empty = records
    # Masked by default: the layout of the fields, not their letters and digits; no bytes.
    assert national["symbols"][0]["text"] == (
        "************|****** *** *|****-**-**|*|******************|<*<**<**********"
    )
    assert cccd["symbols"][0]["text"] == mask_text(CCCD) and cccd["symbols"][0]["bytes_b64"] is None
    assert cccd["symbols"][0]["format"] == "QRCode" and len(cccd["symbols"][0]["corners"]) == 4
    assert empty["symbols"] == [] and empty["located"] is False
    assert all(r["decode_ms"] >= 0 for r in records)


def test_broken_files_are_reported_after_the_others(
    capsys: pytest.CaptureFixture[str], shots: Path, tmp_path: Path
) -> None:
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes((shots / "b-cccd.png").read_bytes()[:2000])
    fake = tmp_path / "fake.jpg"
    fake.write_text("this is text")
    missing = tmp_path / "missing.png"
    code, records, err = run(capsys, str(truncated), str(fake), str(missing), str(shots / "b-cccd.png"))
    assert code == 2
    assert [r["symbols"][0]["text"] for r in records] == [mask_text(CCCD)]
    lines = err.splitlines()
    assert len(lines) == 3 and "Traceback" not in err
    assert "truncated.png: damaged" in lines[0]
    assert "fake.jpg: not an image" in lines[1]
    assert "missing.png: no such file" in lines[2]


def test_empty_folder_is_reported(capsys: pytest.CaptureFixture[str], shots: Path, tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    code, records, err = run(capsys, str(tmp_path / "nothing"), str(shots / "b-cccd.png"))
    assert code == 2 and len(records) == 1
    assert "nothing: a folder with no images" in err


def test_config_chooses_the_backend(capsys: pytest.CaptureFixture[str], shots: Path, tmp_path: Path) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text('[decoder]\nbackend = "pyzbar"\ninverted = "never"\n')
    code, records, _ = run(capsys, "--config", str(config), str(shots))
    assert code == 0
    assert [len(r["symbols"]) for r in records] == [0, 1, 0]  # the dark-mode phone is not tried inverted


def test_bad_config_is_exit_2(capsys: pytest.CaptureFixture[str], shots: Path, tmp_path: Path) -> None:
    config = tmp_path / "kiosk.toml"
    config.write_text('[decoder]\nbackend = "zbar9"\n')
    code, records, err = run(capsys, "--config", str(config), str(shots))
    assert code == 2 and records == [] and "decoder.backend" in err


def test_symbol_record_can_be_extended(shots: Path) -> None:
    def with_decision(symbol):  # type: ignore[no-untyped-def]
        return symbol_record(symbol) | {"decision": "pass"}

    decoder = open_decoder(DecoderConfig())
    record = scan_file(shots / "b-cccd.png", decoder, describe=with_decision)
    assert record["symbols"][0]["decision"] == "pass"
    assert record["symbols"][0]["text"] == CCCD


def test_each_symbol_carries_the_kiosks_decision(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from kiosk import cardmaker

    (tmp_path / "cards").mkdir()
    cv2.imwrite(str(tmp_path / "cards" / "a.png"), render(cardmaker.national_payload(), Scene(seed=1)))
    cv2.imwrite(str(tmp_path / "cards" / "b.png"), render("https://venue.example/checkin", Scene(seed=2)))
    config = tmp_path / "kiosk.toml"
    config.write_text(f'[paths]\nstate_dir = "{tmp_path / "state"}"\n[destination]\nlanguage = "en"\n')
    assert main(["scan-image", "--config", str(config), str(tmp_path / "cards")]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    decisions = [record["symbols"][0]["decision"] for record in records]
    assert [(d["format"], d["verdict"], d["reason"]) for d in decisions] == [
        ("national", "pass", "ok"),
        ("poster", "fail", "old_venue_qr"),
    ]
    assert decisions[0]["fields"]["name"] == "NGUYEN V** A"
    assert "personal QR" in decisions[1]["message"]


def test_codes_and_identities_are_masked_unless_shown(
    capsys: pytest.CaptureFixture[str], shots: Path
) -> None:
    image = str(shots / "a-national.jpg")
    code, [masked], err = run(capsys, image)
    assert code == 0 and err == ""
    out = json.dumps(masked, ensure_ascii=False)
    for secret in ("001093029317", "162979388586171100", "NGUYEN VAN A", "0123232422"):
        assert secret not in out
    decision = masked["symbols"][0]["decision"]
    assert decision["identity"] == "*" * 15 + "100"
    assert decision["identities"] == ["*" * 15 + "100", "*" * 9 + "317"]

    code, [shown], err = run(capsys, "--show-identities", image)
    assert code == 0 and "(--show-identities): keep this output private" in err
    symbol = shown["symbols"][0]
    assert symbol["text"] == NATIONAL and base64.b64decode(symbol["bytes_b64"]) == NATIONAL.encode()
    assert symbol["decision"]["identities"] == ["162979388586171100", "001093029317"]
    assert symbol["decision"]["fields"]["name"] == "NGUYEN V** A"  # names stay masked


@pytest.mark.parametrize("flag", ["--show", "--show-identities=yes"])
def test_the_flag_is_taken_only_written_in_full(capsys: pytest.CaptureFixture[str], flag: str) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["scan-image", flag, "any.png"])
    assert caught.value.code == 2 and flag.split("=")[0] in capsys.readouterr().err
