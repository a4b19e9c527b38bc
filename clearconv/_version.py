"""The package version, in one place (the ONNX exporter records it)."""

__version__ = "0.1.0"
