"""Audio in: decode WAV and FLAC to float32 samples, and resample them to a model's rate."""
