"""DICOS DX (NEMA IIC 1 digital X-ray) files to Frames, read with pydicom.

A DX image holds detector intensities on a scale the file does not calibrate, so the
pixels are mapped linearly to our convention: the open-air level reads AIR_LEVEL.
"""

from __future__ import annotations

import io
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import FileDataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.uid import UID

from edge.errors import EdgeError, UnsupportedImageError
from edge.frames import AIR_LEVEL, Frame
from edge.ingest import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    captured_decoder_warnings,
    check_pixel_count,
    one_line,
    read_limited,
)

logger = logging.getLogger(__name__)
# pydicom logs a warning for every non-conformant UID it reads (DICOS toolkits write UIDs
# with leading zeros); the loader reports what matters about a file itself. Set after the
# import, since importing pydicom sets its logger's level.
logging.getLogger("pydicom").setLevel(logging.ERROR)

_DICOS = "1.2.840.10008.5.1.4.1.1.501"
SOP_CLASS_NAMES = {
    f"{_DICOS}.1": "DICOS CT Image",
    f"{_DICOS}.2.1": "DICOS DX Image (for presentation)",
    f"{_DICOS}.2.2": "DICOS DX Image (for processing)",
    f"{_DICOS}.3": "DICOS Threat Detection Report",
    f"{_DICOS}.4": "DICOS 2D AIT Image",
    f"{_DICOS}.5": "DICOS 3D AIT Image",
    f"{_DICOS}.6": "DICOS Quadrupole Resonance",
    "1.2.840.10008.5.1.4.1.1.1.1": "DICOM DX Image (for presentation)",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DICOM DX Image (for processing)",
}
# Projection images whose pixels are detector intensities; a DICOS DX is a DICOM DX with
# security attributes added, so the plain DICOM DX classes read the same way.
DX_SOP_CLASSES = frozenset(
    {
        f"{_DICOS}.2.1",
        f"{_DICOS}.2.2",
        "1.2.840.10008.5.1.4.1.1.1.1",
        "1.2.840.10008.5.1.4.1.1.1.1.1",
    }
)

# The brightest pixels of a bag image are open air; a high percentile rather than the
# maximum keeps a few hot pixels from setting the scale.
AIR_PERCENTILE = 99.5

# Copied into frame.meta["dicos"] by DICOM keyword, so a Threat Detection Report written
# later can reference its source image. DICOS reuses PatientID for the OOI (bag) ID, with
# IssuerOfPatientID/TypeOfPatientID for its authority and kind, and StudyID for the Scan ID.
META_KEYWORDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "Modality",
    "StudyID",
    "PatientID",
    "IssuerOfPatientID",
    "TypeOfPatientID",
    "InstanceNumber",
    "StudyDate",
    "StudyTime",
    "ContentDate",
    "ContentTime",
    "Manufacturer",
    "ManufacturerModelName",
    "DeviceSerialNumber",
    "StationName",
    "SoftwareVersions",
    "DICOSVersion",
    "OOIType",
    "ScanType",
    "AcquisitionStatus",
    "ImageType",
    "PresentationIntentType",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "PixelIntensityRelationship",
    "PixelIntensityRelationshipSign",
)


def load_dicos_dx(
    path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Frame:
    """A DICOS DX file as a Frame: high (H, W) uint16 with open air at AIR_LEVEL, low for a
    two-frame (dual-energy) file, identifiers in meta["dicos"]."""
    path = Path(path)
    data = read_limited(path, max_bytes)
    return decode_dicos_dx(data, path, max_pixels=max_pixels)


def decode_dicos_dx(
    data: bytes, source: Path | str, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Frame:
    """Decode DICOS DX bytes; `source` names the file in messages and meta."""
    with captured_decoder_warnings() as caught:
        try:
            dataset = _parse(data)
            meta = _identifiers(dataset, source)
            frames = _intensities(dataset, source, max_pixels, meta)
        except EdgeError:
            raise
        except Exception as exc:  # pydicom raises many types for malformed data
            raise UnsupportedImageError(
                f"{source}: truncated or corrupt DICOS file ({one_line(exc)})"
            ) from exc
    if caught:
        logger.info(
            "%s: DICOS file read with %d non-conformance warning(s), first: %s",
            source,
            len(caught),
            one_line(caught[0].message),
        )
        meta["decoder_warnings"] = len(caught)
    calibrated = [calibrate_dx(values) for values in frames]
    meta["air_reference"] = [air for _, air in calibrated]
    high = calibrated[0][0]
    low = calibrated[1][0] if len(calibrated) == 2 else None
    return Frame(
        high=high,
        low=low,
        meta={"source_path": str(source), "format": "dicos", "dicos": meta},
    )


def calibrate_dx(values: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.uint16], float]:
    """Map intensities (H, W), already the right way up, so the air level reads AIR_LEVEL.

    Returns the uint16 channel and the intensity taken as air (0 for an all-dark image,
    which stays all zero: nothing passed).
    """
    values = np.maximum(values, 0.0)
    if values.size == 0:
        return values.astype(np.uint16), 0.0
    air = float(np.percentile(values, AIR_PERCENTILE))
    if air <= 0.0:
        air = float(values.max())
    if air <= 0.0:
        return np.zeros(values.shape, np.uint16), 0.0
    scaled = np.rint(values * (AIR_LEVEL / air))
    return np.clip(scaled, 0, np.iinfo(np.uint16).max).astype(np.uint16), air


def _parse(data: bytes) -> FileDataset:
    try:
        return pydicom.dcmread(io.BytesIO(data), force=False)
    except InvalidDicomError:
        # Some writers omit the 128-byte preamble and DICM marker; the caller has already
        # decided the file is DICOS (by marker or .dcs name), so try it as a bare data set.
        return pydicom.dcmread(io.BytesIO(data), force=True)


def _identifiers(dataset: FileDataset, source: Path | str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    transfer_syntax = dataset.file_meta.get("TransferSyntaxUID") if dataset.file_meta else None
    if transfer_syntax is not None:
        meta["TransferSyntaxUID"] = str(transfer_syntax)
    for keyword in META_KEYWORDS:
        value = dataset.get(keyword)
        if value is not None and value != "":
            meta[keyword] = _plain(value)
    sop_class = meta.get("SOPClassUID")
    if sop_class is None:
        raise UnsupportedImageError(f"{source}: not a DICOS image (no SOP Class UID)")
    meta["SOPClassName"] = SOP_CLASS_NAMES.get(sop_class, f"SOP class {sop_class}")
    return meta


def _check_is_dx(dataset: FileDataset, source: Path | str, meta: dict[str, Any]) -> None:
    """Refuse anything but a monochrome DX image with pixels linear in intensity."""
    name = meta["SOPClassName"]
    has_pixels = "PixelData" in dataset
    if meta["SOPClassUID"] not in DX_SOP_CLASSES:
        if not has_pixels:
            raise UnsupportedImageError(f"{source}: {name} has no image pixels")
        raise UnsupportedImageError(f"{source}: {name} is not supported; expected a DX image")
    if not has_pixels:
        raise UnsupportedImageError(f"{source}: {name} has no pixel data (truncated file?)")
    photometric = meta.get("PhotometricInterpretation", "")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise UnsupportedImageError(
            f"{source}: expected a MONOCHROME1/2 DX image, got photometric {photometric or 'none'}"
        )
    relationship = meta.get("PixelIntensityRelationship", "LIN")
    if relationship != "LIN":
        raise UnsupportedImageError(
            f"{source}: expected pixels linear in X-ray intensity (LIN), got {relationship}"
        )


def _intensities(
    dataset: FileDataset, source: Path | str, max_pixels: int, meta: dict[str, Any]
) -> list[npt.NDArray[np.float64]]:
    """One (H, W) float64 array per frame: rescaled, higher meaning more X-ray through."""
    _check_is_dx(dataset, source, meta)
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    frames = int(dataset.get("NumberOfFrames") or 1)
    if frames not in (1, 2):
        raise UnsupportedImageError(
            f"{source}: expected 1 frame or 2 (high and low energy), got {frames}"
        )
    check_pixel_count(source, rows, columns, max_pixels)
    slope = float(dataset.get("RescaleSlope") or 1.0)
    intercept = float(dataset.get("RescaleIntercept") or 0.0)
    if not (math.isfinite(slope) and math.isfinite(intercept)):
        raise UnsupportedImageError(
            f"{source}: expected finite rescale slope and intercept, got {slope}, {intercept}"
        )
    try:
        stored = np.asarray(dataset.pixel_array)
    except Exception as exc:  # decoder plug-ins raise their own types
        raise UnsupportedImageError(
            f"{source}: cannot decode pixel data ({_transfer_syntax_name(meta)}: {one_line(exc)})"
        ) from exc
    expected = (rows, columns) if frames == 1 else (frames, rows, columns)
    if stored.shape != expected:
        raise UnsupportedImageError(
            f"{source}: expected decoded pixels of shape {expected}, got {stored.shape}"
        )
    invert = _is_inverted(dataset, meta)
    meta["inverted"] = invert
    bits = int(dataset.get("BitsStored") or stored.dtype.itemsize * 8)
    signed = stored.dtype.kind == "i"
    # Inverting within the stored range maps the darkest code to the brightest and back.
    lowest, highest = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    result = []
    for frame in stored.reshape(frames, rows, columns):
        values = frame.astype(np.float64)
        if invert:
            values = (lowest + highest) - values
        result.append(values * slope + intercept)
    return result


def _transfer_syntax_name(meta: dict[str, Any]) -> str:
    uid = meta.get("TransferSyntaxUID")
    return UID(uid).name if uid else "unknown transfer syntax"


def _is_inverted(dataset: FileDataset, meta: dict[str, Any]) -> bool:
    """Whether higher stored values mean less X-ray reaching the detector."""
    # The intensity sign states the physics; the photometric interpretation only how to
    # display, so it decides only when the sign is absent.
    sign = dataset.get("PixelIntensityRelationshipSign")
    if sign is not None and int(sign) in (-1, 1):
        return int(sign) == -1
    return bool(meta.get("PhotometricInterpretation") == "MONOCHROME1")


def _plain(value: Any) -> Any:
    """A pydicom value as a JSON-ready str, int, float or list of them."""
    if isinstance(value, MultiValue | list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, int):  # US, SS, IS
        return int(value)
    if isinstance(value, float):  # FL, FD, DS
        return float(value)
    return str(value).strip()
