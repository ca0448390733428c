"""Configuration: loading, every problem reported at once, the example file, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from kiosk.cli import main
from kiosk.cli.config_cmd import render_example
from kiosk.config import Settings, load_config, parse_config
from kiosk.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "provisioning" / "kiosk.toml.example"


def test_no_file_gives_laptop_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIOSK_CONFIG", raising=False)
    monkeypatch.setattr("kiosk.config.DEFAULT_CONFIG_PATH", Path("/nonexistent/kiosk.toml"))
    settings = load_config()
    assert settings.camera.backend == "replay"
    assert settings.feedback.gpio == "mock"


def test_env_variable_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k.toml"
    path.write_text('[destination]\nid = "cho-ben-thanh"\n')
    monkeypatch.setenv("KIOSK_CONFIG", str(path))
    assert load_config().destination.id == "cho-ben-thanh"


def test_example_file_is_current_and_valid() -> None:
    assert EXAMPLE.read_text() == render_example(), (
        "run `kiosk config example > provisioning/kiosk.toml.example`"
    )
    settings = load_config(EXAMPLE)
    assert settings.paths.state_dir == Path("/var/lib/kiosk")


def test_example_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    for section, field in Settings.model_fields.items():
        assert f"[{section}]" in text
        for key in field.annotation.model_fields:  # type: ignore[union-attr]
            documented = f"[{section}.{key}]" in text or f"\n{key} = " in text or f"# {key} = " in text
            assert documented, f"{section}.{key} is not documented"


def test_every_problem_is_reported_with_key_and_value() -> None:
    bad = {
        "device": {"id": "Not An Id"},
        "camera": {"fps": -1, "colour": "yes"},
        "uplink": {"broker": "http://example"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(bad)
    problems = caught.value.problems
    assert len(problems) == 4
    assert any(p.startswith("device.id = 'Not An Id'") for p in problems)
    assert any(p.startswith("camera.fps = -1") for p in problems)
    assert any("camera.colour" in p and "unknown key" in p for p in problems)
    assert any("uplink.broker" in p and "mqtt://" in p for p in problems)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"destination": {"capacity": 10}}, "capacity needs direction"),
        ({"feedback": {"green_pin": 5, "red_pin": 5}}, "share a pin"),
        ({"uplink": {"broker": "mqtt://u:secret@host"}}, "no password in the URL"),
        ({"uplink": {"tls": {"cert_file": "a.crt"}}}, "go together"),
        ({"uplink": {"broker": "mqtt://host:99999"}}, "bad port"),
    ],
)
def test_cross_field_rules(data: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert fragment in " ".join(caught.value.problems)


def test_relative_paths_follow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text('[policy]\ntrust_list = "trust"\n[paths]\nstate_dir = "state"\nspool_file = "s.db"\n')
    settings = load_config(path)
    assert settings.policy.trust_list == tmp_path / "trust"
    assert settings.paths.spool_file == tmp_path / "state" / "s.db"


def test_check_prints_problems_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[camera]\nbackend = "webcam"\nfps = 0\n')
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "camera.backend = 'webcam'" in err
    assert "camera.fps = 0" in err


@pytest.mark.parametrize("content", ["[camera\n", b"\xff\xfe\x00garbage"])
def test_check_reports_unreadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes
) -> None:
    path = tmp_path / "broken.toml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    assert main(["config", "check", str(path)]) == 2
    assert "broken.toml" in capsys.readouterr().err


def test_check_missing_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", "/nonexistent/kiosk.toml"]) == 2
    assert "not found" in capsys.readouterr().err


def test_check_prints_effective_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ok.toml"
    path.write_text('[uplink]\nusername = "dev-1"\npassword_file = "pw"\n')
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert '"password_file"' in out
    assert "dev-1" not in out


def test_a_stall_timeout_longer_than_the_watchdog_allows_is_refused() -> None:
    """One blocked camera read longer than the unit's watchdog would restart the kiosk."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"camera": {"stall_timeout_s": 30}})
    (problem,) = caught.value.problems
    assert problem.startswith("camera.stall_timeout_s = 30: at most 4 s") and "WatchdogSec=10" in problem
    assert parse_config({"camera": {"stall_timeout_s": 4}}).camera.stall_timeout_s == 4
