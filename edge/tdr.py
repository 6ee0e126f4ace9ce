"""DICOS Threat Detection Reports (TDR): one screening Result as the TDR of its source image.

The structure mirrors the DICOS toolkit's own TDRs (SimpleBaggageTDR.dcs, v03_tdr.dcs in
the shared fixtures): group 0x4010 tag numbers and VRs as those files write them, one
Threat Sequence item per detection, boxes in the source image's pixel coordinates.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from edge.errors import BadInputError
from edge.frames import Detections, Result, ScreeningState
from edge.store.images import write_durable

TDR_SOP_CLASS_UID = UID("1.2.840.10008.5.1.4.1.1.501.3")
DICOS_VERSION = "V03"
# A fixed UID for this writer, derived from its name under pydicom's UID root.
IMPLEMENTATION_CLASS_UID = generate_uid(entropy_srcs=["edge-xray DICOS TDR writer"])
try:
    _VERSION = version("edge-xray")
except PackageNotFoundError:  # running from a source tree that was never installed
    _VERSION = "unknown"
IMPLEMENTATION_VERSION_NAME = f"EDGE_{_VERSION}"[:16]  # SH: 16 characters at most

# DICOS (group 0x4010) tags and the VRs the toolkit's fixtures write them with.
THREAT_ROI_VOXEL_SEQUENCE = 0x40101001
THREAT_ROI_BASE = 0x40101004  # FL x, y, z: first voxel of the region
THREAT_ROI_EXTENTS = 0x40101005  # FL x, y, z: size of the region in voxels
THREAT_ROI_BITMAP = 0x40101006  # OB one bit per voxel, x fastest, least significant bit first
POTENTIAL_THREAT_OBJECT_ID = 0x40101010
THREAT_SEQUENCE = 0x40101011
THREAT_CATEGORY = 0x40101012
THREAT_CATEGORY_DESCRIPTION = 0x40101013
ATD_ABILITY_ASSESSMENT = 0x40101014
ATD_ASSESSMENT_FLAG = 0x40101015
ATD_ASSESSMENT_PROBABILITY = 0x40101016
BOUNDING_POLYGON = 0x4010101D  # FL (x, y, z) points; two points are the box's diagonal
ABORT_REASON = 0x40101021
ABORT_FLAG = 0x40101024
TDR_TYPE = 0x40101027
THREAT_DETECTION_ALGORITHM_AND_VERSION = 0x40101029  # LO [name, version]
ALARM_DECISION_TIME = 0x4010102B
ALARM_DECISION = 0x40101031
NUMBER_OF_TOTAL_OBJECTS = 0x40101033
NUMBER_OF_ALARM_OBJECTS = 0x40101034
PTO_REPRESENTATION_SEQUENCE = 0x40101037
ATD_ASSESSMENT_SEQUENCE = 0x40101038
DICOS_VERSION_TAG = 0x4010103A
OOI_TYPE = 0x40101042
ACQUISITION_STATUS = 0x40101044
SCAN_TYPE = 0x40101048
ALGORITHM_ROUTING_CODE_SEQUENCE = 0x40101064
TOTAL_PROCESSING_TIME = 0x40101069  # FL milliseconds
ADDITIONAL_SCREENING_PERFORMED = 0x4010106D
IMAGE_SCALE_REPRESENTATION = 0x40101075  # FD as the toolkit writes it (DS in pydicom's dictionary)

# Every class the appliance detects is a prohibited item ("PI" in DICOS' defined terms);
# the class name goes in the free-text description.
THREAT_CATEGORY_PI = "PI"
# DICOS has no abort reason for a failed detector; NOT_REVIEWED says the bag was not assessed.
ABORT_REASON_NOT_SCREENED = "NOT_REVIEWED"
MAX_THREATS = 0xFFFF  # object counts are US


def alarm_decision(result: Result) -> str:
    """DICOS Alarm Decision: ALARM, CLEAR, or UNKNOWN for a frame that was NOT SCREENED."""
    if result.alarm is None:
        return "UNKNOWN"
    return "ALARM" if result.alarm else "CLEAR"


def build_tdr(
    *,
    source: Mapping[str, Any],
    result: Result,
    class_names: list[str],
    algorithm: str,
    algorithm_version: str,
    frame_shape: tuple[int, int],
    decided_at: datetime | None = None,
) -> Dataset:
    """The TDR of `result` as a pydicom Dataset with file meta, ready to save.

    `source` is the screened image's frame.meta["dicos"]; `frame_shape` is (height, width)
    in pixels, the space of the result's xyxy boxes; `decided_at` defaults to now (UTC).
    """
    reference = _source_reference(source)
    _check_shape(source, frame_shape)
    _check_long_string("algorithm name", algorithm)
    _check_long_string("algorithm version", algorithm_version)
    screened = result.state is ScreeningState.SCREENED
    # A frame that was not screened reports no objects, whatever it carries.
    detections = result.detections if screened else Detections.empty()
    if len(detections) > MAX_THREATS:
        raise BadInputError(
            f"TDR: expected at most {MAX_THREATS} detections, got {len(detections)}"
        )
    for class_id in detections.class_ids:
        if not 0 <= int(class_id) < len(class_names):
            raise BadInputError(
                f"TDR: class id {int(class_id)} is outside the model's {len(class_names)} classes"
            )
    moment = (decided_at or datetime.now(UTC)).astimezone(UTC)
    date, time = moment.strftime("%Y%m%d"), moment.strftime("%H%M%S.%f")

    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: class names are free text
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SOPClassUID = TDR_SOP_CLASS_UID
    ds.SOPInstanceUID = generate_uid()
    _copy(ds, source, "StudyDate", "DA", default="")
    ds.SeriesDate = ds.ContentDate = date
    _copy(ds, source, "StudyTime", "TM", default="")
    ds.SeriesTime = ds.ContentTime = time
    ds.TimezoneOffsetFromUTC = "+0000"
    ds.Modality = "TDR"
    ds.Manufacturer = "edge-xray"
    ds.ReferencedStudySequence = Sequence([_referenced_instance(reference)])
    # DICOS keeps the Object of Inspection (bag) ID in the patient module.
    _copy(ds, source, "PatientID", "LO", default="")
    _copy(ds, source, "IssuerOfPatientID", "LO")
    _copy(ds, source, "TypeOfPatientID", "CS")
    ds.PatientSex = "U"
    ds.SoftwareVersions = _VERSION
    _copy(ds, source, "StudyInstanceUID", "UI")
    ds.SeriesInstanceUID = generate_uid()
    _copy(ds, source, "StudyID", "SH", default="")  # DICOS Scan ID
    ds.InstanceNumber = 1
    _copy(ds, source, "FrameOfReferenceUID", "UI")  # the boxes are in the source's frame
    ds.PositionReferenceIndicator = ""

    threats = [
        _threat_item(
            index,
            _clip_box(box, frame_shape),
            float(score),
            class_names[int(class_id)],
            reference,
        )
        for index, (box, score, class_id) in enumerate(
            zip(detections.boxes, detections.scores, detections.class_ids, strict=True)
        )
    ]
    _put(ds, THREAT_SEQUENCE, "SQ", Sequence(threats))
    _put(ds, ABORT_FLAG, "CS", "SUCCESS" if screened else "ABORT")
    if not screened:
        _put(ds, ABORT_REASON, "CS", ABORT_REASON_NOT_SCREENED)
    _put(ds, TDR_TYPE, "CS", "MACHINE")
    _put(ds, THREAT_DETECTION_ALGORITHM_AND_VERSION, "LO", [algorithm, algorithm_version])
    _put(ds, ALARM_DECISION_TIME, "DT", f"{date}{time}+0000")
    _put(ds, ALARM_DECISION, "CS", alarm_decision(result))
    _put(ds, NUMBER_OF_TOTAL_OBJECTS, "US", len(threats))
    _put(ds, NUMBER_OF_ALARM_OBJECTS, "US", len(threats))  # every reported object alarms
    _put(ds, DICOS_VERSION_TAG, "CS", DICOS_VERSION)
    _put(ds, OOI_TYPE, "CS", str(source.get("OOIType") or "BAGGAGE"), copied=True)
    for tag, keyword in ((ACQUISITION_STATUS, "AcquisitionStatus"), (SCAN_TYPE, "ScanType")):
        if source.get(keyword):  # the scanner's word, or nothing: never invented
            _put(ds, tag, "CS", str(source[keyword]), copied=True)
    _put(ds, ALGORITHM_ROUTING_CODE_SEQUENCE, "SQ", Sequence())
    processing_ms = _processing_ms(result)
    if processing_ms is not None:
        _put(ds, TOTAL_PROCESSING_TIME, "FL", processing_ms)
    _put(ds, ADDITIONAL_SCREENING_PERFORMED, "CS", "NO")
    _put(ds, IMAGE_SCALE_REPRESENTATION, "FD", 1.0)

    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = TDR_SOP_CLASS_UID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return ds


def write_tdr(
    path: Path,
    *,
    source: Mapping[str, Any],
    result: Result,
    class_names: list[str],
    algorithm: str,
    algorithm_version: str,
    frame_shape: tuple[int, int],
    decided_at: datetime | None = None,
) -> Path:
    """Write the TDR (see build_tdr) to `path`, whole or not at all; returns `path`."""
    dataset = build_tdr(
        source=source,
        result=result,
        class_names=class_names,
        algorithm=algorithm,
        algorithm_version=algorithm_version,
        frame_shape=frame_shape,
        decided_at=decided_at,
    )
    path = Path(path)
    encoded = io.BytesIO()
    dataset.save_as(encoded, enforce_file_format=True)
    write_durable([(path, encoded.getvalue())])  # temp name, fsync, rename, fsync the folder
    return path


def _source_reference(source: Mapping[str, Any]) -> tuple[str, str]:
    """(SOP Class UID, SOP Instance UID) of the source image; a TDR must reference one."""
    missing = [
        key for key in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID") if not source.get(key)
    ]
    if missing:
        raise BadInputError(
            f"TDR: the source image has no {', '.join(missing)}; expected the "
            'frame.meta["dicos"] of a DICOS image'
        )
    return str(source["SOPClassUID"]), str(source["SOPInstanceUID"])


def _check_shape(source: Mapping[str, Any], frame_shape: tuple[int, int]) -> None:
    height, width = frame_shape
    if height <= 0 or width <= 0:
        raise BadInputError(f"TDR: expected a positive frame shape, got {frame_shape}")
    rows, columns = source.get("Rows"), source.get("Columns")
    # Boxes are written in the source's pixel coordinates, so the frame must be that image.
    if rows is not None and columns is not None and (int(rows), int(columns)) != (height, width):
        raise BadInputError(
            f"TDR: expected the frame shape to match the source image ({rows}, {columns}), "
            f"got {frame_shape}"
        )


def _check_long_string(what: str, value: str) -> None:
    if not value or len(value) > 64 or "\\" in value:
        raise BadInputError(
            f"TDR: expected the {what} to be 1 to 64 characters without a backslash, got {value!r}"
        )


def _threat_item(
    index: int,
    box: tuple[float, float, float, float],
    score: float,
    class_name: str,
    reference: tuple[str, str],
) -> Dataset:
    """One potential threat object: the box on the source image and the model's assessment."""
    x1, y1, x2, y2 = box
    # The voxel region covers every pixel the box touches; the DX image is one slice thick.
    left, top = math.floor(x1), math.floor(y1)
    width = max(1, math.ceil(x2) - left)
    height = max(1, math.ceil(y2) - top)
    roi = Dataset()
    _put(roi, THREAT_ROI_BASE, "FL", [float(left), float(top), 0.0])
    _put(roi, THREAT_ROI_EXTENTS, "FL", [float(width), float(height), 1.0])
    bits = np.ones(width * height, np.uint8)
    _put(roi, THREAT_ROI_BITMAP, "OB", np.packbits(bits, bitorder="little").tobytes())

    representation = Dataset()
    representation.ReferencedInstanceSequence = Sequence([_referenced_instance(reference)])
    _put(representation, THREAT_ROI_VOXEL_SEQUENCE, "SQ", Sequence([roi]))
    _put(representation, BOUNDING_POLYGON, "FL", [x1, y1, 0.0, x2, y2, 1.0])

    assessment = Dataset()
    _put(assessment, THREAT_CATEGORY, "CS", THREAT_CATEGORY_PI)
    _put(assessment, THREAT_CATEGORY_DESCRIPTION, "LT", class_name)
    _put(assessment, ATD_ABILITY_ASSESSMENT, "CS", "NO_INTERFERENCE")
    _put(assessment, ATD_ASSESSMENT_FLAG, "CS", "THREAT")
    _put(assessment, ATD_ASSESSMENT_PROBABILITY, "FL", min(max(score, 0.0), 1.0))

    item = Dataset()
    _put(item, POTENTIAL_THREAT_OBJECT_ID, "US", index)
    _put(item, PTO_REPRESENTATION_SEQUENCE, "SQ", Sequence([representation]))
    _put(item, ATD_ASSESSMENT_SEQUENCE, "SQ", Sequence([assessment]))
    return item


def _referenced_instance(reference: tuple[str, str]) -> Dataset:
    item = Dataset()
    sop_class, sop_instance = reference
    # Copied byte for byte: toolkit UIDs with leading zeros must still match their image.
    item.add(DataElement(0x00081150, "UI", sop_class, validation_mode=config.IGNORE))
    item.add(DataElement(0x00081155, "UI", sop_instance, validation_mode=config.IGNORE))
    return item


def _clip_box(box: Any, frame_shape: tuple[int, int]) -> tuple[float, float, float, float]:
    """An xyxy box in pixels, ordered and clipped to the frame."""
    height, width = frame_shape
    x1, y1, x2, y2 = (float(v) for v in box)
    x1, x2 = sorted((min(max(x1, 0.0), width), min(max(x2, 0.0), width)))
    y1, y2 = sorted((min(max(y1, 0.0), height), min(max(y2, 0.0), height)))
    return x1, y1, x2, y2


def _processing_ms(result: Result) -> float | None:
    """Milliseconds from frame to result: the isolated detector's round trip, which holds
    the stages, else the sum of the stages; None when nothing was timed."""
    timings = result.timings_ms
    if "roundtrip" in timings:
        return float(timings["roundtrip"])
    total = float(sum(timings.values()))
    return total if total > 0 else None


def _copy(
    ds: Dataset, source: Mapping[str, Any], keyword: str, vr: str, default: str | None = None
) -> None:
    """Copy a source identifier as written (even if non-conformant), or write `default`."""
    value = source.get(keyword)
    if value is None or value == "":
        if default is not None:
            setattr(ds, keyword, default)
        return
    ds.add(DataElement(keyword, vr, str(value), validation_mode=config.IGNORE))


def _put(ds: Dataset, tag: int, vr: str, value: Any, *, copied: bool = False) -> None:
    mode = config.IGNORE if copied else None
    ds.add(DataElement(tag, vr, value, validation_mode=mode))
