"""`edge test`, `edge suite` and `edge simulate suite` as a technician runs them: real
subprocesses, exit statuses 0 / 1 / 2, one JSON document, the run in the image log."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.store.test_runs import get_test_run, list_test_runs
from edge.validation.report import verify_report

from .model_variants import DEMO
from .suite_files import make_suite, write_dataset

pytestmark = pytest.mark.slow

# Random-noise images: the figures mean nothing, the plumbing is what is tested.
CLI_POLICY = """
[slices]
report = ["clutter"]
min_samples = 1
[absolute]
pfa_max = 1.0
[non_regression]
required = false
[latency]
p95_ms_max = 10000.0
[behaviour]
repeat_frames = 2
flip_frames = 0
projection_per_class = 0
"""


def edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_a_passing_run_prints_its_report_writes_it_and_records_it(tmp_path: Path) -> None:
    suite = make_suite(tmp_path / "suite", policy=CLI_POLICY)
    report, data = tmp_path / "report.json", tmp_path / "var"
    proc = edge("test", "--model", str(DEMO), "--suite", str(suite), "--report", str(report),
                "--json", "--data", str(data))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stderr  # no progress bar when stderr is not a terminal
    doc = json.loads(proc.stdout)
    assert verify_report(doc) and doc["gate"]["passed"]
    assert json.loads(report.read_text()) == doc
    assert (
        doc["model"]["sha256"]
        == json.loads((DEMO / "manifest.json").read_text())["sha256"]["model.onnx"]
    )
    assert (doc["suite"]["name"], doc["suite"]["label_version"]) == ("tiny", 1)
    assert doc["device"]["cpus"] >= 1 and doc["software"]["name"] == "edge-xray"
    assert doc["metrics"]["behaviour"]["repeat"]["passed"] == 2
    with sqlite3.connect(data / "edge.db") as conn:
        runs, total = list_test_runs(conn)
        assert total == 1 and runs[0].id == doc["run_id"] and runs[0].passed
        stored = get_test_run(conn, doc["run_id"])
    assert stored.report == doc and stored.report_path == str(report)
    assert stored.figures == doc["metrics"]["summary"]


def test_a_failed_gate_exits_1_and_names_the_failure(tmp_path: Path) -> None:
    suite = make_suite(tmp_path / "suite", policy=CLI_POLICY)
    strict = tmp_path / "strict.toml"
    strict.write_text(CLI_POLICY.replace("required = false", "required = true"))
    relabelled = tmp_path / "relabelled"
    write_dataset(relabelled, images=4)
    proc = edge("suite", "import", str(relabelled), "--suite", str(suite), "--dataset", "set",
                "--policy", str(strict), "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["label_version"] == 2
    proc = edge("test", "--model", str(DEMO), "--suite", str(suite), "--no-record")
    assert proc.returncode == 1, proc.stderr
    assert "FAILED" in proc.stdout and "label version 2" in proc.stdout
    assert "FAILED non_regression [all] baseline" in proc.stdout
    assert "none was given" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "{tmp}/nowhere"], "not a suite (no suite.json)"),
        (["--suite", "{suite}", "--model", "{tmp}"], "manifest.json: not found"),
        (["--suite", "{suite}", "--baseline", "{tmp}/none"], "manifest.json: not found"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    suite = make_suite(tmp_path / "suite", policy=CLI_POLICY)
    given = [a.format(tmp=tmp_path, suite=suite) for a in args]
    if "--model" not in given:
        given += ["--model", str(DEMO)]
    proc = edge("test", *given, "--no-record")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert message in proc.stderr


def test_simulate_suite_and_show(tmp_path: Path) -> None:
    out = tmp_path / "standard"
    proc = edge("simulate", "suite", "--out", str(out), "--count", "4", "--seed", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    made = json.loads(proc.stdout)
    assert (made["images"], made["threat_images"], made["cells_covered"]) == (4, 2, 2)
    proc = edge("suite", "show", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert (shown["sha256"], shown["images"]) == (made["sha256"], 4)
    assert shown["classes"] == ["gun", "knife", "blade", "scissors", "bottle"]
    again = edge("simulate", "suite", "--out", str(out), "--count", "4")
    assert again.returncode == 2 and "exists and is not an empty folder" in again.stderr
