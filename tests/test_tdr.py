"""DICOS Threat Detection Reports written for real DX fixtures and read back with pydicom."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from edge.errors import BadInputError, UnsupportedImageError
from edge.frames import Detections, Frame, Result, ScreeningState
from edge.ingest.dicos import load_dicos_dx
from edge.ingest.images import load_image
from edge.tdr import TDR_SOP_CLASS_UID, write_tdr

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "dicos"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
CLASS_NAMES = ["gun", "knife", "blade", "scissors"]

# Group 0x4010 tags, by number: the TDR structure is defined by the fixtures' tag numbers.
THREAT_SEQUENCE = (0x4010, 0x1011)
PTO_ID = (0x4010, 0x1010)
PTO_REPRESENTATION_SEQUENCE = (0x4010, 0x1037)
THREAT_ROI_VOXEL_SEQUENCE = (0x4010, 0x1001)
THREAT_ROI_BASE = (0x4010, 0x1004)
THREAT_ROI_EXTENTS = (0x4010, 0x1005)
THREAT_ROI_BITMAP = (0x4010, 0x1006)
BOUNDING_POLYGON = (0x4010, 0x101D)
ATD_ASSESSMENT_SEQUENCE = (0x4010, 0x1038)
THREAT_CATEGORY = (0x4010, 0x1012)
THREAT_CATEGORY_DESCRIPTION = (0x4010, 0x1013)
ATD_ASSESSMENT_FLAG = (0x4010, 0x1015)
ATD_ASSESSMENT_PROBABILITY = (0x4010, 0x1016)
ABORT_REASON = (0x4010, 0x1021)
ABORT_FLAG = (0x4010, 0x1024)
TDR_TYPE = (0x4010, 0x1027)
ALGORITHM_AND_VERSION = (0x4010, 0x1029)
ALARM_DECISION_TIME = (0x4010, 0x102B)
ALARM_DECISION = (0x4010, 0x1031)
NUMBER_OF_TOTAL_OBJECTS = (0x4010, 0x1033)
NUMBER_OF_ALARM_OBJECTS = (0x4010, 0x1034)
TOTAL_PROCESSING_TIME = (0x4010, 0x1069)

# Top-level attributes a TDR reader relies on; each must be in the toolkit's
# SimpleBaggageTDR.dcs and in ours.
IMPORTANT_TOP_LEVEL_TAGS = {
    0x00080016: "SOP Class UID",
    0x00080018: "SOP Instance UID",
    0x00080020: "Study Date",
    0x00080060: "Modality",
    0x00081110: "Referenced Study Sequence (the source image)",
    0x00100020: "Patient ID (OOI ID)",
    0x00100022: "Type of Patient ID",
    0x0020000D: "Study Instance UID",
    0x0020000E: "Series Instance UID",
    0x00200010: "Study ID (Scan ID)",
    0x40101011: "Threat Sequence",
    0x40101024: "Abort Flag",
    0x40101027: "TDR Type",
    0x40101029: "Threat Detection Algorithm and Version",
    0x4010102B: "Alarm Decision Time",
    0x40101031: "Alarm Decision",
    0x40101033: "Number of Total Objects",
    0x40101034: "Number of Alarm Objects",
    0x4010103A: "DICOS Version",
    0x40101042: "OOI Type",
    0x40101069: "Total Processing Time",
    0x40101075: "Image Scale Representation",
}

BOXES = np.array([[10.25, 20.75, 50.5, 60.0], [100.0, 110.0, 200.0, 250.0]], np.float32)
SCORES = np.array([0.91, 0.42], np.float32)
CLASS_IDS = np.array([0, 2], np.int64)


def fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(f"DICOS fixture {path} is missing; expected the shared fixtures at {FIXTURES}")
    return path


def read_quietly(path: Path) -> Dataset:
    """dcmread, ignoring pydicom's warning about the toolkit's leading-zero UIDs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dataset = pydicom.dcmread(path)
        for _ in dataset.iterall():  # values are converted, and validated, on first access
            pass
    return dataset


@pytest.fixture(scope="module")
def dx() -> Frame:
    return load_dicos_dx(fixture("v03_dx_explicit_le.dcs"))


def alarm_result() -> Result:
    detections = Detections(BOXES, SCORES, CLASS_IDS)
    return Result(ScreeningState.SCREENED, detections, "tiny@0.1.0", timings_ms={"roundtrip": 7.5})


def clear_result() -> Result:
    return Result(ScreeningState.SCREENED, Detections.empty(), "tiny@0.1.0")


def not_screened_result() -> Result:
    return Result.not_screened("detector missed its 2 s deadline", "tiny@0.1.0")


def write(tmp_path: Path, frame: Frame, result: Result, **changes: Any) -> Path:
    arguments: dict[str, Any] = {
        "source": frame.meta["dicos"],
        "result": result,
        "class_names": CLASS_NAMES,
        "algorithm": "tiny",
        "algorithm_version": "0.1.0",
        "frame_shape": frame.shape,
    }
    arguments.update(changes)
    return write_tdr(tmp_path / "report.dcs", **arguments)


def test_alarm_report_reads_back(tmp_path: Path, dx: Frame) -> None:
    source = dx.meta["dicos"]
    decided = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    path = write(tmp_path, dx, alarm_result(), decided_at=decided)
    ds = pydicom.dcmread(path)

    assert ds.file_meta.MediaStorageSOPClassUID == TDR_SOP_CLASS_UID
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPClassUID == TDR_SOP_CLASS_UID == "1.2.840.10008.5.1.4.1.1.501.3"
    assert ds.Modality == "TDR"
    assert ds.StudyInstanceUID == source["StudyInstanceUID"]
    assert ds.SeriesInstanceUID != source["SeriesInstanceUID"]
    assert ds.SOPInstanceUID != source["SOPInstanceUID"]
    assert (ds.PatientID, ds.IssuerOfPatientID, ds.TypeOfPatientID) == (
        source["PatientID"],
        source["IssuerOfPatientID"],
        source["TypeOfPatientID"],
    )
    assert ds.StudyID == source["StudyID"]
    (study_ref,) = ds.ReferencedStudySequence
    assert study_ref.ReferencedSOPInstanceUID == source["SOPInstanceUID"]

    assert ds[TDR_TYPE].value == "MACHINE"
    assert ds[ALARM_DECISION].value == "ALARM"
    assert ds[ABORT_FLAG].value == "SUCCESS"
    assert ds[ALARM_DECISION_TIME].value == "20240506070809.123456+0000"
    assert list(ds[ALGORITHM_AND_VERSION].value) == ["tiny", "0.1.0"]
    assert ds[NUMBER_OF_TOTAL_OBJECTS].value == 2
    assert ds[NUMBER_OF_ALARM_OBJECTS].value == 2
    assert ds[TOTAL_PROCESSING_TIME].value == pytest.approx(7.5)

    threats = ds[THREAT_SEQUENCE].value
    assert len(threats) == 2
    for index, threat in enumerate(threats):
        assert threat[PTO_ID].value == index
        (representation,) = threat[PTO_REPRESENTATION_SEQUENCE].value
        (referenced,) = representation.ReferencedInstanceSequence
        assert referenced.ReferencedSOPClassUID == source["SOPClassUID"]
        assert referenced.ReferencedSOPInstanceUID == source["SOPInstanceUID"]
        x1, y1, z1, x2, y2, z2 = representation[BOUNDING_POLYGON].value
        np.testing.assert_allclose([x1, y1, x2, y2], BOXES[index], atol=0.5)
        assert (z1, z2) == (0.0, 1.0)
        (assessment,) = threat[ATD_ASSESSMENT_SEQUENCE].value
        assert assessment[THREAT_CATEGORY_DESCRIPTION].value == CLASS_NAMES[CLASS_IDS[index]]
        assert assessment[THREAT_CATEGORY].value == "PI"
        assert assessment[ATD_ASSESSMENT_FLAG].value == "THREAT"
        assert assessment[ATD_ASSESSMENT_PROBABILITY].value == pytest.approx(SCORES[index])


def test_voxel_region_covers_the_box(tmp_path: Path, dx: Frame) -> None:
    ds = pydicom.dcmread(write(tmp_path, dx, alarm_result()))
    representation = ds[THREAT_SEQUENCE].value[0][PTO_REPRESENTATION_SEQUENCE].value[0]
    (roi,) = representation[THREAT_ROI_VOXEL_SEQUENCE].value
    # Box x 10.25..50.5, y 20.75..60.0: pixels 10..50 and 20..59, one slice.
    assert list(roi[THREAT_ROI_BASE].value) == [10.0, 20.0, 0.0]
    assert list(roi[THREAT_ROI_EXTENTS].value) == [41.0, 40.0, 1.0]
    bits = np.unpackbits(np.frombuffer(roi[THREAT_ROI_BITMAP].value, np.uint8), bitorder="little")
    assert bits[: 41 * 40].all()


# result, alarm decision, abort flag, abort reason (None: absent), threats
DECISIONS = [
    pytest.param(alarm_result, "ALARM", "SUCCESS", None, 2, id="alarm"),
    pytest.param(clear_result, "CLEAR", "SUCCESS", None, 0, id="clear"),
    pytest.param(not_screened_result, "UNKNOWN", "ABORT", "NOT_REVIEWED", 0, id="not-screened"),
]


@pytest.mark.parametrize(("make", "decision", "abort_flag", "abort_reason", "threats"), DECISIONS)
def test_alarm_decision(
    tmp_path: Path,
    dx: Frame,
    make: Callable[[], Result],
    decision: str,
    abort_flag: str,
    abort_reason: str | None,
    threats: int,
) -> None:
    ds = pydicom.dcmread(write(tmp_path, dx, make()))
    assert ds[ALARM_DECISION].value == decision
    assert ds[ABORT_FLAG].value == abort_flag
    assert (ds[ABORT_REASON].value if ABORT_REASON in ds else None) == abort_reason
    assert len(ds[THREAT_SEQUENCE].value) == threats
    assert ds[NUMBER_OF_TOTAL_OBJECTS].value == threats
    assert ds[NUMBER_OF_ALARM_OBJECTS].value == threats
    assert ds[TDR_TYPE].value == "MACHINE"


def test_not_screened_is_never_clear_even_with_detections(tmp_path: Path, dx: Frame) -> None:
    carrying = Result(
        ScreeningState.NOT_SCREENED, Detections(BOXES, SCORES, CLASS_IDS), "tiny@0.1.0", "crash"
    )
    ds = pydicom.dcmread(write(tmp_path, dx, carrying))
    assert ds[ALARM_DECISION].value != "CLEAR"
    assert ds[ALARM_DECISION].value == "UNKNOWN"
    assert len(ds[THREAT_SEQUENCE].value) == 0


def test_top_level_tags_match_the_toolkit_fixture(tmp_path: Path, dx: Frame) -> None:
    ours = pydicom.dcmread(write(tmp_path, dx, alarm_result()))
    theirs = read_quietly(fixture("SimpleBaggageTDR.dcs"))
    missing_in_ours = [name for tag, name in IMPORTANT_TOP_LEVEL_TAGS.items() if tag not in ours]
    missing_in_theirs = [
        name for tag, name in IMPORTANT_TOP_LEVEL_TAGS.items() if tag not in theirs
    ]
    assert missing_in_ours == []
    assert missing_in_theirs == []
    # Same VR as the toolkit writes for each of them (FD, not the dictionary's DS, for scale).
    assert {tag: ours[tag].VR for tag in IMPORTANT_TOP_LEVEL_TAGS} == {
        tag: theirs[tag].VR for tag in IMPORTANT_TOP_LEVEL_TAGS
    }
    assert ours.SOPClassUID == theirs.SOPClassUID


def test_toolkit_uids_are_referenced_exactly(tmp_path: Path) -> None:
    # SimpleProcessingDX's UIDs have leading zeros; a corrected UID would reference nothing.
    frame = load_dicos_dx(fixture("SimpleProcessingDX.dcs"))
    source = frame.meta["dicos"]
    assert any(part.startswith("0") for part in source["SOPInstanceUID"].split("."))
    ds = read_quietly(write(tmp_path, frame, alarm_result()))
    assert ds.StudyInstanceUID == source["StudyInstanceUID"]
    assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID == source["SOPInstanceUID"]
    for threat in ds[THREAT_SEQUENCE].value:
        referenced = threat[PTO_REPRESENTATION_SEQUENCE].value[0].ReferencedInstanceSequence[0]
        assert referenced.ReferencedSOPInstanceUID == source["SOPInstanceUID"]


def test_boxes_are_clipped_to_the_image(tmp_path: Path, dx: Frame) -> None:
    outside = Detections(np.array([[-5.0, 250.0, 300.0, 270.0]]), np.array([0.5]), np.array([1]))
    result = Result(ScreeningState.SCREENED, outside, "tiny@0.1.0")
    ds = pydicom.dcmread(write(tmp_path, dx, result))
    representation = ds[THREAT_SEQUENCE].value[0][PTO_REPRESENTATION_SEQUENCE].value[0]
    assert list(representation[BOUNDING_POLYGON].value) == [0.0, 250.0, 0.0, 256.0, 256.0, 1.0]


@pytest.mark.parametrize("loader", [load_dicos_dx, load_image], ids=["load_dicos_dx", "load_image"])
def test_ingest_refuses_a_written_report(
    tmp_path: Path, dx: Frame, loader: Callable[[Path], Frame]
) -> None:
    path = write(tmp_path, dx, alarm_result())
    with pytest.raises(UnsupportedImageError) as caught:
        loader(path)
    assert str(caught.value) == f"{path}: DICOS Threat Detection Report has no image pixels"


def test_write_leaves_only_the_report(tmp_path: Path, dx: Frame) -> None:
    path = write(tmp_path, dx, alarm_result())
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def without(source: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in source.items() if k != key}


# changes to the write arguments (a callable gets the DX source), expected message part
BAD_INPUTS = [
    ({"source": lambda s: without(s, "SOPInstanceUID")}, "no SOPInstanceUID"),
    ({"source": lambda s: without(s, "StudyInstanceUID")}, "no StudyInstanceUID"),
    ({"frame_shape": (128, 256)}, "match the source image (256, 256), got (128, 256)"),
    ({"class_names": ["gun"]}, "class id 2 is outside the model's 1 classes"),
    ({"algorithm": ""}, "algorithm name to be 1 to 64 characters"),
    ({"algorithm_version": "1\\2"}, "algorithm version to be 1 to 64 characters"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_INPUTS)
def test_bad_input_is_refused(
    tmp_path: Path, dx: Frame, changes: dict[str, Any], message: str
) -> None:
    arguments = {
        "source": dx.meta["dicos"],
        "result": alarm_result(),
        "class_names": CLASS_NAMES,
        "algorithm": "tiny",
        "algorithm_version": "0.1.0",
        "frame_shape": dx.shape,
    }
    for key, value in changes.items():
        arguments[key] = value(arguments[key]) if callable(value) else value
    with pytest.raises(BadInputError, match="^TDR: ") as caught:
        write_tdr(tmp_path / "report.dcs", **arguments)
    assert message in str(caught.value)
    assert list(tmp_path.iterdir()) == []
