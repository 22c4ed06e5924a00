"""Checks for the documented commands that cannot run inside a test (servers that run until stopped,
training over whole data sets, Docker): each program exists and accepts the flags and files the
example gives it. Each check returns the problems it found, empty when there are none."""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import inspect
import io
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from service import cli
from tests.docs.examples import PROJECT_ROOT

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SEPARATORS = {"&&", "||", ";", "|", "&"}
# Arguments naming files of this repository: they must exist (outputs such as models/... need not).
_REPO_FOLDERS = (
    "docker/",
    "deploy/",
    "scripts/",
    "tests/",
    "service/",
    "training/",
    "benchmarks/",
    "docs/",
)
_BIN = Path(sys.executable).parent


def commands(script: str) -> list[list[str]]:
    """The simple commands of a shell script, as words, without leading variable assignments."""
    joined = script.replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        command: list[str] = []
        for word in [*lexer, ";"]:
            if word in _SEPARATORS:
                while command and _ASSIGNMENT.match(command[0]):
                    command.pop(0)
                command = _unwrapped(command)
                if command:
                    found.append(command)
                command = []
            else:
                command.append(word)
    return found


def _unwrapped(command: list[str]) -> list[str]:
    """The command that `nice -n 10 ...`, `timeout 900 ...` or `time ...` runs."""
    while command:
        if command[0] == "nice":
            command = command[3:] if command[1:2] == ["-n"] else command[1:]
        elif command[0] == "timeout":
            command = command[2:]
        elif command[0] in ("time", "/usr/bin/time"):
            command = command[1:]
        else:
            return command
    return command


def _repo_paths(words: list[str]) -> list[str]:
    missing = []
    for word in words:
        if word.startswith(_REPO_FOLDERS) and not list(PROJECT_ROOT.glob(word)):
            missing.append(f"{word} does not exist")
    return missing


def _make(words: list[str]) -> list[str]:
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    problems = []
    for word in words[1:]:
        if _ASSIGNMENT.match(word):
            variable = word.split("=", 1)[0]
            if not re.search(rf"^{variable} *[?:]?=", makefile, re.MULTILINE):
                problems.append(f"the Makefile has no variable {variable}")
        elif not word.startswith("-") and not re.search(
            rf"^{re.escape(word)}:", makefile, re.MULTILINE
        ):
            problems.append(f"the Makefile has no target {word}")
    return problems


@functools.cache
def _help(subcommands: tuple[str, ...]) -> str:
    """What `auscult SUBCOMMANDS --help` prints, asked in this process: the training commands
    import torch, once here rather than once per command in a subprocess."""
    output = io.StringIO()
    with (
        contextlib.redirect_stdout(output),
        contextlib.redirect_stderr(output),
        contextlib.suppress(SystemExit),
    ):
        cli.main([*subcommands, "--help"])
    return output.getvalue()


def _auscult(words: list[str]) -> list[str]:
    subcommands = []
    for word in words[1:]:
        if word.startswith("-"):
            break
        subcommands.append(word)
    usage = _help(tuple(subcommands))
    if "usage: auscult" not in usage:
        return [f"`auscult {' '.join(subcommands)} --help` printed no usage: {usage[-2000:]!r}"]
    flags = {word.split("=", 1)[0] for word in words if word.startswith("--")}
    return [
        f"`auscult {' '.join(subcommands)}` has no flag {flag}"
        for flag in sorted(flags)
        if re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", usage) is None
    ]


def _docker(words: list[str]) -> list[str]:
    if words[1:2] == ["compose"]:
        compose = PROJECT_ROOT / "docker-compose.yml"
        if not compose.exists():
            return ["docker-compose.yml does not exist"]
        scaled = [
            w.split("=", 1)[0] for i, w in enumerate(words) if i and words[i - 1] == "--scale"
        ]
        text = compose.read_text(encoding="utf-8")
        services = yaml.safe_load(text)["services"]
        profiles = {p for service in services.values() for p in service.get("profiles", [])}
        asked = [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--profile"]
        return [
            f"docker-compose.yml has no service {name}" for name in scaled if name not in services
        ] + [f"docker-compose.yml has no profile {name}" for name in asked if name not in profiles]
    files = [words[i + 1] for i, word in enumerate(words[:-1]) if word == "-f"]
    return [f"{name} does not exist" for name in files if not (PROJECT_ROOT / name).exists()]


@functools.cache
def _module_help(module: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return run.stdout if run.returncode == 0 else ""


def _python(words: list[str]) -> list[str]:
    """`python -m MODULE --flags`: a module of this project must accept the flags (its --help
    lists them); pytest's paths are checked as repository paths."""
    problems = _program(words)
    if "-m" not in words[:-1]:
        return problems
    module = words[words.index("-m") + 1]
    if module.split(".")[0] not in ("benchmarks", "service", "training"):
        return problems
    usage = _module_help(module)
    if not usage:
        return [*problems, f"`python -m {module} --help` failed"]
    flags = {word.split("=", 1)[0] for word in words if word.startswith("--")}
    return problems + [
        f"`python -m {module}` has no flag {flag}"
        for flag in sorted(flags)
        if re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", usage) is None
    ]


def _program(words: list[str]) -> list[str]:
    """A program that only needs to exist (a system tool, or one of the project's interpreters)."""
    name = words[0]
    if "/" in name:
        return (
            []
            if (PROJECT_ROOT / name).exists() or Path(name).exists()
            else [f"{name} does not exist"]
        )
    return []


def _kubectl(words: list[str]) -> list[str]:
    """`kubectl apply -f FILE`: the manifest is in the repository and parses as Kubernetes YAML;
    other verbs only read the cluster."""
    if words[1:2] != ["apply"] or "-f" not in words:
        return []
    manifest = PROJECT_ROOT / words[words.index("-f") + 1]
    if not manifest.exists():
        return []  # _repo_paths names it
    documents = [d for d in yaml.safe_load_all(manifest.read_text(encoding="utf-8")) if d]
    return [
        f"{manifest.name}: a document without apiVersion and kind"
        for d in documents
        if not {"apiVersion", "kind"} <= set(d)
    ]


def _ray(words: list[str]) -> list[str]:
    """Ray's own CLI (the `ray` extra): the subcommand and its flags exist."""
    ray = _BIN / "ray"
    if not ray.exists():
        return ["ray is not installed in the test environment (the 'ray' extra)"]
    usage = subprocess.run(
        [str(ray), *words[1:2], "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    flags = {word.split("=", 1)[0] for word in words if word.startswith("--")}
    return [f"`ray {words[1]}` has no flag {flag}" for flag in sorted(flags) if flag not in usage]


_CHECKS = {
    "make": _make,
    "auscult": _auscult,
    "docker": _docker,
    "bash": _program,
    "promtool": _program,
    "curl": _program,
    "kubectl": _kubectl,
    "ray": _ray,
}


def check_shell(script: str) -> list[str]:
    problems = []
    for words in commands(script):
        program = words[0]
        if re.fullmatch(r"(.*/)?python3?", program):
            check = _python
        elif re.fullmatch(r"(.*/)?pytest", program):
            check = _program  # its paths are checked as repository paths
        elif program.endswith("/auscult"):
            check = _auscult
        elif program in _CHECKS:
            check = _CHECKS[program]
        else:
            problems.append(
                f"no static check for {program!r}: add one in tests/docs/static_checks.py"
            )
            continue
        problems += check(words) + _repo_paths(words)
    return list(dict.fromkeys(problems))  # a path may be missing twice: as a path and as -f


def check_python(code: str) -> list[str]:
    """The code compiles, pyflakes (ruff's F rules) finds no undefined name or unused import, every
    import works, and every keyword argument given to an imported callable is one it accepts."""
    tree = ast.parse(code)
    ruff = subprocess.run(
        [
            str(_BIN / "ruff"),
            "check",
            "--select",
            "F",
            "--output-format",
            "concise",
            "--stdin-filename",
            "example.py",
            "-",
        ],
        input=code,
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [] if ruff.returncode == 0 else [ruff.stdout.strip()]
    imported: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                imported[alias.asname or alias.name] = getattr(module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                imported[alias.asname or alias.name] = importlib.import_module(alias.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in imported
        ):
            callee = imported[node.func.id]
            keywords = {k.arg: None for k in node.keywords if k.arg is not None}
            try:
                inspect.signature(callee).bind_partial(**keywords)  # type: ignore[arg-type]
            except TypeError as exc:
                problems.append(f"line {node.lineno}: {node.func.id}(...): {exc}")
    return problems
