"""minisign's formats, both ways with the real `minisign` binary."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.upgrade import minisign
from edge.upgrade.bundle import BUNDLE_JSON, SIGNATURE
from edge.upgrade.errors import KeyFileError, SignatureError

from .device import Device, read_members, write_members

MINISIGN = shutil.which("minisign")
needs_minisign = pytest.mark.skipif(MINISIGN is None, reason="the minisign binary is not installed")


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert MINISIGN is not None
    return subprocess.run(
        [MINISIGN, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=30,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.fixture
def minisign_keys(tmp_path: Path) -> tuple[Path, Path]:
    """A key pair made by `minisign -G -W` (unencrypted)."""
    done = run("-G", "-W", "-p", "mk.pub", "-s", "mk.key", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return tmp_path / "mk.key", tmp_path / "mk.pub"


def test_sign_and_verify_round_trip() -> None:
    secret = minisign.generate_key()
    text = minisign.sign(b"payload", secret, "timestamp:1\tfile:x\thashed").encode()
    verified = minisign.verify(b"payload", text, [secret.public_key])
    assert verified.key_id == secret.public_key.id_text
    assert verified.trusted_comment == "timestamp:1\tfile:x\thashed"
    with pytest.raises(SignatureError, match="signature does not match"):
        minisign.verify(b"payloaD", text, [secret.public_key])
    lines = text.decode().splitlines()
    lines[2] = "trusted comment: timestamp:2\tfile:x\thashed"
    with pytest.raises(SignatureError, match="trusted comment was changed"):
        minisign.verify(b"payload", "\n".join(lines).encode(), [secret.public_key])


def test_an_encrypted_secret_key_is_refused_in_plain_words() -> None:
    text = minisign.generate_key().to_text()
    blob = bytearray(base64.b64decode(text.splitlines()[1]))
    blob[2:4] = b"Sc"
    encrypted = f"untrusted comment: x\n{base64.b64encode(bytes(blob)).decode()}\n"
    with pytest.raises(KeyFileError, match="password-protected.*minisign -G -W"):
        minisign.parse_secret_key(encrypted)


@needs_minisign
def test_a_bundle_signed_by_minisign_installs(
    device: Device, minisign_keys: tuple[Path, Path]
) -> None:
    key, pub = minisign_keys
    shutil.copy(pub, device.data / "keys" / "other-vendor.pub")
    members = read_members(device.bundle())
    data = next(d for i, d in members if i.name == BUNDLE_JSON)
    assert data is not None
    (device.work / BUNDLE_JSON).write_bytes(data)
    done = run("-S", "-s", key, "-m", BUNDLE_JSON, cwd=device.work)
    assert done.returncode == 0, done.stderr
    signature = (device.work / f"{BUNDLE_JSON}.minisig").read_bytes()
    resigned = [(i, signature if i.name == SIGNATURE else d) for i, d in members]
    bundle = write_members(device.work / "resigned.edgebundle", resigned)
    outcome = device.upgrader().install(bundle)
    assert outcome.key_id == minisign.read_public_key(pub).id_text


@needs_minisign
def test_our_signature_passes_minisign(tmp_path: Path) -> None:
    secret = minisign.generate_key()
    minisign.write_key_pair(secret, tmp_path / "ours.key", tmp_path / "ours.pub")
    (tmp_path / "file.json").write_bytes(b'{"a": 1}\n')
    signature = minisign.sign(b'{"a": 1}\n', secret, minisign.default_trusted_comment("file"))
    (tmp_path / "file.json.minisig").write_text(signature)
    done = run("-V", "-p", "ours.pub", "-m", "file.json", cwd=tmp_path)
    assert done.returncode == 0 and "Signature and comment signature verified" in done.stdout


@needs_minisign
def test_minisign_keys_work_with_ours(tmp_path: Path, minisign_keys: tuple[Path, Path]) -> None:
    key, pub = minisign_keys
    secret = minisign.read_secret_key(key)
    assert secret.public_key == minisign.read_public_key(pub)
    (tmp_path / "m.txt").write_bytes(b"signed with a minisign key by edge\n")
    text = minisign.sign(b"signed with a minisign key by edge\n", secret, "edge")
    (tmp_path / "m.txt.minisig").write_text(text)
    assert run("-V", "-p", pub, "-m", "m.txt", cwd=tmp_path).returncode == 0


@needs_minisign
def test_our_keys_work_with_minisign(tmp_path: Path) -> None:
    secret = minisign.generate_key()
    minisign.write_key_pair(secret, tmp_path / "ours.key", tmp_path / "ours.pub")
    (tmp_path / "x.txt").write_bytes(b"signed by minisign with an edge key\n")
    done = run("-S", "-s", "ours.key", "-m", "x.txt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    verified = minisign.verify(
        (tmp_path / "x.txt").read_bytes(),
        (tmp_path / "x.txt.minisig").read_bytes(),
        [minisign.read_public_key(tmp_path / "ours.pub")],
    )
    assert verified.key_id == secret.public_key.id_text
    assert run("-V", "-p", "ours.pub", "-m", "x.txt", cwd=tmp_path).returncode == 0
