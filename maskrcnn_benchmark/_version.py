"""Version of the maskrcnn_benchmark (FIBER fine-grained) re-implementation."""

__version__ = "0.1.0"
