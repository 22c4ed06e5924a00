"""Offline training of Auscult's models (needs torch): audio autoencoders, sensor-window models."""
