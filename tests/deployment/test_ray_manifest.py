"""deploy/kuberay/ray-service.yaml, checked statically: a KubeRay RayService whose serveConfigV2
names the application builder that exists in service/ray_serve/, with valid RaySettings as its
args, a head and worker groups with resources, and the shared models folder in every pod."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.ray_serve.settings import RaySettings
from tests.realdata import PROJECT_ROOT

MANIFEST = PROJECT_ROOT / "deploy" / "kuberay" / "ray-service.yaml"


def _manifest() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    return document


def _serve_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(_manifest()["spec"]["serveConfigV2"])
    return config


def _pod_specs() -> list[dict[str, Any]]:
    cluster = _manifest()["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [group["template"]["spec"] for group in groups]


def _module_functions(module: str) -> set[str]:
    """Top-level function names of a project module, read without importing it (no Ray)."""
    path = PROJECT_ROOT / Path(*module.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_it_is_a_kuberay_ray_service() -> None:
    manifest = _manifest()
    assert manifest["apiVersion"] == "ray.io/v1"
    assert manifest["kind"] == "RayService"
    assert manifest["metadata"]["name"]


def test_the_import_path_names_the_application_builder_in_the_code() -> None:
    (application,) = _serve_config()["applications"]
    module, function = application["import_path"].split(":")
    assert function in _module_functions(module)
    assert application["route_prefix"] == "/"


def test_the_args_are_valid_ray_settings() -> None:
    (application,) = _serve_config()["applications"]
    settings = RaySettings(**application["args"])
    assert settings.autoscaling


@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="the 'ray' extra is not installed"
)
def test_the_builder_builds_an_application_from_the_args() -> None:
    from ray.serve import Application

    from service.ray_serve.application import build

    (application,) = _serve_config()["applications"]
    assert isinstance(build(application["args"]), Application)


def test_the_cluster_has_a_head_and_autoscaled_workers_with_resources() -> None:
    cluster = _manifest()["spec"]["rayClusterConfig"]
    assert cluster["headGroupSpec"]["rayStartParams"] is not None
    (workers,) = cluster["workerGroupSpecs"]
    assert workers["minReplicas"] <= workers["replicas"] <= workers["maxReplicas"]
    assert cluster["enableInTreeAutoscaling"] is True
    for pod in _pod_specs():
        for container in pod["containers"]:
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind])


def test_a_worker_pod_holds_at_least_one_replica() -> None:
    (application,) = _serve_config()["applications"]
    replica_cpus = RaySettings(**application["args"]).replica_cpus
    worker = _manifest()["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    cpus = float(worker["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"])
    assert cpus >= replica_cpus


def test_every_pod_mounts_the_models_folder_the_settings_name() -> None:
    for pod in _pod_specs():
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
        for container in pod["containers"]:
            env = {e["name"]: e["value"] for e in container["env"]}
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert env["AUSCULT_MODELS_DIR"] in mounts
            assert claims[mounts[env["AUSCULT_MODELS_DIR"]]] == "auscult-models"


def test_the_head_exposes_the_serve_port_of_the_serve_config() -> None:
    port = _serve_config()["http_options"]["port"]
    head = _manifest()["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    ports = {p["name"]: p["containerPort"] for p in head["containers"][0]["ports"]}
    assert ports["serve"] == port


def test_the_cluster_runs_the_ray_version_the_extra_requires() -> None:
    version = _manifest()["spec"]["rayClusterConfig"]["rayVersion"]
    pinned = (PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    minimum = pinned.split('"ray[serve]>=', 1)[1].split('"', 1)[0]
    assert tuple(map(int, version.split("."))) >= tuple(map(int, minimum.split(".")))
    assert f"rayproject/ray:{version}" in MANIFEST.read_text(encoding="utf-8")
