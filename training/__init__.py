"""Offline training of Auscult's models (needs torch): audio autoencoders and sensor-window models."""
