"""One typed configuration: a TOML file (optional), strict, with defaults that run the demo.

Every key has a description and bounds; unknown keys are refused with their key path, so a
typo never silently falls back to a default. `edge serve --check-config FILE` validates a
file without starting anything. Command-line options override the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import BadInputError

MAX_CONFIG_BYTES = 1 << 20
# The shipped factory model (CONTRACT.md 3): what a fresh device screens with.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "models" / "demo-xray-det"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    host: str = Field("127.0.0.1", description="address the HTTP API and UI bind to")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port (0: any free port)")


class ModelConfig(_Strict):
    dir: Path | None = Field(
        None,
        description="the factory model a fresh data directory starts with; default: the shipped "
        "demo model (later models come from upgrades, DATA/models)",
    )
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="onnxruntime execution providers in order of preference",
    )
    intra_op_threads: int = Field(0, ge=0, le=256, description="inference threads (0: all cores)")
    deadline_s: float = Field(
        10.0, gt=0, le=600, description="per-frame inference deadline; past it: NOT SCREENED"
    )


class DemoConfig(_Strict):
    enabled: bool = Field(True, description="feed simulated bags when no source is configured")
    interval_s: tuple[float, float] = Field(
        (1.0, 2.0), description="random pause between demo bags, seconds [min, max]"
    )
    threat_ratio: float = Field(0.5, ge=0, le=1, description="share of demo bags with a threat")

    @model_validator(mode="after")
    def _ordered(self) -> DemoConfig:
        low, high = self.interval_s
        if not 0 < low <= high <= 3600:
            raise ValueError(
                f"interval_s: expected 0 < min <= max <= 3600, got {list(self.interval_s)}"
            )
        return self


class SerialSource(_Strict):
    type: Literal["serial"]
    url: str = Field(
        description="device path (/dev/ttyUSB0) or any pyserial URL (socket://, loop://)"
    )
    baudrate: int = Field(115200, ge=1200, le=12_000_000, description="serial speed, bit/s")
    lane: int = Field(1, ge=0, le=999, description="checkpoint lane this scanner serves")
    heartbeat_s: float = Field(2.0, gt=0, le=3600, description="heartbeat period, seconds")
    silence_s: float = Field(10.0, gt=0, le=3600, description="link reported silent after this")


class FolderSource(_Strict):
    type: Literal["folder"]
    path: Path = Field(description="hot folder the scanner drops image files into")
    settle_s: float = Field(2.0, ge=0, le=3600, description="a file must be unchanged this long")
    lane: int = Field(1, ge=0, le=999, description="checkpoint lane this scanner serves")


Source = Annotated[SerialSource | FolderSource, Field(discriminator="type")]


class StoreConfig(_Strict):
    data_dir: Path | None = Field(None, description="data directory; default --data / $EDGE_DATA")
    min_free_mb: int = Field(1024, ge=0, description="retention keeps at least this much disk free")
    max_age_days: int = Field(90, ge=1, le=36500, description="frames older than this are deleted")


class LimitsConfig(_Strict):
    max_frame_mb: int = Field(256, ge=1, le=4096, description="largest frame accepted, MiB")
    max_upload_mb: int = Field(64, ge=1, le=4096, description="largest HTTP upload, MiB")
    queue_frames: int = Field(8, ge=1, le=1024, description="frames waiting per pipeline stage")


class AuthConfig(_Strict):
    session_idle_min: int = Field(
        60, ge=1, le=7 * 24 * 60, description="a login session unused this long ends, minutes"
    )
    session_max_h: float = Field(
        12.0, gt=0, le=31 * 24, description="a login session ends this long after login, hours"
    )


class UpgradeConfig(_Strict):
    compatible: str = Field(
        "xray-dual-energy-v1",
        min_length=1,
        max_length=200,
        description="this device's compatible string: a bundle must list it",
    )
    keys_dir: Path | None = Field(
        None, description="more trusted minisign public keys (*.pub) besides DATA/keys"
    )
    suite_dir: Path | None = Field(
        None, description="the device's regression suite (the gate); default DATA/suite"
    )
    max_bundle_mb: int = Field(1024, ge=1, le=65536, description="largest bundle file, MiB")
    max_member_mb: int = Field(512, ge=1, le=65536, description="largest file in a bundle, MiB")
    watch_s: float = Field(
        1.0, gt=0, le=3600, description="how often the service looks for a new active model, s"
    )
    usb_dir: Path | None = Field(
        None,
        description="the service installs a *.edgebundle found at the top of this folder or of "
        "a folder directly under it (one auto-mounted USB stick each); unset: off",
    )
    usb_scan_s: float = Field(
        2.0, ge=0.1, le=3600, description="how often the service looks at usb_dir, seconds"
    )


class PieceLevelsConfig(_Strict):
    max_wire_mm: float = Field(
        0.18, gt=0, le=10, description="the thinnest wire seen must be this thin or thinner, mm"
    )
    min_steel_mm: float = Field(
        14.0, ge=0, le=100, description="a wire must be seen through this much steel, mm"
    )
    max_grating_mm: float = Field(
        1.6, gt=0, le=20, description="the finest grating resolved: bars this wide or finer, mm"
    )
    max_organic_mm: float = Field(
        0.3, gt=0, le=20, description="the thinnest organic sheet seen, this thin or thinner, mm"
    )
    max_age_h: float = Field(
        24.0, gt=0, le=24 * 365, description="a check older than this does not count, hours"
    )
    required_for_upgrade: bool = Field(
        False, description="refuse upgrades while the latest check failed or is too old"
    )


class CalibrationConfig(_Strict):
    correct_frames: bool = Field(
        True, description="correct raw scanner frames with the active profile at ingest"
    )
    keep_raw: bool = Field(False, description="keep each raw frame too, DATA/calibration/raw")
    testpiece: PieceLevelsConfig = PieceLevelsConfig()


class LoggingConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="least severe records written to the log file or the journal"
    )
    file: Path | None = Field(
        None, description="the JSON log file when not run by systemd; default DATA/logs/edge.log"
    )
    max_mb: int = Field(10, ge=1, le=1024, description="a log file is rotated at this size, MiB")
    backups: int = Field(5, ge=1, le=100, description="rotated log files kept (edge.log.1, ...)")
    journal: Literal["auto", "always", "never"] = Field(
        "auto",
        description="log to journald: auto when run by systemd, always, or never (the file)",
    )


class EdgeConfig(_Strict):
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    model: ModelConfig = ModelConfig()
    demo: DemoConfig = DemoConfig()
    sources: list[Source] = Field(default_factory=list, description="scanner sources")
    store: StoreConfig = StoreConfig()
    limits: LimitsConfig = LimitsConfig()
    upgrade: UpgradeConfig = UpgradeConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    logging: LoggingConfig = LoggingConfig()


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for item in loc:
        if isinstance(item, int):
            path += f"[{item}]"
        elif item not in ("serial", "folder"):  # the source's type tag adds nothing
            path += ("." if path else "") + item
    return path


def config_errors(exc: ValidationError) -> list[str]:
    """One line per error: `key.path: message`."""
    return [f"{_key_path(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]


def parse_config(text: str, source: str = "<config>") -> EdgeConfig:
    """Validate TOML text; BadInputError lists every problem with its key path."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{source}: not valid TOML: {exc}") from exc
    try:
        return EdgeConfig.model_validate(raw)
    except ValidationError as exc:
        lines = "\n".join(f"  {line}" for line in config_errors(exc))
        raise BadInputError(f"{source}: {exc.error_count()} error(s):\n{lines}") from exc


def load_config(path: Path | None) -> EdgeConfig:
    """The configuration in `path`, or the defaults (the demo) when there is none."""
    if path is None:
        return EdgeConfig()
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise BadInputError(
                f"{path}: {size} bytes; a configuration is at most {MAX_CONFIG_BYTES}"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{path}: cannot read the configuration: {exc}") from exc
    return parse_config(text, str(path))


def documented_keys(model: type[BaseModel] = EdgeConfig, prefix: str = "") -> list[str]:
    """Every key path of the configuration (for the documentation check)."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.append(path)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(documented_keys(annotation, f"{path}."))
    if model is EdgeConfig:
        for source in (SerialSource, FolderSource):
            keys.extend(documented_keys(source, "sources[]."))
    return sorted(set(keys))
