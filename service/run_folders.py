"""Folders the worker processes of one `auscult serve` share, named to them by an environment
variable: the one an operator gave (with what an earlier run left in it removed) or a fresh
temporary folder removed when the server stops."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def shared_run_folder(env_name: str, prefix: str, stale: str) -> Iterator[str]:
    """The folder in `env_name`, its files matching the relative glob `stale` removed (their
    parent folder created), or a new one under the temporary folder set in `env_name` for the
    workers while the server runs."""
    given = os.environ.get(env_name)
    if given:
        folder = Path(given)
        (folder / stale).parent.mkdir(parents=True, exist_ok=True)
        for old in folder.glob(stale):
            old.unlink()
        yield str(folder)
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ[env_name] = str(folder)
    try:
        yield str(folder)
    finally:
        del os.environ[env_name]
        shutil.rmtree(folder, ignore_errors=True)


def worker_file(folder: Path, subdir: str, suffix: str = "") -> Path:
    """This worker's own file in `subdir` of the workers' shared folder, named by its process id
    then a token: several apps may share a process in tests, and the token keeps their files
    apart."""
    return folder / subdir / f"{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def write_atomically(path: Path, text: str) -> None:
    """Write beside the target then rename, so a reader sees the old or the new text."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def alive(pid: int) -> bool:
    """Whether process `pid` still runs (one of another user counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
