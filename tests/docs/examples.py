"""The fenced code blocks of README.md and docs/*.md, each with its file, line and language, sorted
into what the example tests run (shell, Python), parse (data samples) and check by eye only."""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent

Kind = Literal["shell", "python", "json", "yaml", "other"]
# Every language a block may declare; a block with any other (or none) fails the tests, so a new
# example can never slip past them unclassified.
_KINDS: dict[str, Kind] = {
    "sh": "shell",
    "bash": "shell",
    "shell": "shell",
    "console": "shell",
    "python": "python",
    "py": "python",
    "json": "json",
    "yaml": "yaml",
    "yml": "yaml",
    # Configuration of other programs and free text: not ours to run.
    "nginx": "other",
    "text": "other",
    "http": "other",
    "promql": "other",
    "csv": "other",
}
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_OPENING = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass(frozen=True)
class CodeBlock:
    path: str  # relative to the project root
    line: int  # of the opening fence, 1-based
    language: str
    text: str  # without the fences and the indentation of the fence

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def kind(self) -> Kind | None:
        return _KINDS.get(self.language)


def documentation_files(root: Path = PROJECT_ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def code_blocks(path: Path, root: Path = PROJECT_ROOT) -> list[CodeBlock]:
    """Every fenced block of one Markdown file, in order (CommonMark fences: ``` or ~~~, closed by
    the same character at least as long; an unclosed block runs to the end of the file)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        opening = _OPENING.match(lines[index])
        if opening is None or ("`" in opening["info"] and opening["fence"][0] == "`"):
            index += 1
            continue
        fence = opening["fence"]
        closing = re.compile(rf"^ *{re.escape(fence[0])}{{{len(fence)},}} *$")
        body_start = index + 1
        end = body_start
        while end < len(lines) and closing.match(lines[end]) is None:
            end += 1
        # dedent: a fence indented in a list item has its lines indented as much.
        body = "\n".join(lines[body_start:end])
        blocks.append(
            CodeBlock(
                path=path.relative_to(root).as_posix(),
                line=index + 1,
                language=opening["info"].strip().split(" ")[0].lower(),
                text=textwrap.dedent(body).strip("\n") + "\n",
            )
        )
        index = end + 1
    return blocks


def all_code_blocks(root: Path = PROJECT_ROOT) -> list[CodeBlock]:
    return [block for path in documentation_files(root) for block in code_blocks(path, root)]


def shell_commands(block: CodeBlock) -> str:
    """The script a shell block stands for: a console block's `$ ` lines (and their continuation
    lines) without the prompt, dropping the output shown between them; other blocks as written."""
    if block.language != "console":
        return block.text
    script = []
    continuing = False
    for line in block.text.splitlines():
        if line.startswith("$ "):
            script.append(line[2:])
        elif continuing:
            script.append(line)
        else:
            continue
        continuing = line.endswith("\\")
    return "\n".join(script) + "\n"


def is_assignment_only(script: str) -> bool:
    """A block that only sets shell variables (`MODEL=...`): the following blocks of its file use
    them, as a reader who pasted it first would."""
    words = shlex.split(script, comments=True)
    return bool(words) and all(_ASSIGNMENT.match(word) for word in words)
