"""The air-gapped installer end to end: packaging/build-offline makes the archive once; its
install.sh installs it into a fresh prefix with pip kept off every index (and, where
`unshare --net` works, with no network at all); then the INSTALLED edge reports its version,
detects on a simulated frame and serves. A re-install keeps config, data and keys; a damaged
archive is refused before anything is touched; a failed install leaves the old release."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
NAME = f"edge-offline-{VERSION}"
DEV_ONLY = ("pytest", "playwright", "ruff", "mypy", "hypothesis", "pycocotools")
MAX_ARCHIVE_MB = 300


def _can_unshare_net() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    return probe.returncode == 0


NO_NETWORK = _can_unshare_net()


@dataclass(frozen=True)
class Site:
    """An installed appliance: software in `prefix`, system paths under `root`."""

    prefix: Path
    root: Path

    @property
    def edge(self) -> Path:
        return self.prefix / ".venv" / "bin" / "edge"

    @property
    def config(self) -> Path:
        return self.root / "etc" / "edge" / "edge.toml"

    @property
    def data(self) -> Path:
        return self.root / "var" / "lib" / "edge"

    def releases(self) -> set[str]:
        return {p.name for p in (self.prefix / "releases").iterdir()}

    def current(self) -> str:
        return os.readlink(self.prefix / "current")


def install(top: Path, prefix: Path, root: Path) -> subprocess.CompletedProcess[str]:
    """install.sh in staging mode; pip would fail on any index it tried to reach."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "EDGE_"))}
    env |= {"PIP_NO_INDEX": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/simple"}
    command = [str(top / "install.sh"), "--prefix", str(prefix), "--root", str(root)]
    command += ["--no-user", "--no-systemd", "--python", sys.executable]
    if NO_NETWORK:
        command = ["unshare", "--net", *command]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def run_edge(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    return subprocess.run(
        [str(site.edge), *args], capture_output=True, text=True, env=env, timeout=300
    )


def linked_copy(src: Path, dst: Path) -> Path:
    """A copy of an unpacked archive made of hard links: cheap; change files by replacing."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def replace(path: Path, data: bytes) -> None:
    path.unlink()  # never write through a hard link into the original
    path.write_bytes(data)


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    build = subprocess.run(
        [str(REPO / "packaging" / "build-offline"), "--out", str(out), "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    path = out / f"{NAME}.tar.gz"
    size_mb = path.stat().st_size / 2**20
    print(f"\n{path.name}: {size_mb:.1f} MiB, built in {time.monotonic() - started:.0f} s")
    return path


@pytest.fixture(scope="module")
def unpacked(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    into = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="tar")
    return into / NAME


@pytest.fixture(scope="module")
def site(unpacked: Path, tmp_path_factory: pytest.TempPathFactory) -> Site:
    base = tmp_path_factory.mktemp("appliance")
    installed = Site(base / "opt-edge", base / "root")
    started = time.monotonic()
    result = install(unpacked, installed.prefix, installed.root)
    assert result.returncode == 0, result.stdout + result.stderr
    network = "no network namespace" if not NO_NETWORK else "unshare --net"
    print(f"\ninstalled in {time.monotonic() - started:.0f} s ({network})")
    return installed


# ----------------------------------------------------------------------------- the archive


def test_the_archive_holds_wheels_model_and_units_and_no_dev_tools(archive: Path) -> None:
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        modes = {m.name: m.mode for m in tar.getmembers()}
    expected = [
        "install.sh",
        "SHA256SUMS",
        "BUILD-INFO",
        "config/edge.toml",
        "models/demo-xray-det/model.onnx",
        "models/demo-xray-det/manifest.json",
        "systemd/edge.service",
        "systemd/edge-usb-upgrade@.service",
        "udev/90-edge-usb-upgrade.rules",
        "tmpfiles/edge.conf",
        "bin/edge-usb-upgrade",
    ]
    assert [f for f in expected if f"{NAME}/{f}" not in names] == []
    assert modes[f"{NAME}/install.sh"] & stat.S_IXUSR
    wheels = [n.rsplit("/", 1)[1] for n in names if n.startswith(f"{NAME}/wheels/")]
    for package in ("edge_xray", "numpy", "onnxruntime", "fastapi", "uvicorn", "pip"):
        assert any(w.startswith(f"{package}-") for w in wheels), package
    assert [w for w in wheels if w.lower().startswith(DEV_ONLY)] == []
    assert archive.stat().st_size < MAX_ARCHIVE_MB << 20
    published = (archive.parent / f"{archive.name}.sha256").read_text().split()[0]
    assert published == hashlib.sha256(archive.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- installed


def test_the_installed_edge_reports_its_version_and_the_shipped_model(site: Site) -> None:
    shown = run_edge(
        site, "--version", "--json", "--config", str(site.config), "--data", str(site.data)
    )
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["version"] == VERSION
    assert report["model"]["id"].startswith("demo-xray-det@")
    assert report["model"]["path"] == str(site.prefix / "models" / "demo-xray-det")
    plain = run_edge(site, "--version", "--config", str(site.config), "--data", str(site.data))
    assert plain.stdout.startswith(f"edge {VERSION}\n")
    checked = run_edge(site, "serve", "--check-config", str(site.config))
    assert checked.returncode == 0, checked.stderr
    # The installed software is the archive's, not this work tree's, and has no dev tools.
    python = site.prefix / ".venv" / "bin" / "python"
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import edge, importlib.util as u; print(edge.__file__); print(u.find_spec('pytest'))",
        ],
        capture_output=True,
        text=True,
        cwd="/",
        check=True,
    ).stdout.split()
    assert Path(where[0]).resolve().is_relative_to((site.prefix / "releases").resolve())
    assert where[1] == "None"


def test_the_install_lays_out_config_data_and_system_files(site: Site, tmp_path: Path) -> None:
    assert stat.S_IMODE(site.config.stat().st_mode) == 0o640
    assert stat.S_IMODE(site.data.stat().st_mode) == 0o750
    assert stat.S_IMODE((site.data / "keys").stat().st_mode) == 0o750
    config = tomllib.loads(site.config.read_text())
    assert config["model"]["dir"] == str(site.prefix / "models" / "demo-xray-det")
    assert config["store"]["data_dir"] == "/var/lib/edge"
    unit = (site.root / "etc/systemd/system/edge.service").read_text()
    assert f"ExecStart={site.prefix}/.venv/bin/edge serve" in unit
    assert f"EDGE_MODEL={site.prefix}/models/demo-xray-det" in unit
    script = site.root / "usr/lib/edge/edge-usb-upgrade"
    assert f"{site.prefix}/.venv/bin/edge" in script.read_text()
    assert os.access(script, os.X_OK)
    for path in (
        "etc/udev/rules.d/90-edge-usb-upgrade.rules",
        "etc/systemd/system/edge-usb-upgrade@.service",
        "usr/lib/tmpfiles.d/edge.conf",
        "etc/edge/edge.toml.dist",
    ):
        assert (site.root / path).is_file(), path
    # The technician's `edge`: the installed one, aimed at the appliance's data and model.
    wrapper = site.root / "usr/local/bin/edge"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    shown = subprocess.run(
        [str(wrapper), "--version", "--json", "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    model = json.loads(shown.stdout)["model"]
    assert model["source"] == "shipped default"
    assert model["path"] == str(site.prefix / "models/demo-xray-det")


def test_the_installed_edge_detects_on_a_simulated_frame(site: Site, tmp_path: Path) -> None:
    made = run_edge(
        site, "simulate", "dataset", "--out", str(tmp_path / "bags"), "--count", "1",
        "--seed", "0", "--threat-ratio", "1",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    truth = json.loads((tmp_path / "bags" / "annotations.json").read_text())
    classes = {c["id"]: c["name"] for c in truth["categories"]}
    (box,) = truth["annotations"]
    model = site.prefix / "models" / "demo-xray-det"
    image = tmp_path / "bags" / "images" / "000001.png"
    found = run_edge(site, "detect", "--json", "--model", str(model), str(image))
    assert found.returncode == 0, found.stderr
    doc = json.loads(found.stdout)
    assert doc["failed"] == 0 and doc["model"].startswith("demo-xray-det@")
    x, y, w, h = box["bbox"]
    hits = [
        d
        for d in doc["images"][0]["detections"]
        if d["class"] == classes[box["category_id"]] and _iou(d["box"], [x, y, x + w, y + h]) > 0.5
    ]
    assert hits, doc


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as reply:
            doc: dict[str, Any] = json.loads(reply.read())
            return doc
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@pytest.fixture
def served(site: Site, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """The installed `edge serve` with the installed config, a hot folder as its scanner."""
    port, hot, log = _free_port(), tmp_path / "hot", tmp_path / "serve.log"
    hot.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGE_")}
    command = [str(site.edge), "serve", "--config", str(site.config), "--data", str(site.data)]
    command += ["--port", str(port), "--folder", str(hot)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield process, port, hot
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _wait_health(
    process: subprocess.Popen[bytes], port: int, log: Path, ready: Any, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, f"edge serve exited early:\n{log.read_text()}"
        doc = _health(port)
        if doc is not None and ready(doc):
            return doc
        assert time.monotonic() < deadline, f"health never ready: {doc}\n{log.read_text()}"
        time.sleep(0.3)


def test_the_installed_edge_serves_screens_a_frame_and_stops_on_sigterm(
    site: Site, served: tuple[subprocess.Popen[bytes], int, Path], tmp_path: Path
) -> None:
    process, port, hot = served
    log = tmp_path / "serve.log"
    health = _wait_health(process, port, log, lambda d: d["status"] == "ok", 120)
    assert health["version"] == VERSION and health["model"].startswith("demo-xray-det@")
    made = run_edge(
        site, "simulate", "dataset", "--out", str(tmp_path / "bags"), "--count", "1",
        "--seed", "1", "--threat-ratio", "1",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    staged = tmp_path / "bag.png"
    shutil.copy(tmp_path / "bags" / "images" / "000001.png", staged)
    staged.rename(hot / "bag.png")  # renamed in: taken at once
    health = _wait_health(process, port, log, lambda d: d["screened"] >= 1, 60)
    assert health["frames_in"] >= 1 and health["not_screened"] == 0, health
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, log.read_text()
    assert (site.data / "edge.db").is_file()


# ----------------------------------------------------------------------------- upgrades


def test_a_reinstall_keeps_config_data_and_keys(site: Site, unpacked: Path) -> None:
    edited = site.config.read_text().replace("port = 8080", "port = 8181")
    edited += "# the technician's note\n"
    site.config.write_text(edited)
    (site.data / "keys" / "vendor.pub").write_text("untrusted comment: vendor\nRWQ...\n")
    data_before, before = snapshot(site.data), site.current()
    assert "edge.db" in data_before and any(k.startswith("models/") for k in data_before)

    result = install(unpacked, site.prefix, site.root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"kept {site.config}" in result.stdout
    assert site.config.read_text() == edited
    assert snapshot(site.data) == data_before
    assert site.current() != before
    assert site.releases() == {Path(before).name, Path(site.current()).name}
    shown = run_edge(
        site, "--version", "--json", "--config", str(site.config), "--data", str(site.data)
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["model"]["source"] == "model store"


def test_a_failed_install_leaves_the_installed_release_running(
    site: Site, unpacked: Path, tmp_path: Path
) -> None:
    broken = linked_copy(unpacked, tmp_path / NAME)
    (numpy,) = (broken / "wheels").glob("numpy-*.whl")
    numpy.unlink()
    sums = (broken / "SHA256SUMS").read_text().splitlines()
    kept = [line for line in sums if not line.endswith(f"wheels/{numpy.name}")]
    assert len(kept) == len(sums) - 1
    replace(broken / "SHA256SUMS", ("\n".join(kept) + "\n").encode())
    before, releases = site.current(), site.releases()

    result = install(broken, site.prefix, site.root)
    assert result.returncode == 1
    assert "pip could not install edge-xray" in result.stderr
    assert "FAILED; the installed software is unchanged" in result.stderr
    assert site.current() == before and site.releases() == releases
    shown = run_edge(site, "--version", "--config", str(site.config), "--data", str(site.data))
    assert shown.returncode == 0 and shown.stdout.startswith(f"edge {VERSION}\n"), shown.stderr


@pytest.mark.parametrize("damage", ["changed file", "extra wheel", "missing file"])
def test_a_damaged_archive_is_refused_before_anything_is_touched(
    damage: str, unpacked: Path, tmp_path: Path
) -> None:
    copy = linked_copy(unpacked, tmp_path / NAME)
    if damage == "changed file":
        toml = copy / "config" / "edge.toml"
        replace(toml, toml.read_bytes().replace(b"enabled = false", b"enabled = true"))
        expected = "do not match SHA256SUMS"
    elif damage == "extra wheel":
        (copy / "wheels" / "numpy-99.0-py3-none-any.whl").write_bytes(b"PK\x05\x06" + bytes(18))
        expected = "files not listed in SHA256SUMS"
    else:
        (copy / "models" / "demo-xray-det" / "manifest.json").unlink()
        expected = "do not match SHA256SUMS"
    result = install(copy, tmp_path / "opt-edge", tmp_path / "root")
    assert result.returncode == 1
    assert expected in result.stderr, result.stderr
    assert not (tmp_path / "opt-edge").exists() and not (tmp_path / "root").exists()


def test_the_tmpfiles_entries_make_the_directories(tmp_path: Path) -> None:
    tmpfiles = shutil.which("systemd-tmpfiles")
    assert tmpfiles, "systemd-tmpfiles is missing (.ci/run installs systemd-standalone-tmpfiles)"
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0::/root:/bin/sh\nedge:x:990:990::/:/bin/false\n"
    )
    (tmp_path / "etc/group").write_text("root:x:0:\nedge:x:990:\n")
    conf = REPO / "packaging" / "tmpfiles" / "edge.conf"
    subprocess.run([tmpfiles, f"--root={tmp_path}", "--create", str(conf)], check=True)
    made = {
        path: (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        for path in ("var/lib/edge", "var/lib/edge/keys", "etc/edge", "run/edge/usb")
        for st in [(tmp_path / path).stat()]
    }
    assert made == {
        "var/lib/edge": (0o750, 990, 990),
        "var/lib/edge/keys": (0o750, 0, 990),
        "etc/edge": (0o750, 0, 990),
        "run/edge/usb": (0o700, 0, 0),
    }
