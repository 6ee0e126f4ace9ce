"""Test runs started over the API: POST /api/tests runs the real `edge test` /
`edge acceptance` as a child process on a real model store, suite and image log, and the
jobs routes follow it to its verdict and the run it recorded."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from upgrade.device import PASSING_POLICY, write_suite

from edge.api.app import AppContext, create_app
from edge.api.run_jobs import TestJobs
from edge.auth import UserStore
from edge.pipeline import Pipeline
from edge.store import Store
from edge.upgrade.engine import Upgrader, UpgradeSettings
from edge.upgrade.manager import ModelManager

from .accounts import TestClient, login

JOB_WAIT_S = 60.0


@dataclass
class Appliance:
    client: TestClient
    data: Path
    store: Store


def context(data: Path, factory: Path, users: UserStore) -> tuple[AppContext, Store]:
    settings = UpgradeSettings(key_dirs=(data / "keys",), suite_dir=data / "suite",
                               factory_dir=factory)  # fmt: skip
    Upgrader(data, settings, gate=None, actor="test").prepare()  # installs the factory model
    store = Store(data)
    models = ModelManager(data, settings, None)
    return AppContext(service=Pipeline(None, store=store), users=users, store=store,
                      models=models), store  # fmt: skip


@pytest.fixture
def appliance(
    tmp_path: Path, users: UserStore, tiny_model_dir: Callable[..., Path]
) -> Iterator[Appliance]:
    data = tmp_path / "device"
    (data / "keys").mkdir(parents=True)
    write_suite(data / "suite", PASSING_POLICY, images=2)
    ctx, store = context(data, tiny_model_dir(), users)
    with TestClient(create_app(ctx)) as client:
        client.headers["X-CSRF-Token"] = login(client, "tom")
        yield Appliance(client, data, store)
    ctx.service.close()
    store.close()


def finished(client: TestClient, job: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_WAIT_S
    while True:
        doc: dict[str, Any] = client.get(f"/api/tests/jobs/{job}").json()
        if doc["state"] != "running" or time.monotonic() > deadline:
            return doc
        time.sleep(0.1)


def test_a_regression_job_runs_the_cli_and_its_run_is_listed(appliance: Appliance) -> None:
    http = appliance.client
    started = http.post("/api/tests", json={"kind": "regression"})
    assert started.status_code == 202, started.text
    job = started.json()
    assert job["state"] == "running" and job["kind"] == "regression" and job["by"] == "user:tom"
    busy = http.post("/api/tests", json={"kind": "regression"})
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "job_busy"
    assert "still running" in busy.json()["error"]["message"]

    done = finished(http, job["job"])
    assert done["state"] == "passed", done
    assert done["exit_code"] == 0 and done["run_id"] and done["finished"]
    runs = http.get("/api/tests").json()["items"]
    assert [r["id"] for r in runs] == [done["run_id"]]
    assert http.get(f"/api/tests/{done['run_id']}/report").json()["gate"]["passed"] is True
    assert http.get("/api/tests/jobs").json()["items"][0]["job"] == job["job"]
    assert (appliance.data / "runs-jobs" / f"{job['job']}.out").stat().st_size > 0


def test_an_acceptance_job_and_a_run_that_errors(appliance: Appliance) -> None:
    http = appliance.client
    http.headers["X-CSRF-Token"] = login(http, "vera")  # vendors run acceptance too
    body = {"kind": "acceptance", "site": "Gate 4", "operator": "--model=/etc"}
    started = http.post("/api/tests", json=body)
    assert started.status_code == 202, started.text
    done = finished(http, started.json()["job"])
    # No test-piece check on this device: the acceptance runs, records, and fails that item.
    assert done["state"] == "failed" and done["exit_code"] == 1, done
    assert done["operator"] == "--model=/etc" and done["site"] == "Gate 4"
    report = http.get(f"/api/tests/{done['run_id']}/report").json()
    assert report["operator"] == "--model=/etc" and report["passed"] is False

    broken = appliance.data / "sets" / "broken"
    broken.mkdir(parents=True)
    (broken / "suite.json").write_text("{not json")
    body = {"kind": "acceptance", "site": "Gate 4", "operator": "Ann", "suite": "sets/broken"}
    errored = finished(http, http.post("/api/tests", json=body).json()["job"])
    assert errored["state"] == "error" and errored["exit_code"] == 2, errored
    assert "suite.json" in errored["message"] and errored["run_id"] is None


def test_roles_and_csrf_are_checked(appliance: Appliance) -> None:
    http = appliance.client
    del http.headers["X-CSRF-Token"]
    no_csrf = http.post("/api/tests", json={"kind": "regression"})
    assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "csrf"
    http.headers["X-CSRF-Token"] = login(http, "olga")
    refused = http.post("/api/tests", json={"kind": "regression"})
    assert (
        refused.status_code == 403 and "technician or vendor" in refused.json()["error"]["message"]
    )
    http.post("/api/logout")
    assert http.post("/api/tests", json={"kind": "regression"}).status_code == 401
    assert http.get("/api/tests/jobs").status_code == 401
    assert not (appliance.data / "runs-jobs").exists()  # nothing was started


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"kind": "regression", "extra": 1}, 422, "extra"),
        ({"kind": "smoke"}, 422, "kind"),
        ({}, 422, "kind"),
        ({"kind": "regression", "site": "x"}, 400, "takes no site"),
        ({"kind": "acceptance", "site": "Gate 4"}, 400, "operator"),
        ({"kind": "acceptance", "site": " ", "operator": "Ann"}, 400, "site"),
        ({"kind": "acceptance", "site": "x" * 201, "operator": "Ann"}, 422, "site"),
        ({"kind": "acceptance", "site": "a\x07b", "operator": "Ann"}, 400, "printable"),
    ],
)
def test_malformed_bodies_are_refused(
    appliance: Appliance, body: dict[str, Any], status: int, says: str
) -> None:
    answer = appliance.client.post("/api/tests", json=body)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]["message"]
    assert appliance.client.get("/api/tests/jobs").json()["items"] == []


def test_a_body_that_is_not_json_is_refused(appliance: Appliance) -> None:
    answer = appliance.client.post(
        "/api/tests", content=b"kind=regression", headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("suite", ["../outside", "/etc", "suite/../../outside", "\x00", "."])
def test_suites_outside_the_data_directory_are_refused(
    appliance: Appliance, tmp_path: Path, suite: str
) -> None:
    outside = tmp_path / "outside"
    write_suite(outside, PASSING_POLICY, images=1)
    (appliance.data / "linked").symlink_to(outside)
    for name in (suite, str(outside), "linked"):
        body = {"kind": "acceptance", "site": "s", "operator": "o", "suite": name}
        answer = appliance.client.post("/api/tests", json=body)
        assert answer.status_code == 400, (name, answer.text)
        assert answer.json()["error"]["code"] == "bad_input"
    assert appliance.client.get("/api/tests/jobs").json()["items"] == []


def test_without_a_suite_or_a_model_store_it_says_why(
    appliance: Appliance, tmp_path: Path, users: UserStore
) -> None:
    import shutil

    shutil.rmtree(appliance.data / "suite")
    answer = appliance.client.post("/api/tests", json={"kind": "regression"})
    assert answer.status_code == 409 and "no regression suite at" in answer.text
    store = Store(tmp_path / "plain")
    pipeline = Pipeline(None, store=store)
    ctx = AppContext(service=pipeline, users=users, store=store)
    with TestClient(create_app(ctx)) as plain:
        plain.headers["X-CSRF-Token"] = login(plain, "tom")
        answer = plain.post("/api/tests", json={"kind": "regression"})
        assert answer.status_code == 501 and "--model" in answer.json()["error"]["message"]
    pipeline.close()
    store.close()


def test_shutdown_stops_a_running_job_and_a_restart_forgets_it(
    tmp_path: Path, users: UserStore, tiny_model_dir: Callable[..., Path]
) -> None:
    data = tmp_path / "device"
    (data / "keys").mkdir(parents=True)
    write_suite(data / "suite", PASSING_POLICY, images=2)
    ctx, store = context(data, tiny_model_dir(), users)
    client = TestClient(create_app(ctx))
    with client:
        client.headers["X-CSRF-Token"] = login(client, "tom")
        job = client.post("/api/tests", json={"kind": "regression"}).json()
        assert job["state"] == "running"
    # The lifespan ended: the child was terminated and its job ended "error", not lost.
    stopped = client.get(f"/api/tests/jobs/{job['job']}").json()
    assert stopped["state"] == "error" and stopped["exit_code"] != 0, stopped
    assert "service shut down" in stopped["message"]
    with TestClient(create_app(ctx)) as again:
        login(again, "tom")
        assert again.get(f"/api/tests/jobs/{job['job']}").status_code == 404
    ctx.service.close()
    store.close()


@pytest.mark.parametrize(
    ("code", "says"),
    [
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed by signal 9"),
        (
            "raise RuntimeError('boom')",
            "RuntimeError: boom; the run printed no report (exit code 1)",
        ),
        ("import sys; print('{\"run_id\": 5}'); sys.exit(0)", "the report has no run id"),
    ],
)
def test_a_child_that_dies_or_gives_no_verdict_ends_in_error(
    tmp_path: Path, code: str, says: str
) -> None:
    jobs = TestJobs()
    job = jobs.start("regression", [sys.executable, "-c", code], tmp_path, "user:tom")
    assert jobs.wait(JOB_WAIT_S)
    done = jobs.get(job.id).as_json()
    assert done["state"] == "error" and done["run_id"] is None, done
    assert says in done["message"]
    jobs.close()
