"""A power cut at each step of `edge upgrade` (the process kills itself with SIGKILL there,
EDGE_TEST_KILL_AT): after the restart exactly one complete model is active, nothing of the
interrupted upgrade is left lying around, and the audit log verifies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from edge.detector.manifest import load_model_dir
from edge.upgrade import audit
from edge.upgrade.engine import KILL_ENV, STEPS

from .device import Device

# After a cut before the pointer swap the factory model is still active; after it, the
# new one, checked at the restart.
EXPECTED = {step: "tiny@0.1.0" for step in STEPS} | {
    "health": "tiny@0.2.0",
    "confirm": "tiny@0.2.0",
}


def edge(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_power_cut_at_each_step(device: Device, step: str) -> None:
    bundle = device.bundle("0.2.0", release=1)
    data = ["--data", str(device.data)]
    cut = edge("upgrade", str(bundle), *data, env={KILL_ENV: step})
    assert cut.returncode == -signal.SIGKILL, cut.stderr
    restart = edge("models", "--json", *data)  # what the service does at start-up, too
    assert restart.returncode == 0, restart.stderr
    listing = json.loads(restart.stdout)
    active = listing["active"]
    assert active["id"] == EXPECTED[step] and active["state"] == "confirmed"
    assert [m["dir"] for m in listing["models"] if m["state"] == "active"] == [active["dir"]]
    spec = load_model_dir(device.data / "models" / active["dir"])  # complete: hash-checked
    assert spec.model_sha256 == active["sha256"]
    store = device.store
    for folder in (store.incoming, store.staging):
        assert not folder.exists() or not any(folder.iterdir())
    assert not list(store.root.glob(".*.tmp"))
    assert audit.verify(device.data).ok
    # And the device still takes the upgrade (or already has it).
    again = edge("upgrade", str(bundle), *data)
    assert again.returncode == (1 if EXPECTED[step] == "tiny@0.2.0" else 0), again.stderr
