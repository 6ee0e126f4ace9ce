"""The onnxruntime session: execution providers, thread counts, graph optimisation."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import onnxruntime as ort

from edge.detector.manifest import GraphTensor
from edge.errors import ManifestError

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"


def resolve_providers(requested: Sequence[str] | None) -> list[str]:
    """The requested providers this onnxruntime build has, in order, always ending with CPU.

    Unavailable ones are dropped with a warning, so a missing GPU degrades to CPU instead of
    refusing to screen.
    """
    available = set(ort.get_available_providers())
    chosen: list[str] = []
    for name in requested or [CPU_PROVIDER]:
        if name not in available:
            logger.warning(
                "execution provider %s is not available in this onnxruntime build, skipped "
                "(available: %s)",
                name,
                ", ".join(sorted(available)),
                extra={"provider": name},
            )
        elif name not in chosen:
            chosen.append(name)
    if CPU_PROVIDER not in chosen:
        chosen.append(CPU_PROVIDER)
    return chosen


def create_session(
    model: bytes,
    *,
    providers: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
    inter_op_threads: int | None = None,
) -> ort.InferenceSession:
    """An InferenceSession over serialised ONNX bytes, fully graph-optimised.

    Thread counts of None leave onnxruntime's defaults (one intra-op thread per core).
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: warnings about unused initialisers are noise
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    if inter_op_threads is not None:
        options.inter_op_num_threads = inter_op_threads
    # Idle intra-op threads sleep instead of spinning: the appliance shares its cores with
    # ingest, the store and the UI, and spinning threads took them (bench_service: the
    # detector child used 164 CPU ms per bag with spinning, 120 without, same throughput).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(
            model, sess_options=options, providers=resolve_providers(providers)
        )
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        raise ManifestError(f"model.onnx: onnxruntime cannot load the graph: {exc}") from exc


def graph_tensors(session: ort.InferenceSession) -> tuple[list[GraphTensor], list[GraphTensor]]:
    """The session's inputs and outputs with their (possibly symbolic) shapes and types."""

    def describe(args: Sequence[ort.NodeArg]) -> list[GraphTensor]:
        return [GraphTensor(a.name, tuple(a.shape), a.type) for a in args]

    return describe(session.get_inputs()), describe(session.get_outputs())
