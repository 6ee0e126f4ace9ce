"""Configuration: defaults run the demo, strictness, key paths in errors, documentation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import (
    EdgeConfig,
    FolderSource,
    SerialSource,
    documented_keys,
    load_config,
    parse_config,
)
from edge.errors import BadInputError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_defaults_run_the_demo() -> None:
    config = load_config(None)
    assert config == EdgeConfig()
    assert config.server.host == "127.0.0.1" and config.server.port == 8080
    assert config.demo.enabled and config.sources == []


def test_sources_by_type() -> None:
    config = parse_config(
        '[[sources]]\ntype = "serial"\nurl = "loop://"\n\n'
        '[[sources]]\ntype = "folder"\npath = "/tmp/in"\nsettle_s = 0.5\n'
    )
    assert isinstance(config.sources[0], SerialSource) and config.sources[0].url == "loop://"
    assert isinstance(config.sources[1], FolderSource) and config.sources[1].settle_s == 0.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nprot = 80\n", "server.prot: Extra inputs are not permitted"),
        ("[server]\nport = 70000\n", "server.port: "),
        ('[[sources]]\ntype = "serial"\n', "sources[0].url: Field required"),
        ('[[sources]]\ntype = "usb"\n', "sources[0]: "),
        ("[demo]\ninterval_s = [3.0, 1.0]\n", "interval_s"),
        ("colour = 'red'\n", "colour: Extra inputs are not permitted"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_errors_name_the_key(text: str, expected: str) -> None:
    with pytest.raises(BadInputError) as err:
        parse_config(text, "edge.toml")
    assert expected in err.value.message
    assert err.value.message.startswith("edge.toml: ")


def test_oversize_and_unreadable_files(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (2 << 20))
    with pytest.raises(BadInputError, match="at most"):
        load_config(big)
    with pytest.raises(BadInputError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(BadInputError):
        load_config(binary)


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    documented = set(re.findall(r"^\| `([^`]+)` \|", text, flags=re.MULTILINE))
    missing = [key for key in documented_keys() if key not in documented]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"
    stale = [key for key in documented if key not in documented_keys()]
    assert not stale, f"docs/configuration.md documents settings that do not exist: {stale}"


def test_check_config_command(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[server]\nport = 9000\n")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = -1\n[store]\nmin_free = 3\n")
    run = [sys.executable, "-m", "edge.cli", "serve", "--check-config"]
    ok = subprocess.run([*run, str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "valid" in ok.stdout
    failed = subprocess.run([*run, str(bad)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2
    assert "server.port" in failed.stderr and "store.min_free" in failed.stderr
