"""Model manifest, onnxruntime session, preprocessing, decoders and NMS: frames to detections.

Callers need `Detector` (load a model directory, then `detect(frame)`), `load_model_dir`
to validate a model directory without building a session, and the errors in `edge.errors`.
"""

from edge.detector.detector import DetectionRun, Detector
from edge.detector.manifest import Manifest, ModelSpec, load_model_dir

__all__ = ["DetectionRun", "Detector", "Manifest", "ModelSpec", "load_model_dir"]
