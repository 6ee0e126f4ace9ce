"""Logged frames to a COCO data set for labelling (CONTRACT.md section 6).

The layout mirrors `edge simulate dataset`: `annotations.json` beside `images/`, where each
frame is `<frame-id>.png` (8-bit pseudo-colour, the image record's `file_name`) and, for
dual-energy frames, `<frame-id>_high.png` / `<frame-id>_low.png` (16-bit, the record's
`dual_energy`). The model's detections are pre-annotations that labellers correct;
`manifest.json` holds the counts, the filters, and the SHA-256 of every other file.

An export is all there or not there: it is written into `<out>.partial-<random>` beside
`out`, every file and directory fsync'd, then renamed to `out` in one step; on any failure
the partial directory goes. Free space is checked before the first byte is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import BadInputError, EdgeError
from edge.frames import Frame
from edge.ingest.images import dual_energy_paths
from edge.pseudocolor import render_pseudocolor
from edge.store import FrameNotFoundError, ImageMissingError, Store, StoredFrame, StoreError
from edge.store.images import fsync_dir, png_params, write_fsynced
from edge.store.queries import MAX_LIMIT
from edge.store.records import iso, parse_time, to_json, utc_now
from edge.upgrade import audit

logger = logging.getLogger(__name__)

MANIFEST_FORMAT = "edge-export/1"
ANNOTATIONS_NAME = "annotations.json"
MANIFEST_NAME = "manifest.json"
IMAGES_DIRNAME = "images"
# zlib level 1: exports travel on USB sticks, where bytes cost more than the few ms of
# deflate per channel; noisy 16-bit data barely compresses past level 1 anyway.
PNG_LEVEL = 1
# Headroom over the estimate: file-system metadata, block rounding, a manifest longer
# than guessed. The estimate itself assumes incompressible pixels, an upper bound.
MARGIN_BYTES = 1 << 20
_BLOCK = 4096
_JSON_BYTES_PER_IMAGE = 2048
_JSON_BYTES_PER_DETECTION = 320


class ExportError(EdgeError):
    """The export cannot be written where asked (out not empty, no room, I/O error);
    nothing of it is left behind."""

    http_status = 507


@dataclass(frozen=True)
class ExportFilters:
    """Which logged frames an export takes; times are stored ISO 8601 UTC text."""

    since: str | None = None
    until: str | None = None
    alarms: bool = False
    not_screened: bool = False
    disputed: bool = False
    class_name: str | None = None
    sample: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sample is not None and self.sample < 1:
            raise BadInputError(f"sample: expected a frame count >= 1, got {self.sample}")
        if self.class_name is not None and not self.class_name.strip():
            raise BadInputError("class: expected a class name, got an empty string")

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["class"] = doc.pop("class_name")
        return doc


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote. `skipped`: frame ids selected but not written, by reason
    ("missing_image": files gone or damaged, "deleted": removed by retention meanwhile)."""

    out: Path
    images: int
    annotations: int
    disputed: int
    per_class: dict[str, int]
    bytes: int  # of every file written, manifest.json included
    manifest_sha256: str
    created: str
    filters: dict[str, Any]
    skipped: dict[str, list[str]] = field(default_factory=dict)
    export_id: int | None = None  # the row in the store's `exports` table; None: not recorded

    def as_json(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "annotations_file": str(self.out / ANNOTATIONS_NAME),
            "manifest_file": str(self.out / MANIFEST_NAME),
            "images": self.images,
            "annotations": self.annotations,
            "disputed": self.disputed,
            "per_class": self.per_class,
            "skipped": {reason: len(ids) for reason, ids in self.skipped.items()},
            "bytes": self.bytes,
            "manifest_sha256": self.manifest_sha256,
            "created": self.created,
            "filters": self.filters,
            "export_id": self.export_id,
        }


def export_dataset(
    store: Store,
    out: Path,
    *,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    alarms: bool = False,
    not_screened: bool = False,
    disputed: bool = False,
    class_name: str | None = None,
    sample: int | None = None,
    seed: int = 0,
    model_classes: Mapping[str, Sequence[str]] | None = None,
    actor: str | None = None,
) -> ExportSummary:
    """Write the chosen logged frames to `out` as a COCO data set and record the export,
    in the store's `exports` table and in the audit log as `actor` (default: the login
    running this command).

    Selection: frames received in [since, until) (UTC; since inclusive, until exclusive).
    `alarms` (the model alarmed), `not_screened` (NOT SCREENED, or no result yet) and
    `disputed` (the operator's decision disagrees with the alarm) are alternatives: given
    together they take frames matching ANY of them, so `--alarms --disputed` is "everything
    a human should look at again"; with none given every frame in the window is taken.
    `class_name` then keeps frames whose latest result detected that class, and `sample`
    draws that many of those at random, the same ones for the same `seed` and log.
    Frames whose image files are missing or damaged are skipped and counted in the
    manifest (in a sample, the next frame drawn stands in). Image order: disputed frames
    first, then the rest, each oldest first.

    `model_classes` ("name@version" -> class list) names the categories: the union of the
    exported frames' models' class lists in first-seen order, so category_id is class
    index + 1 for the first model. A model not in it adds only the classes it detected.
    `out`'s parent must exist (a missing one is more likely an unmounted drive than a
    folder to create). Raises ExportError (out not empty, no room, I/O error) leaving
    nothing behind; BadInputError for a bad time or sample size.
    """
    filters = ExportFilters(
        since=None if since is None else parse_time(since),
        until=None if until is None else parse_time(until),
        alarms=alarms,
        not_screened=not_screened,
        disputed=disputed,
        class_name=class_name,
        sample=sample,
        seed=seed,
    )
    out = Path(out).absolute()
    check_destination(out)
    classes = dict(model_classes or {})
    selection = select_frames(store, filters, classes)
    check_free_space(out.parent, estimate_bytes(selection.frames[: selection.take]))
    created = iso(utc_now())
    with _partial_dir(out) as partial:
        written = _write_export(store, partial, selection, classes, filters, created)
        _publish(partial, out)
    fsync_dir(out.parent)  # the rename itself durable
    summary = _record(
        store, ExportSummary(out=out, created=created, filters=filters.as_json(), **written)
    )
    _audit(store, summary, actor or audit.cli_actor())
    return summary


# ----------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Selection:
    """The frames an export may take, each with its latest result, in the order they are
    tried (a seeded shuffle when sampling); `take`: how many to write, the next ones
    standing in for frames whose images turn out missing; `skipped`: ids left out by
    reason ("missing_image", "deleted" by retention meanwhile)."""

    frames: list[StoredFrame]
    take: int
    skipped: dict[str, list[str]]


def select_frames(
    store: Store, filters: ExportFilters, model_classes: Mapping[str, Sequence[str]]
) -> Selection:
    """What `filters` choose from the log (see export_dataset)."""
    skipped: dict[str, list[str]] = {"missing_image": [], "deleted": []}
    chosen: list[StoredFrame] = []
    for listed in _candidates(store, filters):
        if listed.missing_image:
            skipped["missing_image"].append(listed.id)
            continue
        try:
            stored = store.get_frame(listed.id)
        except FrameNotFoundError:
            skipped["deleted"].append(listed.id)
            continue
        if filters.class_name is None or filters.class_name in _detected_classes(
            stored, model_classes
        ):
            chosen.append(stored)
    if filters.sample is None:
        return Selection(chosen, len(chosen), skipped)
    random.Random(filters.seed).shuffle(chosen)  # candidates come oldest first: deterministic
    return Selection(chosen, min(filters.sample, len(chosen)), skipped)


def export_order(frames: Iterable[StoredFrame]) -> list[StoredFrame]:
    """Disputed frames first, then the others; each group oldest first."""
    return sorted(frames, key=_export_key)


def _export_key(frame: StoredFrame) -> tuple[bool, str, str]:
    return (not frame.disputed, frame.received, frame.id)


def _candidates(store: Store, filters: ExportFilters) -> list[StoredFrame]:
    """Frames in the time window matching any of the alarm/not-screened/disputed flags
    (all of them when no flag is set), oldest first, each once."""
    # (alarm, not_screened, disputed) per query; store.list_frames ANDs its arguments.
    queries: list[tuple[bool | None, bool | None, bool | None]] = [
        query
        for wanted, query in (
            (filters.alarms, (True, None, None)),
            (filters.not_screened, (None, True, None)),
            (filters.disputed, (None, None, True)),
        )
        if wanted
    ] or [(None, None, None)]
    found: dict[str, StoredFrame] = {}
    for alarm, not_screened, disputed in queries:
        offset = 0
        while True:
            page = store.list_frames(
                MAX_LIMIT,
                offset,
                since=filters.since,
                until=filters.until,
                alarm=alarm,
                not_screened=not_screened,
                disputed=disputed,
                newest_first=False,
            )
            for frame in page:
                found.setdefault(frame.id, frame)
            if len(page) < MAX_LIMIT:
                break
            offset += len(page)
    return sorted(found.values(), key=lambda f: (f.received, f.id))


def _detected_classes(stored: StoredFrame, model_classes: Mapping[str, Sequence[str]]) -> list[str]:
    if stored.result is None:
        return []
    known = model_classes.get(stored.result.model)
    return [_class_name(det, known) for det in stored.result.detections]


def _class_name(detection: Mapping[str, Any], known: Sequence[str] | None) -> str:
    """The detection's class name; results logged without class names hold the id as
    text, which a known class list resolves."""
    name = str(detection.get("class") or "")
    class_id = detection.get("class_id")
    if (
        known is not None
        and isinstance(class_id, int)
        and 0 <= class_id < len(known)
        and name in ("", str(class_id))
    ):
        return known[class_id]
    return name or str(class_id)


# ----------------------------------------------------------------------------- records


class CategoryIndex:
    """Category ids 1, 2, ... for class names in the order first seen."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def add(self, name: str) -> int:
        return self._ids.setdefault(name, len(self._ids) + 1)

    def __len__(self) -> int:
        return len(self._ids)

    def categories(self) -> list[dict[str, Any]]:
        return [{"id": i, "name": n, "supercategory": "threat"} for n, i in self._ids.items()]


def image_attributes(stored: StoredFrame) -> dict[str, Any]:
    """Slice-worthy facts of a frame: where and when it came from, what the model said,
    what the operator decided. Scalar scanner metadata rides along; the log's own fields
    win a name clash."""
    result = stored.result
    scanner = {
        key: value
        for key, value in stored.metadata.items()
        if isinstance(value, str | int | float | bool)
    }
    return {
        **scanner,
        "frame_id": stored.id,
        "source": stored.source,
        "scanner_frame_id": stored.scanner_frame_id,
        "bag": stored.bag,
        "lane": stored.lane,
        "view": stored.view,
        "received": stored.received,
        "model": None if result is None else result.model or None,
        "model_sha256": None if result is None else result.model_sha256,
        "screened_at": None if result is None else result.screened_at,
        "state": None if result is None else result.state,
        "reason": None if result is None else result.reason,
        "alarm": stored.alarm,
        "decision": stored.decision,
        "disputed": stored.disputed,
    }


def annotation_records(
    image_id: int, detections: Iterable[Mapping[str, Any]], category_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Pre-annotations from detections ({box [x1, y1, x2, y2]} pixels): bbox [x, y, w, h]
    in pixels; ids are filled in later."""
    records = []
    for det, category_id in zip(detections, category_ids, strict=True):
        x1, y1, x2, y2 = (float(v) for v in det["box"])
        w, h = round(x2 - x1, 3), round(y2 - y1, 3)
        records.append(
            {
                "image_id": image_id,
                "category_id": category_id,
                "bbox": [round(x1, 3), round(y1, 3), w, h],
                "area": round(w * h, 3),
                "iscrowd": 0,
                "score": float(det.get("score", 0.0)),
                "pre_annotation": True,
            }
        )
    return records


# ----------------------------------------------------------------------------- space


def estimate_bytes(frames: Sequence[StoredFrame]) -> int:
    """Upper estimate of the bytes an export of `frames` writes: pixels as if they did not
    compress, PNG row filters and headers, block rounding, the JSON files, plus a margin."""
    total = MARGIN_BYTES + 2 * _BLOCK
    for stored in frames:
        pixels = stored.width * stored.height
        sizes = [pixels * 3]  # the pseudo-colour file
        sizes += [pixels * 2 for name in stored.channels if name in ("high", "low")]
        for size in sizes:
            total += size + size // 100 + stored.height + 1024 + _BLOCK
        detections = 0 if stored.result is None else len(stored.result.detections)
        total += _JSON_BYTES_PER_IMAGE + detections * _JSON_BYTES_PER_DETECTION
    return total


def check_free_space(directory: Path, needed: int) -> None:
    """Raise ExportError unless `directory`'s file system has `needed` bytes free."""
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise ExportError(
            f"not enough free space on {directory}: the export needs about {needed} bytes "
            f"({needed / 1e6:.1f} MB), {free} bytes ({free / 1e6:.1f} MB) are free; choose "
            "fewer frames (--since/--until/--sample) or a larger drive. Nothing was written"
        )


def check_destination(out: Path) -> None:
    """Refuse an `out` that holds anything, is not a folder, or whose parent is missing."""
    if not out.parent.is_dir():
        raise ExportError(
            f"{out.parent} does not exist or is not a folder (is the USB drive mounted?); "
            "the export creates only its own folder"
        )
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ExportError(f"{out} exists and is not a folder; choose a new folder name")
    if out.is_dir():
        if any(out.iterdir()):
            raise ExportError(
                f"{out} exists and is not empty; an export never overwrites: choose a new "
                "folder name or remove the old export first"
            )
        if os.path.ismount(out):
            raise ExportError(
                f"{out} is a mount point; the export must be renamed into place on the same "
                f"drive, so give a folder inside it, such as {out / 'export'}"
            )


# ----------------------------------------------------------------------------- writing


class _ExportFiles:
    """Files of one export under its partial directory, each fsync'd, with their hashes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sha256: dict[str, str] = {}
        self.bytes = 0

    def write(self, relative: str, data: bytes) -> None:
        write_fsynced(self.root / relative, data)
        self.sha256[relative] = hashlib.sha256(data).hexdigest()
        self.bytes += len(data)

    def write_json(self, relative: str, doc: Any) -> bytes:
        data = (json.dumps(doc, indent=1) + "\n").encode()
        self.write(relative, data)
        return data

    def write_frame(self, stem: str, frame: Frame) -> dict[str, Any]:
        """The frame's PNG files; returns the image record's file fields (relative paths)."""
        params = png_params(PNG_LEVEL)
        image = f"{IMAGES_DIRNAME}/{stem}.png"
        if frame.high is not None:
            rgb = render_pseudocolor(frame.high, frame.low)
        else:
            assert frame.rgb is not None  # a Frame has channels or RGB
            rgb = frame.rgb
        self.write(image, _png(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params))
        fields: dict[str, Any] = {"file_name": image}
        if frame.high is not None:
            high_path, low_path = dual_energy_paths(Path(IMAGES_DIRNAME) / stem)
            channels = {"high": (high_path, frame.high), "low": (low_path, frame.low)}
            fields["dual_energy"] = {}
            for name, (path, pixels) in channels.items():
                if pixels is not None:
                    self.write(path.as_posix(), _png(pixels, params))
                    fields["dual_energy"][name] = path.as_posix()
        return fields


def _png(pixels: npt.NDArray[Any], params: list[int]) -> bytes:
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(pixels), params)
    if not ok:
        raise ExportError(f"PNG encoding failed for an image of shape {pixels.shape}")
    return bytes(buffer.tobytes())


def _write_export(
    store: Store,
    root: Path,
    selection: Selection,
    model_classes: Mapping[str, Sequence[str]],
    filters: ExportFilters,
    created: str,
) -> dict[str, Any]:
    """Images, annotations.json and manifest.json under `root`; the summary's counts."""
    files = _ExportFiles(root)
    (root / IMAGES_DIRNAME).mkdir()
    skipped = {reason: list(ids) for reason, ids in selection.skipped.items()}
    written: list[tuple[StoredFrame, dict[str, Any]]] = []
    for stored in selection.frames:
        if len(written) == selection.take:
            break
        try:
            frame = store.load_image(stored.id)
        except ImageMissingError as exc:
            logger.warning("export: skipping a frame: %s", exc.message)
            skipped["missing_image"].append(stored.id)
            continue
        except FrameNotFoundError:
            skipped["deleted"].append(stored.id)
            continue
        height, width = frame.shape
        fields = {"width": width, "height": height, **files.write_frame(stored.id, frame)}
        written.append((stored, fields))

    categories = CategoryIndex()
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    models: Counter[str] = Counter()
    for image_id, (stored, fields) in enumerate(
        sorted(written, key=lambda w: _export_key(w[0])), start=1
    ):
        images.append({"id": image_id, **fields, "attributes": image_attributes(stored)})
        if stored.result is None:
            continue
        models[stored.result.model] += 1
        known = model_classes.get(stored.result.model)
        for name in known or ():
            categories.add(name)
        detections = stored.result.detections
        ids = [categories.add(_class_name(det, known)) for det in detections]
        annotations += annotation_records(image_id, detections, ids)
    if not len(categories):
        for known in model_classes.values():  # no model named any: still give the classes
            for name in known:
                categories.add(name)
    for number, annotation in enumerate(annotations, start=1):
        annotation["id"] = number
    names = {c["id"]: c["name"] for c in categories.categories()}
    per_class = dict(Counter(names[a["category_id"]] for a in annotations))
    disputed = sum(1 for im in images if im["attributes"]["disputed"])
    info = {"description": "edge export of logged frames for labelling", "created": created}
    files.write_json(
        ANNOTATIONS_NAME,
        {
            "info": info,
            "images": images,
            "annotations": annotations,
            "categories": categories.categories(),
        },
    )
    counts = {
        "images": len(images),
        "annotations": len(annotations),
        "disputed": disputed,
        "per_class": per_class,
        "skipped": {reason: len(ids) for reason, ids in skipped.items()},
    }
    manifest = {
        "format": MANIFEST_FORMAT,
        "created": created,
        "software": {"name": "edge-xray", "version": _software_version()},
        "filters": filters.as_json(),
        "counts": counts,
        "skipped": skipped,
        "models": dict(models),
        "files": dict(sorted(files.sha256.items())),
        "bytes": files.bytes,
    }
    manifest_bytes = files.write_json(MANIFEST_NAME, manifest)
    fsync_dir(root / IMAGES_DIRNAME)
    fsync_dir(root)
    return {
        "images": len(images),
        "annotations": len(annotations),
        "disputed": disputed,
        "per_class": per_class,
        "bytes": files.bytes,
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "skipped": skipped,
    }


@contextlib.contextmanager
def _partial_dir(out: Path) -> Iterator[Path]:
    """`<out>.partial-<random>` beside `out`, removed if the block fails in any way."""
    try:
        partial = Path(tempfile.mkdtemp(prefix=f"{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise ExportError(f"{out.parent}: cannot create the export folder ({exc})") from exc
    try:
        partial.chmod(0o755)  # mkdtemp's 0700 would hide the export from other users
        yield partial
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        reason = "no space left on the drive" if exc.errno == errno.ENOSPC else str(exc)
        raise ExportError(
            f"export to {out} failed: {reason}; nothing was kept (the partial folder was removed)"
        ) from exc
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _publish(partial: Path, out: Path) -> None:
    """Rename the finished export into place, over an empty `out` at most."""
    try:
        os.rename(partial, out)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise ExportError(
                f"{out} appeared while the export was written; an export never overwrites: "
                "choose a new folder name"
            ) from exc
        raise


def _record(store: Store, summary: ExportSummary) -> ExportSummary:
    """Add the export to the store's `exports` table; the export stands even if that fails."""
    row = {
        "created": summary.created,
        "path": str(summary.out),
        "filters": to_json(summary.filters),
        "frames": summary.images,
        "bytes": summary.bytes,
        "manifest_sha256": summary.manifest_sha256,
    }
    try:
        export_id = store.submit_write(lambda db: db.table("exports").insert(row).last_pk).result()
    except StoreError as exc:
        logger.warning("export written to %s but not recorded in the log: %s", summary.out, exc)
        return summary
    return dataclasses.replace(summary, export_id=None if export_id is None else int(export_id))


def _audit(store: Store, summary: ExportSummary, actor: str) -> None:
    """Decision exports leave the appliance: each one goes into the hash-chained audit log
    (who, when, where to, what). The export stands even if that fails, said loudly."""
    try:
        audit.record(
            store.data_dir,
            "export",
            actor=actor,
            message=f"exported {summary.images} images ({summary.disputed} disputed) "
            f"to {summary.out}",
            details={
                "path": str(summary.out),
                "filters": summary.filters,
                "images": summary.images,
                "disputed": summary.disputed,
                "manifest_sha256": summary.manifest_sha256,
                "export_id": summary.export_id,
            },
        )
    except EdgeError as exc:
        logger.error("export written to %s but not in the audit log: %s", summary.out, exc)


def _software_version() -> str:
    try:
        return version("edge-xray")
    except PackageNotFoundError:
        return "unknown"


# ----------------------------------------------------------------------------- models


def known_model_classes(model_dirs: Iterable[Path], *, required: bool) -> dict[str, list[str]]:
    """{"name@version": classes} from model directories' manifest.json (model.onnx is not
    read). `required`: a directory that cannot be read raises instead of being skipped."""
    from edge.detector.manifest import MANIFEST_NAME as MODEL_MANIFEST
    from edge.detector.manifest import parse_manifest

    found: dict[str, list[str]] = {}
    for directory in model_dirs:
        try:
            manifest = parse_manifest((Path(directory) / MODEL_MANIFEST).read_bytes())
        except (OSError, EdgeError) as exc:
            if required:
                detail = exc.message if isinstance(exc, EdgeError) else str(exc)
                raise BadInputError(f"model {directory}: {detail}") from exc
            logger.info("export: no class list from %s (%s)", directory, exc)
            continue
        found.setdefault(manifest.model_id, list(manifest.classes))
    return found
