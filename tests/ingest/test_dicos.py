"""DICOS DX reading: the real toolkit fixtures, and variants of them written with pydicom."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
import pytest

from edge.errors import BadInputError, UnsupportedImageError
from edge.frames import AIR_LEVEL, Frame
from edge.ingest.dicos import calibrate_dx, load_dicos_dx
from edge.ingest.images import load_image

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "dicos"

EXPLICIT_LE = "1.2.840.10008.1.2.1"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.501.2.1"
DX_PROCESSING = "1.2.840.10008.5.1.4.1.1.501.2.2"
TDR = "1.2.840.10008.5.1.4.1.1.501.3"
CT = "1.2.840.10008.5.1.4.1.1.501.1"

Loader = Callable[..., Frame]
LOADERS = [
    pytest.param(load_dicos_dx, id="load_dicos_dx"),
    pytest.param(load_image, id="load_image"),
]


def fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.is_file():
        pytest.fail(f"DICOS fixture {path} is missing; expected the shared fixtures at {FIXTURES}")
    return path


def write_variant(tmp_path: Path, name: str, **changes: Any) -> Path:
    """A copy of SimpleProcessingDX.dcs with attributes changed (None deletes one)."""
    with warnings.catch_warnings():
        # The toolkit's UIDs have leading zeros; pydicom warns on reading them.
        warnings.simplefilter("ignore", UserWarning)
        dataset = pydicom.dcmread(fixture("SimpleProcessingDX.dcs"))
        for keyword, value in changes.items():
            if value is None:
                delattr(dataset, keyword)
            else:
                setattr(dataset, keyword, value)
        out = tmp_path / name
        dataset.save_as(out)
    return out


def raw_ramp() -> npt.NDArray[np.uint16]:
    """SimpleProcessingDX's stored pixels: a ramp, value = row * 256 + column."""
    return np.arange(128 * 256, dtype=np.uint16).reshape(128, 256)


# name, shape (rows, columns), SOP class, transfer syntax
DX_FIXTURES = [
    ("SimpleProcessingDX.dcs", (128, 256), DX_PROCESSING, EXPLICIT_LE),
    ("SimplePresentationDX.dcs", (128, 256), DX_PRESENTATION, JPEG_LOSSLESS_SV1),
    ("v02_dx_jpeg_lossless.dcs", (200, 100), DX_PROCESSING, JPEG_LOSSLESS_SV1),
    ("v03_dx_explicit_le.dcs", (256, 256), DX_PROCESSING, EXPLICIT_LE),
]
TDR_FIXTURES = ["SimpleBaggageTDR.dcs", "SimpleBaggageNoThreatTDR.dcs", "v03_tdr.dcs"]


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(("name", "shape", "sop_class", "transfer_syntax"), DX_FIXTURES)
def test_dx_fixture_loads(
    loader: Loader, name: str, shape: tuple[int, int], sop_class: str, transfer_syntax: str
) -> None:
    path = fixture(name)
    frame = loader(path)
    assert frame.high is not None
    assert frame.high.shape == shape
    assert frame.high.dtype == np.uint16
    assert frame.low is None
    assert frame.rgb is None
    assert frame.meta["source_path"] == str(path)
    assert frame.meta["format"] == "dicos"
    dicos = frame.meta["dicos"]
    assert dicos["SOPClassUID"] == sop_class
    assert dicos["TransferSyntaxUID"] == transfer_syntax
    assert (dicos["Rows"], dicos["Columns"]) == shape
    for key in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality"):
        assert isinstance(dicos[key], str) and dicos[key], key
    # Open air (the brightest level) reads AIR_LEVEL.
    assert abs(float(np.percentile(frame.high, 99.5)) - AIR_LEVEL) <= 1.0


def test_v03_flat_image_reads_as_air() -> None:
    frame = load_dicos_dx(fixture("v03_dx_explicit_le.dcs"))
    assert frame.high is not None
    assert np.all(frame.high == int(AIR_LEVEL))
    assert frame.meta["dicos"]["air_reference"] == [400.0]


def test_jpeg_lossless_decodes_to_the_same_pixels_as_uncompressed() -> None:
    # The two Simple*DX fixtures hold one ramp, one raw and one JPEG Lossless compressed.
    raw = load_dicos_dx(fixture("SimpleProcessingDX.dcs"))
    jpeg = load_dicos_dx(fixture("SimplePresentationDX.dcs"))
    assert raw.high is not None and jpeg.high is not None
    np.testing.assert_array_equal(raw.high, jpeg.high)


def test_rows_are_the_first_axis() -> None:
    frame = load_dicos_dx(fixture("SimpleProcessingDX.dcs"))
    assert frame.high is not None
    expected, _ = calibrate_dx(raw_ramp().astype(np.float64))
    np.testing.assert_array_equal(frame.high, expected)
    assert frame.high[0, 1] < frame.high[1, 0]


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("name", TDR_FIXTURES)
def test_tdr_fixture_is_refused(loader: Loader, name: str) -> None:
    path = fixture(name)
    with pytest.raises(UnsupportedImageError) as caught:
        loader(path)
    assert str(caught.value) == f"{path}: DICOS Threat Detection Report has no image pixels"


# photometric, intensity sign (None: absent), expected inverted
POLARITY_CASES = [
    ("MONOCHROME2", 1, False),
    ("MONOCHROME2", None, False),
    ("MONOCHROME1", None, True),
    ("MONOCHROME2", -1, True),
    # The sign states the physics; MONOCHROME1 then only says how to display.
    ("MONOCHROME1", 1, False),
]


@pytest.mark.parametrize(("photometric", "sign", "inverted"), POLARITY_CASES)
def test_polarity(tmp_path: Path, photometric: str, sign: int | None, inverted: bool) -> None:
    path = write_variant(
        tmp_path,
        "polarity.dcs",
        PhotometricInterpretation=photometric,
        PixelIntensityRelationshipSign=sign,
    )
    frame = load_dicos_dx(path)
    assert frame.high is not None
    assert frame.meta["dicos"]["inverted"] is inverted
    stored = raw_ramp().astype(np.float64)
    expected, _ = calibrate_dx(65535.0 - stored if inverted else stored)
    np.testing.assert_array_equal(frame.high, expected)


def test_two_frames_are_high_then_low(tmp_path: Path) -> None:
    ramp = raw_ramp()
    path = write_variant(
        tmp_path,
        "dual.dcs",
        NumberOfFrames=2,
        PixelData=np.stack([ramp, ramp[::-1, ::-1]]).tobytes(),
    )
    frame = load_image(path)
    assert frame.high is not None and frame.low is not None
    assert frame.high.shape == frame.low.shape == (128, 256)
    np.testing.assert_array_equal(frame.low, frame.high[::-1, ::-1])
    assert frame.high[0, 0] == 0


def test_rescale_intercept_is_applied_before_calibration(tmp_path: Path) -> None:
    path = write_variant(tmp_path, "rescaled.dcs", RescaleIntercept=-16384)
    frame = load_dicos_dx(path)
    assert frame.high is not None
    # Stored values 0..16384 rescale to <= 0: no transmission.
    assert int((frame.high == 0).sum()) == 16385


def test_file_without_preamble_is_read_by_name(tmp_path: Path) -> None:
    path = tmp_path / "bare.dcs"
    path.write_bytes(fixture("SimpleProcessingDX.dcs").read_bytes()[132:])
    frame = load_image(path)
    assert frame.high is not None and frame.high.shape == (128, 256)


# name, attribute changes, expected message fragment
REFUSED_VARIANTS: list[tuple[str, dict[str, Any], str]] = [
    ("ct.dcs", {"SOPClassUID": CT}, "DICOS CT Image is not supported"),
    ("log.dcs", {"PixelIntensityRelationship": "LOG"}, "expected pixels linear"),
    ("rgb.dcs", {"PhotometricInterpretation": "RGB"}, "expected a MONOCHROME1/2"),
    ("frames.dcs", {"NumberOfFrames": 3}, "expected 1 frame or 2"),
    ("no_sop.dcs", {"SOPClassUID": None}, "no SOP Class UID"),
    ("no_pixels.dcs", {"PixelData": None}, "has no pixel data"),
    ("short.dcs", {"PixelData": b"\x00\x01" * 100}, "cannot decode pixel data"),
    ("nan.dcs", {"RescaleSlope": "NaN"}, "expected finite rescale slope"),
]


@pytest.mark.parametrize(("name", "changes", "fragment"), REFUSED_VARIANTS)
def test_refused_variant(tmp_path: Path, name: str, changes: dict[str, Any], fragment: str) -> None:
    path = write_variant(tmp_path, name, **changes)
    with pytest.raises(UnsupportedImageError) as caught:
        load_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert fragment in message
    assert "\n" not in message


@pytest.mark.parametrize("cut", [10, 140, 400, 1500, 40_000, 67_009])
@pytest.mark.parametrize("loader", LOADERS)
def test_truncated_fixture_is_refused(tmp_path: Path, loader: Loader, cut: int) -> None:
    path = tmp_path / "truncated.dcs"
    path.write_bytes(fixture("SimpleProcessingDX.dcs").read_bytes()[:cut])
    with pytest.raises(UnsupportedImageError) as caught:
        loader(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("limits", "expected", "fragment"),
    [
        ({"max_bytes": 1000}, BadInputError, "file too large"),
        ({"max_pixels": 128 * 256 - 1}, UnsupportedImageError, "image too large"),
    ],
)
@pytest.mark.parametrize("loader", LOADERS)
def test_limits(
    loader: Loader, limits: dict[str, int], expected: type[Exception], fragment: str
) -> None:
    path = fixture("SimplePresentationDX.dcs")
    with pytest.raises(BadInputError) as caught:
        loader(path, **limits)
    assert type(caught.value) is expected
    assert str(caught.value).startswith(f"{path}: {fragment}")


# intensities, expected calibrated channel
CALIBRATION_CASES = [
    (np.full((4, 4), 400.0), np.full((4, 4), 60000)),
    (np.zeros((3, 5)), np.zeros((3, 5))),
    # Almost all dark: the percentile is 0, so the brightest pixel sets the air level.
    (np.pad([[500.0]], ((0, 30), (0, 30))), np.pad([[60000]], ((0, 30), (0, 30)))),
    (np.array([[-5.0, 0.0, 1000.0, 2000.0]] * 100), np.array([[0, 0, 30000, 60000]] * 100)),
]


@pytest.mark.parametrize(("values", "expected"), CALIBRATION_CASES)
def test_calibrate_dx(values: np.ndarray, expected: np.ndarray) -> None:
    channel, _ = calibrate_dx(values)
    assert channel.dtype == np.uint16
    np.testing.assert_array_equal(channel, expected)


def test_identifiers_reach_meta(tmp_path: Path) -> None:
    # Identifiers survive into meta exactly as written, for a TDR to reference them.
    path = write_variant(tmp_path, "ids.dcs", SOPInstanceUID="1.2.3.4.5", StudyID="SCAN-7")
    frame = load_image(path)
    assert frame.meta["dicos"]["SOPInstanceUID"] == "1.2.3.4.5"
    assert frame.meta["dicos"]["StudyID"] == "SCAN-7"
    assert frame.meta["dicos"]["PatientID"] == "unknown"
