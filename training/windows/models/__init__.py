"""The torch models for sensor windows; each maps [N, window, channels] to a reconstruction."""
