"""Model inputs: log-mel blocks from audio (logmel.py), standardised windows from sensor series."""
