"""Scanner sources and result sinks the service wires to its pipeline.

`serial_source`: a scanner on a serial port (ACK once durable, RESULT once screened);
`folder_source`: a hot folder; `tdr_writer`: a DICOS Threat Detection Report per DICOS
frame; `link_status`: a serial link's state for the status bar and health. Raw frames are
corrected with the active calibration profile before they are screened, and the raw
original is kept beside the corrected frame once it is durable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from calibration.ingest import FrameCalibration
from edge.config import FolderSource, SerialSource
from edge.errors import EdgeError
from edge.frames import Frame
from edge.ingest.frame_assembler import AssembledFrame
from edge.ingest.hot_folder import HotFolder
from edge.ingest.serial_link import FrameOutcome, ScannerLink
from edge.pipeline import Intake, Pipeline, ScreenedFrame, Ticket
from edge.tdr import write_tdr

logger = logging.getLogger(__name__)


def serial_source(
    pipeline: Pipeline,
    source: SerialSource,
    max_frame_bytes: int,
    label: str | None = None,
    calibration: FrameCalibration | None = None,
) -> ScannerLink:
    """A scanner on a serial port: each assembled frame is ACKed `stored` once durable,
    and answered with a RESULT once screened. `label`: the frames' source (default
    "serial:<url>"); `calibration`: raw frames corrected with the active profile first."""
    holder: list[ScannerLink] = []
    label = label or f"serial:{source.url}"

    def on_frame(assembled: AssembledFrame) -> Future[FrameOutcome]:
        intake = Intake(
            source=label,
            bag=assembled.bag,
            lane=assembled.lane if assembled.lane is not None else source.lane,
            view=assembled.view,
            scanner_frame_id=assembled.frame,
            reply=holder[0].send_result,  # waits for the frame's ACK to be on the wire
        )
        outcome: Future[FrameOutcome] = Future()
        raw = assembled.to_frame()
        frame = raw if calibration is None else calibration.apply(raw)

        def settled(pending: Future[Ticket]) -> None:
            ticket = pending.result()
            if ticket.durable and calibration is not None and frame is not raw:
                calibration.keep(ticket.id, raw)
            if ticket.durable:
                outcome.set_result(FrameOutcome.stored(ticket.id))
            else:
                # Screened all the same (its RESULT follows), but not durable: resend.
                reason = f"screened but not stored: {ticket.not_logged_reason}"
                outcome.set_result(FrameOutcome.rejected(reason))

        pipeline.ingest_async(frame, intake).add_done_callback(settled)
        return outcome

    link = ScannerLink(
        source.url,
        on_frame,
        baudrate=source.baudrate,
        heartbeat_s=source.heartbeat_s,
        silence_s=source.silence_s,
        max_frame_bytes=max_frame_bytes,
    )
    holder.append(link)
    return link


def folder_source(
    pipeline: Pipeline, source: FolderSource, calibration: FrameCalibration | None = None
) -> HotFolder:
    """A hot folder: a file leaves the folder only once its frame is durable; a frame the
    store cannot take leaves its file in rejected/ with the reason (screened all the same).
    `calibration`: raw frames corrected with the active profile first."""
    label = f"folder:{source.path}"

    def sink(raw: Frame, files: list[Path]) -> None:
        intake = Intake(source=label, bag=files[0].stem.removesuffix("_high"), lane=source.lane)
        frame = raw if calibration is None else calibration.apply(raw)
        ticket = pipeline.ingest(frame, intake)
        if ticket.durable and calibration is not None and frame is not raw:
            calibration.keep(ticket.id, raw)
        if not ticket.durable:
            raise EdgeError(f"screened but not stored: {ticket.not_logged_reason}")

    return HotFolder(source.path, sink, settle_s=source.settle_s)


def tdr_writer(directory: Path) -> Callable[[ScreenedFrame], None]:
    """A pipeline subscriber writing a DICOS Threat Detection Report for every screened
    frame that came from a DICOS image, as `<directory>/<frame id>.dcs`."""

    def write(screened: ScreenedFrame) -> None:
        source = screened.meta.get("dicos")
        if not source:
            return
        name, _, version = (screened.result.model or "none@").partition("@")
        try:
            write_tdr(
                directory / f"{screened.id}.dcs",
                source=source,
                result=screened.result,
                class_names=list(screened.class_names),
                algorithm=name or "none",
                algorithm_version=version or "none",
                frame_shape=screened.shape,
            )
        except EdgeError as exc:
            logger.error("no TDR for frame %s: %s", screened.id, exc.message)

    return write


def link_status(link: ScannerLink) -> Callable[[], dict[str, Any]]:
    def status() -> dict[str, Any]:
        return {"source": f"serial:{link.url}", **link.status().to_dict()}

    return status
