"""The model directory (CONTRACT.md section 2): manifest.json validated, model.onnx hash-checked,
and the graph's inputs and outputs checked against what the manifest promises."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge.errors import ManifestError

MANIFEST_NAME = "manifest.json"
MODEL_NAME = "model.onnx"
MAX_MANIFEST_BYTES = 1 << 20
MAX_MODEL_BYTES = 512 << 20

Representation = Literal["pseudocolor", "dual_energy"]
OutputFormat = Literal["yolov8", "yolov5", "end2end"]
# Input channels each representation feeds the graph: RGB, or the high and low energy planes.
CHANNELS: dict[str, int] = {"pseudocolor": 3, "dual_energy": 2}
END2END_OUTPUT_NAMES = ("boxes", "scores", "labels")


class InputSpec(BaseModel):
    """How a frame becomes the graph's input tensor (sizes in pixels)."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    width: int = Field(gt=0, le=8192, description="graph input width, pixels")
    height: int = Field(gt=0, le=8192, description="graph input height, pixels")
    representation: Representation
    layout: str = Field("NCHW", description="only NCHW is supported")
    # Required although nullable: a forgotten 1/255 would silently feed 0..255 to the graph.
    scale: float | None = Field(gt=0, allow_inf_nan=False)
    mean: list[float] | None = None
    std: list[float] | None = None
    letterbox: bool = Field(True, description="keep aspect ratio and pad; false stretches")
    pad_value: int = Field(114, ge=0, le=255, description="pseudocolor padding, 0..255")

    @field_validator("layout")
    @classmethod
    def _only_nchw(cls, layout: str) -> str:
        if layout != "NCHW":
            raise ValueError(f"layout {layout!r} is not supported; export the model as 'NCHW'")
        return layout

    @field_validator("mean", "std")
    @classmethod
    def _one_per_channel(
        cls, values: list[float] | None, info: ValidationInfo
    ) -> list[float] | None:
        representation = info.data.get("representation")
        if values is None or representation is None:
            return values
        channels = CHANNELS[representation]
        if len(values) != channels:
            raise ValueError(f"expected {channels} values for {representation}, got {len(values)}")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"expected finite numbers, got {values}")
        if info.field_name == "std" and any(v <= 0 for v in values):
            raise ValueError(f"expected positive numbers, got {values}")
        return values

    @property
    def channels(self) -> int:
        """Channel count of the graph input: 3 (RGB) or 2 (high, low)."""
        return CHANNELS[self.representation]


class OutputSpec(BaseModel):
    """How the graph's raw outputs are decoded."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    format: OutputFormat
    nms_iou: float = Field(0.5, gt=0, le=1, description="IoU above which NMS suppresses")


class Manifest(BaseModel):
    """manifest.json. Unknown fields are kept (in `model_extra`) and ignored."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    name: str = Field(min_length=1, max_length=200, pattern=r"^\S+$")
    version: str = Field(min_length=1, max_length=100, pattern=r"^\S+$")
    classes: list[str] = Field(min_length=1, max_length=10000)
    input: InputSpec
    output: OutputSpec
    thresholds: dict[str, float]
    sha256: dict[str, str]

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, classes: list[str]) -> list[str]:
        if any(not c for c in classes):
            raise ValueError("class names must not be empty")
        duplicates = sorted(c for c, n in Counter(classes).items() if n > 1)
        if duplicates:
            raise ValueError(f"class names must be unique, repeated: {', '.join(duplicates)}")
        return classes

    @model_validator(mode="after")
    def _thresholds_and_hash(self) -> Manifest:
        # Checked here rather than per field so the messages can name nested keys in full.
        if "default" not in self.thresholds:
            raise ValueError("missing required field 'thresholds.default'")
        for key, value in self.thresholds.items():
            if key != "default" and key not in self.classes:
                raise ValueError(
                    f"field 'thresholds.{key}': not a class (classes: {', '.join(self.classes)})"
                )
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"field 'thresholds.{key}': expected a score in [0, 1], got {value}"
                )
        digest = self.sha256.get(MODEL_NAME)
        if digest is None:
            raise ValueError(f"missing required field 'sha256.{MODEL_NAME}'")
        if len(digest) != 64 or any(ch not in "0123456789abcdefABCDEF" for ch in digest):
            raise ValueError(f"field 'sha256.{MODEL_NAME}': expected 64 hex digits, got {digest!r}")
        return self

    @property
    def model_id(self) -> str:
        """'name@version', as results and the serial RESULT packet name the model."""
        return f"{self.name}@{self.version}"

    def class_thresholds(self) -> list[float]:
        """Score threshold of each class in class order: its own entry, else 'default'."""
        default = self.thresholds["default"]
        return [self.thresholds.get(c, default) for c in self.classes]


@dataclass(frozen=True)
class ModelSpec:
    """A validated model directory: its manifest and the SHA-256 (hex) of its model.onnx."""

    directory: Path
    manifest: Manifest
    model_sha256: str

    @property
    def model_path(self) -> Path:
        return self.directory / MODEL_NAME


def parse_manifest(text: bytes) -> Manifest:
    """Validate manifest.json bytes; ManifestError names the field or problem."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise _too_large(MANIFEST_NAME, MAX_MANIFEST_BYTES)
    try:
        data = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{MANIFEST_NAME}: not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(
            f"{MANIFEST_NAME}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise ManifestError(f"{MANIFEST_NAME}: not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{MANIFEST_NAME}: expected a JSON object, got {type(data).__name__}")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(f"{MANIFEST_NAME}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    """One line per pydantic error, naming the field as a dotted path."""
    parts = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            parts.append(f"missing required field '{field}'")
            continue
        message = err["msg"].removeprefix("Value error, ")
        if not field:
            parts.append(message)
        elif err["type"] == "value_error":
            parts.append(f"field '{field}': {message}")
        else:
            parts.append(f"field '{field}': {message} (got {err['input']!r:.60})")
    return "; ".join(parts)


def read_model_dir(model_dir: Path | str) -> tuple[ModelSpec, bytes]:
    """Validate a model directory and return it with model.onnx's bytes, hash-checked.

    The bytes returned are the bytes hashed, so the graph loaded is the graph verified.
    """
    directory = Path(model_dir)
    manifest_bytes = _read_limited(directory / MANIFEST_NAME, MAX_MANIFEST_BYTES, MANIFEST_NAME)
    manifest = parse_manifest(manifest_bytes)
    model_bytes = _read_limited(directory / MODEL_NAME, MAX_MODEL_BYTES, MODEL_NAME)
    actual = hashlib.sha256(model_bytes).hexdigest()
    expected = manifest.sha256[MODEL_NAME].lower()
    if actual != expected:
        raise ManifestError(
            f"{MODEL_NAME}: SHA-256 mismatch (manifest {expected[:12]}..., file {actual[:12]}...)"
        )
    return ModelSpec(directory, manifest, actual), model_bytes


def load_model_dir(model_dir: Path | str) -> ModelSpec:
    """Validate a model directory (manifest.json + model.onnx); ManifestError says why not."""
    return read_model_dir(model_dir)[0]


def _read_limited(path: Path, limit: int, label: str) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise ManifestError(f"{label}: not found in {path.parent}") from None
    except OSError as exc:
        raise ManifestError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise _too_large(label, limit)
    return data


def _too_large(label: str, limit: int) -> ManifestError:
    return ManifestError(f"{label}: larger than the {limit >> 20} MiB limit")


Dim = int | str | None


@dataclass(frozen=True)
class GraphTensor:
    """One graph input or output as onnxruntime reports it; dims may be symbolic or None."""

    name: str
    shape: tuple[Dim, ...]
    type: str = "tensor(float)"


@dataclass(frozen=True)
class GraphBinding:
    """The input to feed and the outputs to fetch, in the order the decoder expects."""

    input_name: str
    output_names: tuple[str, ...]


def bind_graph(
    manifest: Manifest, inputs: Sequence[GraphTensor], outputs: Sequence[GraphTensor]
) -> GraphBinding:
    """Check the graph against the manifest (channels, size, class count) and bind its names."""
    if len(inputs) != 1:
        raise ManifestError(f"graph: expected exactly 1 input, got {len(inputs)}")
    _check_input(manifest.input, inputs[0])
    if not outputs:
        raise ManifestError("graph: has no outputs")
    fmt = manifest.output.format
    if fmt == "end2end":
        names = _check_end2end(outputs)
    else:
        _check_dense(fmt, len(manifest.classes), outputs[0])
        names = (outputs[0].name,)
    return GraphBinding(inputs[0].name, names)


def graph_io_from_file(model_bytes: bytes) -> tuple[list[GraphTensor], list[GraphTensor]]:
    """The graph's inputs and outputs read from model.onnx's bytes, without starting a
    session (cheap: for checks beside a running service)."""
    import onnx

    graph = onnx.load_from_string(model_bytes).graph
    initialisers = {i.name for i in graph.initializer}

    def tensors(values: Any) -> list[GraphTensor]:
        out = []
        for value in values:
            tensor = value.type.tensor_type
            dims = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                for d in tensor.shape.dim
            )
            kind = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
            out.append(
                GraphTensor(value.name, dims, "tensor(float)" if kind == "float32" else kind)
            )
        return out

    inputs = [v for v in graph.input if v.name not in initialisers]
    return tensors(inputs), tensors(graph.output)


def _known(dim: Dim) -> TypeGuard[int]:
    """A fixed dimension, as opposed to a symbolic or unknown one."""
    return isinstance(dim, int) and dim >= 0


def _check_input(spec: InputSpec, tensor: GraphTensor) -> None:
    shape = tensor.shape
    if tensor.type != "tensor(float)":
        raise ManifestError(
            f"graph input {tensor.name!r}: expected tensor(float), got {tensor.type}"
        )
    if len(shape) != 4:
        raise ManifestError(
            f"graph input {tensor.name!r}: expected 4 dims (N, C, H, W), got {shape}"
        )
    batch, channels, height, width = shape
    if _known(batch) and batch != 1:
        raise ManifestError(f"graph input {tensor.name!r}: batch {batch} unsupported, expected 1")
    if _known(channels) and channels != spec.channels:
        raise ManifestError(
            f"input.representation {spec.representation!r} feeds {spec.channels} channels "
            f"but graph input {tensor.name!r} {shape} expects {channels}"
        )
    for field, want, got in (("height", spec.height, height), ("width", spec.width, width)):
        if _known(got) and got != want:
            raise ManifestError(
                f"input.{field} {want} in manifest does not match graph input {shape}"
            )


def _check_dense(fmt: str, num_classes: int, tensor: GraphTensor) -> None:
    shape = tensor.shape
    if len(shape) != 3:
        raise ManifestError(
            f"output.format {fmt!r} expects a 3-dim output, got {tensor.name!r} {shape}"
        )
    dim, extra = (shape[1], 4) if fmt == "yolov8" else (shape[2], 5)
    if _known(dim) and dim != extra + num_classes:
        raise ManifestError(
            f"class count {num_classes} in manifest does not match graph output {shape}: "
            f"expects {dim - extra} classes"
        )


def _check_end2end(outputs: Sequence[GraphTensor]) -> tuple[str, ...]:
    if len(outputs) == 1:
        shape = outputs[0].shape
        if len(shape) != 3 or (_known(shape[2]) and shape[2] != 6):
            raise ManifestError(
                f"output.format 'end2end' expects (1, K, 6) [x1, y1, x2, y2, score, class], "
                f"got {outputs[0].name!r} {shape}"
            )
        return (outputs[0].name,)
    if len(outputs) != 3:
        raise ManifestError(
            f"output.format 'end2end' expects 1 output (1, K, 6) or 3 (boxes, scores, labels), "
            f"got {len(outputs)}"
        )
    by_name = {t.name: t for t in outputs}
    ordered = (
        [by_name[n] for n in END2END_OUTPUT_NAMES]
        if set(by_name) == set(END2END_OUTPUT_NAMES)
        else list(outputs)
    )
    boxes, scores, labels = (t.shape for t in ordered)
    if (
        len(boxes) != 3
        or (_known(boxes[2]) and boxes[2] != 4)
        or len(scores) != 2
        or len(labels) != 2
    ):
        raise ManifestError(
            "output.format 'end2end' expects outputs boxes (1, K, 4), scores (1, K), "
            f"labels (1, K), got {[(t.name, t.shape) for t in ordered]}"
        )
    return tuple(t.name for t in ordered)
