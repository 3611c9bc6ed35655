"""Model code: registries, backbones (Swin, FPN, fusion), the RoBERTa text encoder, the VL head and detectors.

``from maskrcnn_benchmark.modeling.detector import build_detection_model`` builds a whole model from a config.
"""
