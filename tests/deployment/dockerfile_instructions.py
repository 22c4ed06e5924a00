"""A Dockerfile read as (instruction, arguments) pairs, stage by stage, for static checks."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stage:
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, instruction: str) -> list[str]:
        return [args for name, args in self.instructions if name == instruction]


def read_stages(dockerfile: Path) -> list[Stage]:
    """The build stages in order; continuation lines are joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        raise ValueError(f"{dockerfile}: file ends inside a continued line")
    stages: list[Stage] = []
    for line in logical:
        name, _, args = line.partition(" ")
        name = name.upper()
        if name == "FROM":
            stages.append(Stage(base=args.split()[0]))
        elif name == "ARG" and not stages:
            continue  # global build arguments come before the first FROM
        elif not stages:
            raise ValueError(f"{dockerfile}: {name} before the first FROM")
        else:
            stages[-1].instructions.append((name, args.strip()))
    return stages


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT, CMD or HEALTHCHECK CMD."""
    value = json.loads(arguments)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"not an exec-form array: {arguments}")
    return value


def pip_install_arguments(run: str) -> list[list[str]]:
    """The arguments of every `pip install` in a RUN instruction's shell command."""
    commands = re.split(r"&&|;|\|\|", run)
    found: list[list[str]] = []
    for command in commands:
        words = command.split()
        for position in range(len(words) - 1):
            if words[position].endswith("pip") and words[position + 1] == "install":
                found.append([word.strip("\"'") for word in words[position + 2 :]])
    return found
