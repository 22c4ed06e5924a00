"""Auscult's scoring service: decode audio and sensor windows, score them with ONNX bundles, serve verdicts."""

__version__ = "0.1.0"
