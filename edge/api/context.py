"""`AppContext`: everything the routes need, built once by the service (or a test)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calibration.ingest import FrameCalibration
from edge.auth import LoginThrottle, UserStore
from edge.pipeline import Pipeline
from edge.store import Store
from edge.upgrade.manager import ModelManager


@dataclass
class AppContext:
    """The one context `create_app` binds the API to.

    `users`: logins, sessions and tokens; `store`: the image log (history, decisions,
    exports; without one only the frames held in memory are served); `sources`: one
    status callable per ingest source for health; `tdr_dir`: DICOS Threat Detection
    Reports; `export_dir`: where `POST /api/exports` writes data sets; `event_heartbeat_s`:
    the live-event stream's keep-alive period; `max_event_clients`: live-event streams at
    once; `event_queue`: events held per slow client before it is told to resync;
    `models`: the model store (upgrade, rollback, list); without one, upgrades answer 501;
    `calibration`: the scanner profile applied to raw 16-bit uploads, as the serial and
    hot-folder sources apply it (None: uploads are screened as sent).
    """

    service: Pipeline
    users: UserStore
    version: str = "unknown"
    store: Store | None = None
    sources: list[Callable[[], dict[str, Any]]] = field(default_factory=list)
    max_upload_bytes: int = 64 << 20
    tdr_dir: Path | None = None
    export_dir: Path | None = None
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    event_heartbeat_s: float = 15.0
    max_event_clients: int = 64
    event_queue: int = 64
    models: ModelManager | None = None
    calibration: FrameCalibration | None = None
