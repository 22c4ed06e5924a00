"""The Auscult application for Ray Serve: `application(settings, ray_settings)` for
`auscult serve-ray`, and `build`, the import path of a RayService's serveConfigV2
(deploy/kuberay/ray-service.yaml)."""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from service.config import Settings
from service.ray_serve.deployment import AuscultApp, ReplicaDirectory
from service.ray_serve.settings import RaySettings


def replica_settings(settings: Settings, ray_settings: RaySettings) -> Settings:
    """The settings every replica runs with: the models folder as an absolute path (each
    replica must find the same shared folder), and one scoring thread per reserved CPU unless
    AUSCULT_WORKER_THREADS is set."""
    update: dict[str, Any] = {"models_dir": settings.models_dir.absolute()}
    if "worker_threads" not in settings.model_fields_set:
        update["worker_threads"] = max(1, int(ray_settings.replica_cpus))
    return settings.model_copy(update=update)


def application(settings: Settings, ray_settings: RaySettings) -> Application:
    directory = ReplicaDirectory.bind(ray_settings.membership_timeout_seconds)
    return AuscultApp.options(**ray_settings.deployment_options()).bind(
        replica_settings(settings, ray_settings), directory
    )


def build(args: dict[str, Any]) -> Application:
    """Application builder for serveConfigV2: the service's settings from AUSCULT_* variables
    (the RayService's runtime_env), RaySettings from them overridden by `args`."""
    return application(Settings(), RaySettings(**args))
