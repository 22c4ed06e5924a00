"""How Auscult runs on Ray Serve: replicas, autoscaling and their resources, read from
`AUSCULT_RAY_*` environment variables (or `auscult serve-ray` options, or the `args` of a
RayService's serveConfigV2). The service's own settings (service/config.py) apply to every
replica unchanged."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class RaySettings(BaseSettings):
    """Replicas of the Auscult deployment and how Ray Serve routes to them."""

    model_config = SettingsConfigDict(
        env_prefix="AUSCULT_RAY_", env_ignore_empty=True, extra="forbid", frozen=True
    )

    app_name: str = Field(default="auscult", description="the Ray Serve application's name")
    replicas: Annotated[int, Field(ge=1)] = Field(
        default=1,
        description="replicas of the app; with AUSCULT_RAY_MAX_REPLICAS above it, the fewest "
        "the autoscaler keeps",
    )
    max_replicas: Annotated[int, Field(ge=1)] | None = Field(
        default=None,
        description="turns autoscaling on: the most replicas the autoscaler may start; unset "
        "(or equal to AUSCULT_RAY_REPLICAS) keeps a fixed count",
    )
    target_ongoing_requests: Annotated[float, Field(gt=0)] = Field(
        default=4.0,
        description="requests (open streams included) each replica should have in progress: "
        "the autoscaler adds replicas above it and removes them below",
    )
    max_ongoing_requests: Annotated[int, Field(ge=1)] = Field(
        default=64,
        description="most requests (open streams included) the proxy sends one replica at "
        "once; more wait in Ray's queue. Default: AUSCULT_WS_MAX_CONNECTIONS' default, so "
        "streams, not Ray, meet the app's own limit",
    )
    replica_cpus: Annotated[float, Field(gt=0)] = Field(
        default=1.0,
        description="CPUs Ray reserves per replica; AUSCULT_WORKER_THREADS defaults to it "
        "(at least 1)",
    )
    membership_timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=3.0,
        description="a replica not heard from for this long is taken as gone: reloads stop "
        "waiting for it and its metrics target is withdrawn",
    )

    @model_validator(mode="after")
    def _bounds(self) -> RaySettings:
        if self.max_replicas is not None and self.max_replicas < self.replicas:
            raise ValueError(f"max_replicas {self.max_replicas} is below replicas {self.replicas}")
        return self

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas is not None and self.max_replicas > self.replicas

    def deployment_options(self) -> dict[str, Any]:
        """The Auscult deployment's options for Deployment.options()."""
        options: dict[str, Any] = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "ray_actor_options": {"num_cpus": self.replica_cpus},
        }
        if self.autoscaling:
            options["autoscaling_config"] = {
                "min_replicas": self.replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
            }
        else:
            options["num_replicas"] = self.replicas
        return options
