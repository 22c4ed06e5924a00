"""Static checks of the images (no Docker engine here to build them): the service image holds no
torch and runs unprivileged with a readiness health check; the training image pins CPU torch."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.deployment.dockerfile_instructions import (
    exec_form,
    pip_install_arguments,
    read_stages,
)
from tests.deployment.stack_files import DOCKER_DIR
from tests.realdata import PROJECT_ROOT

SERVICE_DOCKERFILE = DOCKER_DIR / "Dockerfile"
TRAIN_DOCKERFILE = DOCKER_DIR / "Dockerfile.train"
IMAGES = [SERVICE_DOCKERFILE, TRAIN_DOCKERFILE]


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _torch_pin() -> str:
    extras = _pyproject()["project"]["optional-dependencies"]
    pins = [req for req in extras["train"] if re.match(r"torch\s*==", req)]
    assert len(pins) == 1, f"the train extra should pin torch exactly once: {extras['train']}"
    return str(pins[0]).split("==")[1].strip()


def _final_user(dockerfile: Path) -> str:
    users = read_stages(dockerfile)[-1].arguments("USER")
    assert users, f"{dockerfile.name}: the final stage sets no USER, so it runs as root"
    return users[-1]


@pytest.mark.parametrize("dockerfile", IMAGES, ids=["service", "train"])
def test_images_run_as_a_non_root_user(dockerfile: Path) -> None:
    user = _final_user(dockerfile).split(":")[0]
    assert user not in {"root", "0"}


def test_service_dependencies_hold_no_torch() -> None:
    dependencies = _pyproject()["project"]["dependencies"]
    assert not [dep for dep in dependencies if dep.lower().startswith("torch")]


def test_service_image_installs_the_package_without_extras() -> None:
    installs = [
        args
        for stage in read_stages(SERVICE_DOCKERFILE)
        for run in stage.arguments("RUN")
        for args in pip_install_arguments(run)
    ]
    assert installs, "the service image installs nothing with pip"
    for args in installs:
        packages = [arg for arg in args if not arg.startswith("-")]
        assert packages == ["."], f"the service image should install only '.', not {args}"


def test_service_image_checks_readiness_and_serves() -> None:
    final = read_stages(SERVICE_DOCKERFILE)[-1]
    (healthcheck,) = final.arguments("HEALTHCHECK")
    options, _, command = healthcheck.partition("CMD")
    assert "--interval" in options
    probe = " ".join(exec_form(command.strip()))
    (port,) = final.arguments("EXPOSE")
    assert f"http://127.0.0.1:{port}/readyz" in probe
    (entrypoint,) = final.arguments("ENTRYPOINT")
    (cmd,) = final.arguments("CMD")
    assert exec_form(entrypoint) == ["auscult", "serve"]
    arguments = exec_form(cmd)
    assert arguments[arguments.index("--port") + 1] == port
    assert arguments[arguments.index("--host") + 1] == "0.0.0.0"


def test_training_image_pins_the_cpu_torch_of_pyproject() -> None:
    stages = read_stages(TRAIN_DOCKERFILE)
    args = stages[-1].arguments("ARG")
    assert f"TORCH_VERSION={_torch_pin()}" in args
    torch_installs = [
        install
        for run in stages[-1].arguments("RUN")
        for install in pip_install_arguments(run)
        if any(arg.startswith("torch==") for arg in install)
    ]
    assert torch_installs == [
        ["--index-url", "https://download.pytorch.org/whl/cpu", "torch==${TORCH_VERSION}"]
    ]


def _ignore_patterns(dockerfile: Path) -> list[str]:
    ignore_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
    return [
        line.strip()
        for line in ignore_file.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


def _in_build_context(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore's rules (the last matching pattern wins) keep `path`."""
    kept = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
            kept = negated
    return kept


@pytest.mark.parametrize("dockerfile", IMAGES, ids=["service", "train"])
def test_copied_sources_exist_and_are_in_the_build_context(dockerfile: Path) -> None:
    patterns = _ignore_patterns(dockerfile)
    for stage in read_stages(dockerfile):
        for copy in stage.arguments("COPY"):
            words = copy.split()
            if any(word.startswith("--from") for word in words):
                continue
            for source in words[:-1]:
                if any(char in source for char in "*?["):
                    continue  # optional by design: a wildcard may match nothing
                assert (PROJECT_ROOT / source).exists(), f"{dockerfile.name}: COPY {source}"
                assert _in_build_context(source, patterns), f"{source} is .dockerignored"
