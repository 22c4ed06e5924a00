"""Machine-sound anomaly detection: a weakly supervised autoencoder trained from a folder of
clips and exported as a thresholded ONNX bundle."""
