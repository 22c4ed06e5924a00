"""Auscult's scoring service: clips, audio streams and sensor windows scored by ONNX bundles."""

__version__ = "0.1.0"
