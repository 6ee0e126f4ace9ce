from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.detector.manifest import (
    GraphTensor,
    bind_graph,
    load_model_dir,
    parse_manifest,
)
from edge.errors import ManifestError

MakeDir = Callable[..., Path]


def manifest_with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """`base` with a sha256 and changes keyed like input__width; DELETE removes the key."""
    data = json.loads(json.dumps(base))
    data["sha256"] = {"model.onnx": "0" * 64}
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for key in parents:
            node = node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return data


DELETE = object()


def parse(data: Any) -> None:
    parse_manifest(json.dumps(data).encode())


def test_valid_directory_loads(tiny_model_dir: MakeDir) -> None:
    directory = tiny_model_dir()
    spec = load_model_dir(directory)
    assert spec.manifest.model_id == "tiny@0.1.0"
    assert spec.model_sha256 == hashlib.sha256((directory / "model.onnx").read_bytes()).hexdigest()
    assert spec.manifest.input.letterbox is True
    assert spec.manifest.class_thresholds() == [0.25] * 4


@pytest.mark.parametrize(
    "field",
    [
        "name",
        "version",
        "classes",
        "input",
        "input.width",
        "input.height",
        "input.representation",
        "input.scale",
        "output",
        "output.format",
        "thresholds",
        "thresholds.default",
        "sha256",
        "sha256.model.onnx",
    ],
)
def test_missing_required_field_is_named(tiny_manifest: dict[str, Any], field: str) -> None:
    path = field.split(".", 1) if field.startswith("sha256.") else field.split(".")
    data = manifest_with(tiny_manifest, **{"__".join(path): DELETE})
    with pytest.raises(ManifestError) as info:
        parse(data)
    assert f"missing required field '{field}'" in info.value.message
    assert info.value.message.startswith("manifest.json: ")


def test_defaults_fill_optional_fields(tiny_manifest: dict[str, Any]) -> None:
    data = manifest_with(
        tiny_manifest,
        input__layout=DELETE,
        input__mean=DELETE,
        input__std=DELETE,
        input__letterbox=DELETE,
        input__pad_value=DELETE,
        output__nms_iou=DELETE,
    )
    manifest = parse_manifest(json.dumps(data).encode())
    assert (manifest.input.layout, manifest.input.letterbox, manifest.input.pad_value) == (
        "NCHW",
        True,
        114,
    )
    assert manifest.output.nms_iou == 0.5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"classes": []}, "field 'classes'"),
        ({"classes": ["gun", "knife", "gun"]}, "class names must be unique, repeated: gun"),
        ({"classes": ["gun", ""]}, "class names must not be empty"),
        ({"classes": "gun"}, "field 'classes'"),
        ({"name": ""}, "field 'name'"),
        ({"input__layout": "NHWC"}, "layout 'NHWC' is not supported"),
        ({"input__representation": "rgb"}, "field 'input.representation'"),
        ({"input__width": 0}, "field 'input.width'"),
        ({"input__width": "512"}, "field 'input.width'"),
        ({"input__scale": -1.0}, "field 'input.scale'"),
        (
            {"input__mean": [0.5, 0.5]},
            "field 'input.mean': expected 3 values for pseudocolor, got 2",
        ),
        ({"input__std": [1.0, 0.0, 1.0]}, "field 'input.std': expected positive numbers"),
        ({"input__pad_value": 300}, "field 'input.pad_value'"),
        ({"input__letterbox": "yes"}, "field 'input.letterbox'"),
        ({"output__format": "ssd"}, "field 'output.format'"),
        ({"output__nms_iou": 0.0}, "field 'output.nms_iou'"),
        ({"thresholds__pistol": 0.3}, "field 'thresholds.pistol': not a class"),
        ({"thresholds__gun": 1.5}, "field 'thresholds.gun': expected a score in [0, 1]"),
        ({"sha256": {"model.onnx": "xyz"}}, "field 'sha256.model.onnx': expected 64 hex digits"),
    ],
)
def test_bad_value_is_named(
    tiny_manifest: dict[str, Any], changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ManifestError) as info:
        parse(manifest_with(tiny_manifest, **changes))
    assert message in info.value.message


def test_nhwc_is_refused_clearly(tiny_manifest: dict[str, Any]) -> None:
    with pytest.raises(ManifestError) as info:
        parse(manifest_with(tiny_manifest, input__layout="NHWC"))
    assert info.value.message == (
        "manifest.json: field 'input.layout': layout 'NHWC' is not supported; "
        "export the model as 'NCHW'"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"name": "x",', "manifest.json: not valid JSON (line 1 column 14"),
        (b"[1, 2]", "manifest.json: expected a JSON object, got list"),
        (b"[" * 100_000, "manifest.json: not valid JSON"),
        (b"\xff\xfe{}", "manifest.json: not UTF-8 text"),
        (b"{" + b" " * (1 << 20) + b"}", "manifest.json: larger than the 1 MiB limit"),
    ],
)
def test_unreadable_manifest_text(text: bytes, message: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text)
    assert message in info.value.message


def test_unknown_fields_are_kept_and_ignored(tiny_manifest: dict[str, Any]) -> None:
    data = manifest_with(
        tiny_manifest, vendor="acme", input__colour_table="v2", output__anchors=[1, 2]
    )
    manifest = parse_manifest(json.dumps(data).encode())
    assert manifest.model_extra == {"vendor": "acme"}
    assert manifest.input.model_extra == {"colour_table": "v2"}
    assert manifest.output.model_extra == {"anchors": [1, 2]}


def test_sha256_mismatch_names_both_hashes(tiny_model_dir: MakeDir) -> None:
    directory = tiny_model_dir(edit=lambda m: m.update(sha256={"model.onnx": "3fa2" + "0" * 60}))
    actual = hashlib.sha256((directory / "model.onnx").read_bytes()).hexdigest()
    with pytest.raises(ManifestError) as info:
        load_model_dir(directory)
    assert info.value.message == (
        f"model.onnx: SHA-256 mismatch (manifest 3fa200000000..., file {actual[:12]}...)"
    )


def test_oversize_manifest_file(tiny_model_dir: MakeDir) -> None:
    directory = tiny_model_dir(edit=lambda m: m.update(notes="x" * (1 << 20)))
    with pytest.raises(ManifestError, match="manifest.json: larger than the 1 MiB limit"):
        load_model_dir(directory)


@pytest.mark.parametrize("missing", ["manifest.json", "model.onnx"])
def test_missing_file_is_named(tiny_model_dir: MakeDir, missing: str) -> None:
    directory = tiny_model_dir()
    (directory / missing).unlink()
    with pytest.raises(ManifestError, match=f"^{missing}: not found in "):
        load_model_dir(directory)


def tensor(shape: tuple[int | str | None, ...], name: str = "t") -> GraphTensor:
    return GraphTensor(name, shape)


IN3 = [tensor((1, 3, 64, 64), "images")]
IN2 = [tensor((1, 2, 64, 64), "images")]


@pytest.mark.parametrize(
    ("changes", "inputs", "outputs", "error"),
    [
        ({}, IN3, [tensor((1, 8, 8400))], None),
        ({}, [tensor(("batch", 3, None, "w"))], [tensor(("batch", None, "anchors"))], None),
        (
            {"classes": ["a", "b", "c", "d", "e"]},
            IN3,
            [tensor((1, 8, 8400))],
            "class count 5 in manifest does not match graph output (1, 8, 8400): expects 4 classes",
        ),
        ({"output__format": "yolov5"}, IN3, [tensor((1, 25200, 9))], None),
        (
            {"output__format": "yolov5"},
            IN3,
            [tensor((1, 25200, 10))],
            "class count 4 in manifest does not match graph output (1, 25200, 10): "
            "expects 5 classes",
        ),
        ({"output__format": "end2end"}, IN3, [tensor((1, 300, 6))], None),
        ({"output__format": "end2end"}, IN3, [tensor((1, 300, 7))], "expects (1, K, 6)"),
        (
            {"output__format": "end2end"},
            IN3,
            [tensor((1, 100, 4)), tensor((1, 100)), tensor((1, 100))],
            None,
        ),
        (
            {"output__format": "end2end"},
            IN3,
            [tensor((1, 100, 4)), tensor((1, 100))],
            "expects 1 output (1, K, 6) or 3 (boxes, scores, labels), got 2",
        ),
        (
            {},
            IN2,
            [tensor((1, 8, 8400))],
            "input.representation 'pseudocolor' feeds 3 channels but graph input 'images' "
            "(1, 2, 64, 64) expects 2",
        ),
        ({"input__representation": "dual_energy"}, IN2, [tensor((1, 8, 10))], None),
        (
            {"input__representation": "dual_energy"},
            IN3,
            [tensor((1, 8, 10))],
            "'dual_energy' feeds 2 channels",
        ),
        ({}, [tensor((1, 3, 64, 32))], [tensor((1, 8, 10))], "input.width 64 in manifest"),
        ({}, [tensor((1, 3, 32, 64))], [tensor((1, 8, 10))], "input.height 64 in manifest"),
        ({}, [tensor((4, 3, 64, 64))], [tensor((1, 8, 10))], "batch 4 unsupported"),
        ({}, [tensor((3, 64, 64))], [tensor((1, 8, 10))], "expected 4 dims (N, C, H, W)"),
        ({}, IN3 * 2, [tensor((1, 8, 10))], "expected exactly 1 input, got 2"),
        ({}, [GraphTensor("x", (1, 3, 64, 64), "tensor(uint8)")], [], "expected tensor(float)"),
        ({}, IN3, [tensor((8, 8400))], "expects a 3-dim output"),
    ],
)
def test_bind_graph_checks_against_manifest(
    tiny_manifest: dict[str, Any],
    changes: dict[str, Any],
    inputs: list[GraphTensor],
    outputs: list[GraphTensor],
    error: str | None,
) -> None:
    manifest = parse_manifest(json.dumps(manifest_with(tiny_manifest, **changes)).encode())
    if error is None:
        binding = bind_graph(manifest, inputs, outputs)
        assert binding.input_name == inputs[0].name
        assert len(binding.output_names) == len(outputs)
    else:
        with pytest.raises(ManifestError) as info:
            bind_graph(manifest, inputs, outputs)
        assert error in info.value.message


def test_end2end_outputs_are_bound_by_name(tiny_manifest: dict[str, Any]) -> None:
    manifest = parse_manifest(
        json.dumps(manifest_with(tiny_manifest, output__format="end2end")).encode()
    )
    outputs = [tensor((1, 9), "labels"), tensor((1, 9, 4), "boxes"), tensor((1, 9), "scores")]
    assert bind_graph(manifest, IN3, outputs).output_names == ("boxes", "scores", "labels")
