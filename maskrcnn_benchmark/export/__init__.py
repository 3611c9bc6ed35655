"""Export FIBER to ONNX and run the exported graph (onnxruntime) behind the Predictor.

- :mod:`.graph`: :class:`DetectorGraph`, the exportable network (images + tokenised caption -> the VL head's raw
  outputs per FPN level);
- :mod:`.onnx_export`: :func:`export_onnx` (opset 19, ONNX ``DeformConv`` for the DyHead);
- :mod:`.runtime`: :class:`OnnxDetector` (the detector's test-time interface on an onnxruntime session, with the
  package's own anchors, box decoding, NMS and token-to-label mapping) and :func:`onnx_predictor`.

``onnx``, ``onnxscript`` (export) and ``onnxruntime`` (running) are imported only when used.
"""

from .graph import INPUT_NAMES, DetectorGraph, output_names
from .onnx_export import OPSET, ExportInfo, default_image_size, export_onnx
from .runtime import OnnxDetector, RawOutputPostProcessor, onnx_predictor

__all__ = ["INPUT_NAMES", "DetectorGraph", "output_names", "OPSET", "ExportInfo", "default_image_size", "export_onnx",
           "OnnxDetector", "RawOutputPostProcessor", "onnx_predictor"]
