"""Writing files and output folders safely: atomic writes, and the one output-folder policy.

Every file goes to a hidden temporary in its folder, is flushed, and is renamed into place once complete,
so a final name always holds a complete file (`atomic_write_bytes`, `write_json_atomic`, and
`temporary_for` for writers that produce a file by other means). Disk-full and permission problems
become one-line `OutputError`s naming the path (`output_errors`). `prepare_output_dir` and `new_run_dir`
decide which folder a run writes into.
"""

from __future__ import annotations

import errno
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from glus_cli.errors import OutputError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder, flushed, then renamed.

    Raises:
        OutputError: the disk is full, permission is denied, or another OS error; no temporary is left.
    """
    path = Path(path)
    with output_errors(path), temporary_for(path) as temporary:
        fd = os.open(temporary, os.O_WRONLY | os.O_TRUNC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        temporary.replace(path)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write `obj` as indented UTF-8 JSON to `path` atomically (see `atomic_write_bytes`)."""
    text = json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def new_run_dir(root: Path = Path("runs")) -> Path:
    """Create and return a fresh numbered folder ``root/0001``, ``root/0002``, ...

    The number follows the highest one present; a folder created meanwhile by another run is skipped
    (``mkdir`` fails on an existing folder), so no run ever reuses one.

    Raises:
        OutputError: `root` cannot be created or written.
    """
    root = Path(root)
    with output_errors(root):
        root.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name) for p in root.iterdir() if p.name.isascii() and p.name.isdigit()]
        number = max(numbers, default=0) + 1
        while True:
            candidate = root / f"{number:04d}"
            try:
                candidate.mkdir()
            except FileExistsError:
                number += 1
                continue
            return candidate


def prepare_output_dir(path: Path | None, *, resume: bool = False, runs_root: Path = Path("runs")) -> Path:
    """The folder a run writes into, created if needed: the one output-folder policy of every command.

    - No `path`: a fresh numbered folder under `runs_root` (see `new_run_dir`).
    - A new `path` (parents included) is created.
    - An existing, empty folder is used as is.
    - An existing folder with files is refused unless `resume`: finished output is never overwritten. With
      `resume` it is reused, and the command keeps what is complete in it and redoes the rest (an
      expression's folder is complete when its ``expression.json`` record exists).

    Raises:
        OutputError: `path` (or a folder above it) is a file, holds files and `resume` is off, or cannot be
            created or read.
    """
    if path is None:
        return new_run_dir(runs_root)
    path = Path(path)
    with output_errors(path):
        if path.exists() and not path.is_dir():
            raise OutputError(f"{path} exists and is not a folder; choose another --output-dir")
        if not resume and path.is_dir() and any(path.iterdir()):
            raise OutputError(f"{path} exists and is not empty; choose another --output-dir")
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):  # refused now, not after the model has loaded
            raise OutputError(f"permission denied writing {path}")
    return path


def fsync_file(path: Path) -> None:
    """Flush a written file to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def temporary_for(path: Path, suffix: str = "") -> Iterator[Path]:
    """Create an empty hidden temporary beside `path`, removed unless renamed away.

    Its name ends in ``.tmp`` then `suffix`, so a leftover never matches ``*.png`` or ``*.json``.
    """
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{suffix}")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def output_errors(path: Path) -> Iterator[None]:
    """Turn an OSError while writing `path` into a one-line OutputError."""
    try:
        yield
    except OSError as exc:
        raise OutputError(_describe_os_error(exc, path)) from exc


def _describe_os_error(exc: OSError, path: Path) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the disk to write {path}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied writing {path}"
    if exc.errno == errno.EROFS:
        return f"read-only file system: cannot write {path}"
    if exc.errno == errno.ENOTDIR:
        return f"cannot write {path}: a part of that path is a file, not a folder"
    return f"cannot write {path}: {exc.strerror or exc}"
