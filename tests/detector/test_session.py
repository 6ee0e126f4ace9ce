from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort
import pytest

from edge.detector import Detector
from edge.detector.session import create_session, graph_tensors, resolve_providers
from edge.errors import ManifestError

MakeDir = Callable[..., Path]


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (None, ["CPUExecutionProvider"]),
        ([], ["CPUExecutionProvider"]),
        (["CPUExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
        (["CUDAExecutionProvider"], ["CPUExecutionProvider"]),
        (["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
    ],
)
def test_resolve_providers(requested: list[str] | None, expected: list[str]) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA")
    assert resolve_providers(requested) == expected


def test_absent_provider_falls_back_to_cpu_with_warning(
    tiny_model_dir: MakeDir, caplog: pytest.LogCaptureFixture
) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA")
    with caplog.at_level(logging.WARNING, logger="edge.detector.session"):
        detector = Detector.load(tiny_model_dir(), providers=["CUDAExecutionProvider"])
    assert detector.session.get_providers() == ["CPUExecutionProvider"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "CUDAExecutionProvider is not available" in warnings[0].getMessage()
    assert warnings[0].provider == "CUDAExecutionProvider"  # type: ignore[attr-defined]


def test_session_options_are_applied(tiny_model_dir: MakeDir) -> None:
    model = (tiny_model_dir() / "model.onnx").read_bytes()
    session = create_session(model, intra_op_threads=1, inter_op_threads=1)
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    inputs, outputs = graph_tensors(session)
    assert [(t.name, t.shape, t.type) for t in inputs] == [
        ("images", (1, 3, 64, 64), "tensor(float)")
    ]
    assert [t.shape for t in outputs] == [(1, 8, 16)]


def test_unloadable_graph_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="model.onnx: onnxruntime cannot load the graph"):
        create_session(b"not an onnx graph")
