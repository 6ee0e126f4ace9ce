"""A real `edge serve` process for the browser tests: a fresh data directory, users made
with the real CLI, no demo feeder, a free port; bags arrive through POST /api/frames."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from edge.sim.scene import simulate_bag

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "browser-test-password"
USERS = {"olga": "operator", "tom": "technician"}
# The demo model alarms on the gun in this simulated bag (checked by the tests).
GUN_SEED = 7


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def edge_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "edge.cli", *args]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("EDGE_MODEL", "EDGE_DATA")}


def dual_energy_tiff(seed: int, threats: list[str]) -> bytes:
    """A simulated bag as the two-page 16-bit TIFF a scanner exports (high, then low)."""
    bag = simulate_bag(seed, threats=threats)
    high, low = (Image.fromarray(np.ascontiguousarray(c)) for c in (bag.high, bag.low))
    out = io.BytesIO()
    high.save(out, format="TIFF", save_all=True, append_images=[low])
    return out.getvalue()


@dataclass
class EdgeService:
    """One `edge serve` subprocess; `token(name)` is a bearer token for scripts."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    tokens: dict[str, str]

    def upload(self, user: str, image: bytes, bag: str) -> dict[str, Any]:
        """POST /api/frames as `user` (bearer token); answers once the bag is screened."""
        response = httpx.post(
            f"{self.url}/api/frames",
            files={"file": (f"{bag}.tiff", image, "image/tiff")},
            data={"bag": bag},
            headers={"Authorization": f"Bearer {self.tokens[user]}"},
            timeout=60.0,
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def get(self, user: str, path: str, **params: Any) -> Any:
        response = httpx.get(
            f"{self.url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.tokens[user]}"},
            timeout=10.0,
        )
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_service(data: Path, *, model: Path | None = None) -> EdgeService:
    """Make the users, start `edge serve` and wait until /api/health answers."""
    data.mkdir(parents=True)
    tokens = {}
    for name, role in USERS.items():
        subprocess.run(
            edge_command(
                "users", "add", name, "--role", role, "--password-stdin", "--data", str(data)
            ),
            input=f"{PASSWORD}\n".encode(),
            cwd=REPO,
            env=_env(),
            check=True,
            capture_output=True,
        )
        made = subprocess.run(
            edge_command("users", "token", name, "--data", str(data), "--json"),
            cwd=REPO,
            env=_env(),
            check=True,
            capture_output=True,
        )
        tokens[name] = str(json.loads(made.stdout)["token"])
    port = free_port()
    command = edge_command("serve", "--no-demo", "--port", str(port), "--data", str(data))
    if model is not None:
        command += ["--model", str(model)]
    log = data.parent / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=_env(), stdout=out, stderr=subprocess.STDOUT
        )
    service = EdgeService(f"http://127.0.0.1:{port}", process, log, tokens)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"edge serve exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{service.url}/api/health", timeout=2.0).status_code == 200:
                return service
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            service.stop()
            raise AssertionError(f"edge serve did not answer in 60 s:\n{log.read_text()}")
        time.sleep(0.2)
