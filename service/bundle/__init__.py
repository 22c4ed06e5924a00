"""Model bundles: a folder with `model.onnx` and a validated `manifest.json`."""
