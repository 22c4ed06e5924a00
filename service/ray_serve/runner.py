"""Deploying the Auscult application on a Ray cluster the caller is connected to."""

from __future__ import annotations

from collections.abc import Callable

from ray import serve

from service.config import Settings
from service.ray_serve.application import application
from service.ray_serve.settings import RaySettings


def deploy(settings: Settings, ray_settings: RaySettings, *, host: str, port: int) -> None:
    """Start Serve's HTTP proxy on host:port (unless Serve already runs on this cluster: then
    its proxy stays where it is) and run the application at /, returning once every replica
    has loaded its models."""
    serve.start(http_options={"host": host, "port": port})
    serve.run(application(settings, ray_settings), name=ray_settings.app_name, route_prefix="/")


def undeploy(ray_settings: RaySettings) -> None:
    serve.delete(ray_settings.app_name)


# Typed here: Ray declares it without annotations. Stops Serve on the whole cluster.
shutdown_serve: Callable[[], None] = serve.shutdown
