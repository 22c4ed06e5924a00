"""Sensor-window anomaly detection: loaders, models, distillation training, metrics, bundles
and the command line."""
